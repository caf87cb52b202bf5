// Scalar peak kernel: the reference level (no SIMD flags). 12 independent chains of
// acc * a + b in plain float: a multiply and an add per step (the build forbids their
// contraction into an FMA, -ffp-contract=off, as the scalar kernels are written), the
// 2 flops an FMA lane counts. What the compiler makes of it at the baseline ISA is the
// scalar level's peak. Named variables, not an array, as in the SIMD kernels.
#include "core/fma_peak.hpp"

namespace keensight::detail {
namespace {

constexpr int kChains = 12, kUnroll = 4;

#define KS_CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define KS_DECLARE(i) float c##i = 1.0f + 0.001f * (i);
#define KS_STEP(i) c##i = c##i * a + b;
#define KS_SUM(i) sum += c##i;

std::int64_t run(std::int64_t iterations, float* sink) {
  const float a = *sink > 2.0f ? 0.5f : 0.99999994f;  // converges to b / (1 - a) = 1
  const float b = 5.96e-8f;
  KS_CHAINS(KS_DECLARE)
  for (std::int64_t i = 0; i < iterations; ++i) {
    static_assert(kUnroll == 4, "four steps of every chain per iteration");
    KS_CHAINS(KS_STEP)
    KS_CHAINS(KS_STEP)
    KS_CHAINS(KS_STEP)
    KS_CHAINS(KS_STEP)
  }
  float sum = 0.0f;
  KS_CHAINS(KS_SUM)
  *sink = sum;
  return iterations * kUnroll * kChains * 2;
}

#undef KS_CHAINS
#undef KS_DECLARE
#undef KS_STEP
#undef KS_SUM

}  // namespace

const FmaPeakKernels& fma_peak_scalar() {
  static const FmaPeakKernels k = [] {
    FmaPeakKernels t{};
    t.run = run;
    t.name = "fma_peak_12x1_scalar";
    return t;
  }();
  return k;
}

}  // namespace keensight::detail
