// AVX-512 FMA peak kernel (compiled with the avx512 flags; run only where the CPU has
// AVX-512F): 24 independent chains of vfmadd on 16-float zmm registers.
// 24 chains: FMA latency 4 cycles x 2 FMA ports = 8 chains in flight is the minimum on
// Skylake-SP / Ice Lake / Sapphire Rapids and Zen 4/5 (Zen 4 splits a 512-bit FMA over
// its two 256-bit pipes, Zen 5 has two full-width ones); 24 leaves a margin for a
// longer latency and still fits the 32 zmm registers with the two multiplicands.
// The chains are named variables, not an array: GCC turned an array of accumulators
// into a loop over memory (one load and store per FMA) at -O3.
#include <immintrin.h>

#include "core/fma_peak.hpp"

namespace keensight::detail {
namespace {

constexpr int kChains = 24, kLanes = 16, kUnroll = 4;

#define KS_CHAINS(X) \
  X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) \
  X(20) X(21) X(22) X(23)
#define KS_DECLARE(i) __m512 c##i = _mm512_set1_ps(1.0f + 0.001f * (i));
#define KS_STEP(i) c##i = _mm512_fmadd_ps(c##i, a, b);
#define KS_SUM(i) sum = _mm512_add_ps(sum, c##i);

std::int64_t run(std::int64_t iterations, float* sink) {
  // acc = acc * a + b with a just below 1 converges to b / (1 - a) = 1: no overflow and
  // no denormals (which would take a slow path), whatever the iteration count. `a`
  // depends on *sink so that nothing is known at compile time.
  const __m512 a = _mm512_set1_ps(*sink > 2.0f ? 0.5f : 0.99999994f);
  const __m512 b = _mm512_set1_ps(5.96e-8f);
  KS_CHAINS(KS_DECLARE)
  for (std::int64_t i = 0; i < iterations; ++i) {
    static_assert(kUnroll == 4, "four steps of every chain per iteration");
    KS_CHAINS(KS_STEP)
    KS_CHAINS(KS_STEP)
    KS_CHAINS(KS_STEP)
    KS_CHAINS(KS_STEP)
  }
  __m512 sum = _mm512_setzero_ps();
  KS_CHAINS(KS_SUM)
  *sink = _mm512_reduce_add_ps(sum);
  return iterations * kUnroll * kChains * kLanes * 2;
}

#undef KS_CHAINS
#undef KS_DECLARE
#undef KS_STEP
#undef KS_SUM

}  // namespace

const FmaPeakKernels& fma_peak_avx512() {
  static const FmaPeakKernels k = [] {
    FmaPeakKernels t{};
    t.run = run;
    t.name = "fma_peak_24x16_avx512";
    return t;
  }();
  return k;
}

}  // namespace keensight::detail
