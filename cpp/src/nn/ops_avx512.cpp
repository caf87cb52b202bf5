// The AVX-512 nn ops table: the kernels of nn/ops_simd.hpp on 16-float vectors, masked
// tails (AVX-512 F/DQ masked loads and stores never touch the masked-off lanes).
#include <immintrin.h>

#include "nn/activation_avx512.hpp"
#include "nn/kernels.hpp"

namespace keensight::nn::detail {
namespace {

struct Avx512 {
  static constexpr int W = 16;
  using Reg = __m512;
  using Mask = __mmask16;
  static Mask tail_mask(int n) { return n >= 16 ? Mask(0xFFFF) : Mask((1u << n) - 1u); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static Reg load_tail(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store_tail(float* p, Reg v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static Reg set1(float x) { return _mm512_set1_ps(x); }
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  // vmaxps returns its second operand when the first is not greater (or either is NaN).
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  // `flag` takes the NaN lanes of v; nan_apply makes those lanes of m NaN.
  static Reg nan_merge(Reg flag, Reg v) { return _mm512_mask_mov_ps(flag, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v); }
  static Reg nan_apply(Reg m, Reg flag) {
    return _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(flag, flag, _CMP_UNORD_Q), flag);
  }
  using Act = ActivationAvx512;
  static Reg act(const Act& a, Reg v) { return activate_avx512(a, v); }
};

}  // namespace
}  // namespace keensight::nn::detail

#include "nn/ops_simd.hpp"

namespace keensight::nn::detail {

const OpsKernels& ops_kernels_avx512() {
  // conv_direct: 8 pixels x 2 vectors (32 output channels, the stem's) = 16 of the 32
  // zmm registers accumulate; the weights are loaded once per tap for the 8 pixels.
  static const OpsKernels table = make_ops_kernels<Avx512, 8, 2>();
  return table;
}

}  // namespace keensight::nn::detail
