// Internal: split [0, n) into one contiguous chunk per thread. Each chunk is
// computed the same way whatever the thread count, so results never depend on it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>

#include "keensight/core.hpp"

namespace keensight::detail {

// Calls fn(begin, end) on contiguous chunks of [0, n), in parallel. At most
// get_num_threads() chunks (and at most max_threads when it is positive), and no
// chunk smaller than min_chunk items.
template <class Fn>
void parallel_chunks(std::int64_t n, std::int64_t min_chunk, Fn&& fn, std::int64_t max_threads = 0) {
  if (n <= 0) return;
  std::int64_t threads = get_num_threads();
  if (max_threads > 0) threads = std::min(threads, max_threads);
  threads = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, n / std::max<std::int64_t>(1, min_chunk)));
  if (threads <= 1) {
    fn(std::int64_t{0}, n);
    return;
  }
  // An exception must not escape an OpenMP region: keep the first, rethrow after.
  std::exception_ptr error;
  std::mutex error_mutex;
#ifdef _OPENMP
#pragma omp parallel for num_threads(static_cast<int>(threads)) schedule(static, 1)
#endif
  for (std::int64_t t = 0; t < threads; ++t) {
    const std::int64_t begin = n * t / threads, end = n * (t + 1) / threads;
    try {
      fn(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace keensight::detail
