// The AVX2 depthwise convolution: depthwise_simd.hpp's register-blocked tiles on
// 8-float vectors (one pixel's channels [ch, ch + 8)), the channel tail c % 8 through
// vmaskmovps loads and stores (no fault on the masked-off lanes, so no access leaves
// the buffers), the activation fused (activation_avx2.hpp).
#include "nn/activation_avx2.hpp"
#include "nn/depthwise_simd.hpp"
#include "nn/kernels.hpp"

namespace keensight::nn::detail {
namespace {

struct VecAvx2 {
  using Vec = __m256;
  using Mask = __m256i;
  using Act = ActivationAvx2;
  // Two-row tiles (dw_tile2: 2 T accumulators + 2 K weights) need more than 16 registers.
  static constexpr bool kRowPairs = false;
  static constexpr int kLanes = 8;
  static Mask tail_mask(std::int64_t n) { return first_lanes_mask_avx2(n); }
  template <bool Tail>
  static Vec load(const float* p, Mask m) {
    if constexpr (Tail) return _mm256_maskload_ps(p, m);
    else return _mm256_loadu_ps(p);
  }
  template <bool Tail>
  static void store(float* p, Vec v, Mask m) {
    if constexpr (Tail) _mm256_maskstore_ps(p, m, v);
    else _mm256_storeu_ps(p, v);
  }
  static Vec fma(Vec a, Vec b, Vec acc) { return _mm256_fmadd_ps(a, b, acc); }
  static Vec activate(const Act& act, Vec v) { return activate_avx2(act, v); }
};

// Tile widths: T accumulators + K weights + the streaming input within the 16 ymm
// registers (5x5: 6 + 5 + 1, leaving room for the activation's constants).
constexpr int kTile3x3s1 = 8, kTile3x3s2 = 8, kTile5x5s1 = 6, kTile5x5s2 = 6;

}  // namespace

const DepthwiseKernels& depthwise_kernels_avx2() {
  static const DepthwiseKernels table = [] {
    DepthwiseKernels t{};
    t.dwconv_3x3s1 = dw_rows_fixed<VecAvx2, 3, 1, kTile3x3s1>;
    t.dwconv_3x3s2 = dw_rows_fixed<VecAvx2, 3, 2, kTile3x3s2>;
    t.dwconv_5x5s1 = dw_rows_fixed<VecAvx2, 5, 1, kTile5x5s1>;
    t.dwconv_5x5s2 = dw_rows_fixed<VecAvx2, 5, 2, kTile5x5s2>;
    t.dwconv_any = dw_rows_any<VecAvx2>;
    return t;
  }();
  return table;
}

}  // namespace keensight::nn::detail
