#include "filters/kernels.hpp"

#include <atomic>

#include "core/dispatch.hpp"
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#include <immintrin.h>
#define KEENSIGHT_X86_FENCE 1
#endif

namespace keensight::filters::detail {

namespace {

const keensight::detail::KernelTables<FilterKernels>& tables() {
  static const keensight::detail::KernelTables<FilterKernels> registry("filters", {
      {Isa::scalar, filter_kernels_scalar},
#ifdef KEENSIGHT_HAVE_AVX2
      {Isa::avx2, filter_kernels_avx2},
#endif
#ifdef KEENSIGHT_HAVE_AVX512
      {Isa::avx512, filter_kernels_avx512},
#endif
  });
  return registry;
}

}  // namespace

const FilterKernels& filter_kernels(Isa isa) { return tables().at(isa); }

const FilterKernels& filter_kernels() { return tables().select(); }

void column_pairs_x2_by_rows(const FilterKernels& k, const float* const* rows, int ksize,
                             const float* coeffs, bool subtract, std::int64_t n, float* dst0,
                             float* dst1) {
  const float* p[kMaxColumnPairsX2];
  const float* q[kMaxColumnPairsX2];
  const int pairs = (ksize + 1) / 2;
  for (int row = 0; row < 2; ++row) {
    for (int t = 0; t < pairs; ++t) {
      p[t] = rows[row + t];
      q[t] = rows[row + ksize - 1 - t];
    }
    k.accumulate_pairs(p, q, coeffs, pairs, subtract, n, row == 0 ? dst0 : dst1, false, false);
  }
}

void stream_fence() {
#ifdef KEENSIGHT_X86_FENCE
  _mm_sfence();
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace keensight::filters::detail
