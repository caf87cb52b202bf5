// The AVX2 nn ops table: the kernels of nn/ops_simd.hpp on 8-float vectors, tails by
// vmaskmovps (masked-off lanes are neither read nor written, so no fault past the end).
#include <immintrin.h>

#include "nn/activation_avx2.hpp"
#include "nn/kernels.hpp"

namespace keensight::nn::detail {
namespace {

struct Avx2 {
  static constexpr int W = 8;
  using Reg = __m256;
  using Mask = __m256i;
  static Mask tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static Reg load_tail(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store_tail(float* p, Reg v, Mask m) { _mm256_maskstore_ps(p, m, v); }
  static Reg set1(float x) { return _mm256_set1_ps(x); }
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  // vmaxps returns its second operand when the first is not greater (or either is NaN).
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  // `flag` is all ones (a NaN) in the lanes where a NaN was seen; OR-ing it in makes them NaN.
  static Reg nan_merge(Reg flag, Reg v) { return _mm256_or_ps(flag, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)); }
  static Reg nan_apply(Reg m, Reg flag) { return _mm256_or_ps(m, flag); }
  using Act = ActivationAvx2;
  static Reg act(const Act& a, Reg v) { return activate_avx2(a, v); }
};

}  // namespace
}  // namespace keensight::nn::detail

#include "nn/ops_simd.hpp"

namespace keensight::nn::detail {

const OpsKernels& ops_kernels_avx2() {
  // conv_direct: 6 pixels x 2 vectors (16 output channels) = 12 of the 16 ymm
  // registers accumulate, 2 hold the tap's weights, 1 the broadcast input.
  static const OpsKernels table = make_ops_kernels<Avx2, 6, 2>();
  return table;
}

}  // namespace keensight::nn::detail
