// The AVX-512 depthwise convolution: depthwise_simd.hpp's register-blocked tiles on
// 16-float vectors (one pixel's channels [ch, ch + 16)), the channel tail c % 16
// through masked loads and stores (which do not fault on the masked-off lanes, so
// no access leaves the buffers), the activation fused (activation_avx512.hpp).
#include "nn/activation_avx512.hpp"  // first: its GCC 12 pragma precedes <immintrin.h>
#include "nn/depthwise_simd.hpp"
#include "nn/kernels.hpp"

namespace keensight::nn::detail {
namespace {

struct VecAvx512 {
  using Vec = __m512;
  using Mask = __mmask16;
  using Act = ActivationAvx512;
  // Two-row tiles (dw_tile2: 2 T accumulators + 2 K weights) need more than 16 registers.
  static constexpr bool kRowPairs = true;
  static constexpr int kLanes = 16;
  static Mask tail_mask(std::int64_t n) { return static_cast<Mask>((1u << n) - 1u); }
  template <bool Tail>
  static Vec load(const float* p, Mask m) {
    if constexpr (Tail) return _mm512_maskz_loadu_ps(m, p);
    else return _mm512_loadu_ps(p);
  }
  template <bool Tail>
  static void store(float* p, Vec v, Mask m) {
    if constexpr (Tail) _mm512_mask_storeu_ps(p, m, v);
    else _mm512_storeu_ps(p, v);
  }
  static Vec fma(Vec a, Vec b, Vec acc) { return _mm512_fmadd_ps(a, b, acc); }
  static Vec activate(const Act& act, Vec v) { return activate_avx512(act, v); }
};

// Tile widths: T accumulators + K weights + the streaming input stay well inside the
// 32 zmm registers.
constexpr int kTile3x3s1 = 8, kTile3x3s2 = 8, kTile5x5s1 = 8, kTile5x5s2 = 8;

}  // namespace

const DepthwiseKernels& depthwise_kernels_avx512() {
  static const DepthwiseKernels table = [] {
    DepthwiseKernels t{};
    t.dwconv_3x3s1 = dw_rows_fixed<VecAvx512, 3, 1, kTile3x3s1>;
    t.dwconv_3x3s2 = dw_rows_fixed<VecAvx512, 3, 2, kTile3x3s2>;
    t.dwconv_5x5s1 = dw_rows_fixed<VecAvx512, 5, 1, kTile5x5s1>;
    t.dwconv_5x5s2 = dw_rows_fixed<VecAvx512, 5, 2, kTile5x5s2>;
    t.dwconv_any = dw_rows_any<VecAvx512>;
    return t;
  }();
  return table;
}

}  // namespace keensight::nn::detail
