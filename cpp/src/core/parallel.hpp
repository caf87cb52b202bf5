// Internal: the one thread helper of every area.
//
// parallel_threads(threads, fn) runs fn(t, nt) once on each of nt threads (t in
// [0, nt)); parallel_for(n, min_chunk, fn) splits [0, n) into one contiguous
// chunk per thread on top of it. OpenMP when the build has it; std::thread
// otherwise (e.g. the ThreadSanitizer build: libgomp is not instrumented, so
// TSan cannot see its barriers and reports false races). The first exception
// thrown by any fn is rethrown on the calling thread once every thread is done
// (an exception must not escape an OpenMP region, nor a std::thread).
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "keensight/core.hpp"

namespace keensight::detail {

// Calls fn(t, nt) on nt threads, nt <= threads (OpenMP may give fewer, e.g.
// inside another parallel region: then nt is what it gave, so a caller that
// splits work by (t, nt) still covers all of it). threads <= 1: fn(0, 1) here.
template <class Fn>
void parallel_threads(int threads, Fn&& fn) {
  if (threads <= 1) {
    fn(0, 1);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto guarded = [&](int t, int nt) {
    try {
      fn(t, nt);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  guarded(omp_get_thread_num(), omp_get_num_threads());
#else
  std::vector<std::thread> workers;
  workers.reserve(static_cast<std::size_t>(threads - 1));
  try {
    for (int t = 1; t < threads; ++t) workers.emplace_back(guarded, t, threads);
  } catch (...) {  // no thread left running (or joinable) behind an exception
    for (std::thread& w : workers) w.join();
    throw;
  }
  guarded(0, threads);
  for (std::thread& w : workers) w.join();
#endif
  if (error) std::rethrow_exception(error);
}

// Calls fn(begin, end) on contiguous chunks of [0, n), in parallel: at most
// get_num_threads() chunks (and at most max_threads when it is positive), none
// smaller than min_chunk items. Chunk t of nt is [n t / nt, n (t+1) / nt), so a
// caller whose per-item work does not depend on the chunking gets the same
// results whatever the thread count.
template <class Fn>
void parallel_for(std::int64_t n, std::int64_t min_chunk, Fn&& fn, std::int64_t max_threads = 0) {
  if (n <= 0) return;
  std::int64_t threads = get_num_threads();
  if (max_threads > 0) threads = std::min(threads, max_threads);
  threads = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, n / std::max<std::int64_t>(1, min_chunk)));
  parallel_threads(static_cast<int>(threads), [&](int t, int nt) {
    const std::int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace keensight::detail
