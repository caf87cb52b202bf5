// The scalar depthwise convolution: the reference of the arithmetic contract in
// nn/kernels.hpp (acc = bias; acc = fma(input, weight, acc) for the taps inside the
// input in (ky, kx) order; activate), and every entry of the scalar table.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "nn/depthwise_geometry.hpp"
#include "nn/kernels.hpp"

namespace keensight::nn::detail {
namespace {

// Channels are taken 64 at a time so that a pixel's accumulators stay on the stack
// while the taps stream through them (NHWC: a tap's channels are contiguous).
constexpr std::int64_t kChannelChunk = 64;

void dwconv_scalar(const DepthwiseArgs& a, std::int64_t y0, std::int64_t y1) {
  const ConvShape& s = *a.shape;
  const std::int64_t c = s.in_c;
  for (std::int64_t y = y0; y < y1; ++y) {
    const std::int64_t iy0 = y * s.stride_h - s.pad_top;
    const TapRange ry = tap_range(iy0, s.dilation_h, s.kh, s.in_h);
    float* out_row = a.out + (y - a.out_row0) * s.out_w * c;
    for (std::int64_t x = 0; x < s.out_w; ++x) {
      const std::int64_t ix0 = x * s.stride_w - s.pad_left;
      const TapRange rx = tap_range(ix0, s.dilation_w, s.kw, s.in_w);
      for (std::int64_t ch0 = 0; ch0 < c; ch0 += kChannelChunk) {
        const std::int64_t n = std::min(kChannelChunk, c - ch0);
        float acc[kChannelChunk];
        for (std::int64_t i = 0; i < n; ++i) acc[i] = a.bias[ch0 + i];
        for (int ky = ry.lo; ky < ry.hi; ++ky) {
          const float* in_row = a.in + (iy0 + static_cast<std::int64_t>(ky) * s.dilation_h - a.in_row0) * s.in_w * c;
          for (int kx = rx.lo; kx < rx.hi; ++kx) {
            const float* ip = in_row + (ix0 + static_cast<std::int64_t>(kx) * s.dilation_w) * c + ch0;
            const float* wp = a.weights + (static_cast<std::int64_t>(ky) * s.kw + kx) * c + ch0;
            for (std::int64_t i = 0; i < n; ++i) acc[i] = std::fma(ip[i], wp[i], acc[i]);
          }
        }
        float* op = out_row + x * c + ch0;
        for (std::int64_t i = 0; i < n; ++i) op[i] = activate(a.act, acc[i]);
      }
    }
  }
}

}  // namespace

const DepthwiseKernels& depthwise_kernels_scalar() {
  static const DepthwiseKernels table = [] {
    DepthwiseKernels t{};
    t.dwconv_3x3s1 = dwconv_scalar;
    t.dwconv_3x3s2 = dwconv_scalar;
    t.dwconv_5x5s1 = dwconv_scalar;
    t.dwconv_5x5s2 = dwconv_scalar;
    t.dwconv_any = dwconv_scalar;
    return t;
  }();
  return table;
}

}  // namespace keensight::nn::detail
