// AVX2 + FMA peak kernel (compiled with the avx2 flags; run only where the CPU has
// AVX2 and FMA): 12 independent chains of vfmadd on 8-float ymm registers.
// 12 chains: FMA latency 4-5 cycles x 2 FMA ports (Haswell and later, Zen 1-5) needs
// 8-10 in flight; 12 plus the two multiplicands fit the 16 ymm registers, as the 6x16
// GEMM tile's 12 accumulators do (core/gemm_f32_avx2.cpp). The chains are named
// variables, not an array: GCC turned an array of accumulators into a loop over
// memory at -O3.
#include <immintrin.h>

#include "core/fma_peak.hpp"

namespace keensight::detail {
namespace {

constexpr int kChains = 12, kLanes = 8, kUnroll = 4;

#define KS_CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define KS_DECLARE(i) __m256 c##i = _mm256_set1_ps(1.0f + 0.001f * (i));
#define KS_STEP(i) c##i = _mm256_fmadd_ps(c##i, a, b);
#define KS_SUM(i) sum = _mm256_add_ps(sum, c##i);

std::int64_t run(std::int64_t iterations, float* sink) {
  // acc = acc * a + b with a just below 1 converges to b / (1 - a) = 1: no overflow and
  // no denormals, whatever the iteration count. `a` depends on *sink so that nothing
  // is known at compile time.
  const __m256 a = _mm256_set1_ps(*sink > 2.0f ? 0.5f : 0.99999994f);
  const __m256 b = _mm256_set1_ps(5.96e-8f);
  KS_CHAINS(KS_DECLARE)
  for (std::int64_t i = 0; i < iterations; ++i) {
    static_assert(kUnroll == 4, "four steps of every chain per iteration");
    KS_CHAINS(KS_STEP)
    KS_CHAINS(KS_STEP)
    KS_CHAINS(KS_STEP)
    KS_CHAINS(KS_STEP)
  }
  __m256 sum = _mm256_setzero_ps();
  KS_CHAINS(KS_SUM)
  alignas(32) float lanes[kLanes];
  _mm256_store_ps(lanes, sum);
  float total = 0.0f;
  for (const float v : lanes) total += v;
  *sink = total;
  return iterations * kUnroll * kChains * kLanes * 2;
}

#undef KS_CHAINS
#undef KS_DECLARE
#undef KS_STEP
#undef KS_SUM

}  // namespace

const FmaPeakKernels& fma_peak_avx2() {
  static const FmaPeakKernels k = [] {
    FmaPeakKernels t{};
    t.run = run;
    t.name = "fma_peak_12x8_avx2";
    return t;
  }();
  return k;
}

}  // namespace keensight::detail
