#include "keensight/core.hpp"

#include <atomic>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace keensight {

namespace {
// 0 means "the default": whatever OpenMP would use (OMP_NUM_THREADS or all cores).
std::atomic<int> g_num_threads{0};
}  // namespace

void set_num_threads(int n) {
  g_num_threads.store(n > 0 ? (n < kMaxThreads ? n : kMaxThreads) : 0, std::memory_order_relaxed);
}

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace keensight
