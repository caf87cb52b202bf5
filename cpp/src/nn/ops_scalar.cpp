// The scalar reference of the nn ops table (nn/kernels.hpp): elementwise ops with a
// fused activation, the channel affine, pools and the direct stem convolution. Plain
// loops in exactly the order the contract states; every SIMD table is tested
// against these bit for bit (sigmoid / swish: within a few ulp).
#include <cmath>
#include <cstdint>
#include <limits>

#include "nn/kernels.hpp"
#include "nn/pool_window.hpp"

namespace keensight::nn::detail {

namespace {

void activate_scalar(const Activation& act, const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = activate(act, x[i]);
}

void add_scalar(const float* a, const float* b, float* y, std::int64_t n, const Activation& act) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = activate(act, a[i] + b[i]);
}

void mul_scalar(const float* a, const float* b, float* y, std::int64_t n, const Activation& act) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = activate(act, a[i] * b[i]);
}

// A null scale or shift skips its operation (x * 1 and x + 0 would round to x, but
// -0 + 0 is +0: skipping keeps every level identical).
void channel_affine_scalar(const float* x, const float* scale, const float* shift, float* y, std::int64_t pixels,
                           std::int64_t c, const Activation& act) {
  for (std::int64_t p = 0; p < pixels; ++p)
    for (std::int64_t ch = 0; ch < c; ++ch) {
      float v = x[p * c + ch];
      if (scale) v = v * scale[ch];
      if (shift) v = v + shift[ch];
      y[p * c + ch] = activate(act, v);
    }
}

void global_avg_pool_scalar(const float* x, std::int64_t pixels, std::int64_t c, float* y) {
  const float inv = 1.f / static_cast<float>(pixels);
  for (std::int64_t ch = 0; ch < c; ++ch) {
    float sum = 0.f;
    for (std::int64_t p = 0; p < pixels; ++p) sum += x[p * c + ch];
    y[ch] = sum * inv;
  }
}

void max_pool_scalar(const PoolArgs& a, std::int64_t y0, std::int64_t y1) {
  const ConvShape& s = *a.shape;
  const std::int64_t c = s.in_c;
  for (std::int64_t y = y0; y < y1; ++y) {
    const TapRange ry = tap_range(y, s.stride_h, s.pad_top, s.dilation_h, s.kh, s.in_h);
    float* out = a.out + (y - a.out_row0) * s.out_w * c;
    for (std::int64_t x = 0; x < s.out_w; ++x) {
      const TapRange rx = tap_range(x, s.stride_w, s.pad_left, s.dilation_w, s.kw, s.in_w);
      for (std::int64_t ch = 0; ch < c; ++ch) {
        float m = -std::numeric_limits<float>::infinity();
        bool nan = false;
        for (int ky = ry.first; ky < ry.last; ++ky) {
          const std::int64_t iy = ry.origin + std::int64_t(ky) * s.dilation_h;
          const float* row = a.in + (iy - a.in_row0) * s.in_w * c;
          for (int kx = rx.first; kx < rx.last; ++kx) {
            const float v = row[(rx.origin + std::int64_t(kx) * s.dilation_w) * c + ch];
            nan |= std::isnan(v);
            m = v > m ? v : m;
          }
        }
        out[x * c + ch] = nan ? std::numeric_limits<float>::quiet_NaN() : m;
      }
    }
  }
}

void avg_pool_scalar(const PoolArgs& a, std::int64_t y0, std::int64_t y1) {
  const ConvShape& s = *a.shape;
  const std::int64_t c = s.in_c;
  for (std::int64_t y = y0; y < y1; ++y) {
    const TapRange ry = tap_range(y, s.stride_h, s.pad_top, s.dilation_h, s.kh, s.in_h);
    const int count_y = a.count_include_pad ? padded_tap_count(y, s.stride_h, s.pad_top, s.pad_bottom, s.dilation_h,
                                                               s.kh, s.in_h)
                                            : ry.last - ry.first;
    float* out = a.out + (y - a.out_row0) * s.out_w * c;
    for (std::int64_t x = 0; x < s.out_w; ++x) {
      const TapRange rx = tap_range(x, s.stride_w, s.pad_left, s.dilation_w, s.kw, s.in_w);
      const int count_x = a.count_include_pad ? padded_tap_count(x, s.stride_w, s.pad_left, s.pad_right,
                                                                 s.dilation_w, s.kw, s.in_w)
                                              : rx.last - rx.first;
      const float count = static_cast<float>(count_y * count_x);
      for (std::int64_t ch = 0; ch < c; ++ch) {
        float sum = 0.f;
        for (int ky = ry.first; ky < ry.last; ++ky) {
          const std::int64_t iy = ry.origin + std::int64_t(ky) * s.dilation_h;
          const float* row = a.in + (iy - a.in_row0) * s.in_w * c;
          for (int kx = rx.first; kx < rx.last; ++kx) sum += row[(rx.origin + std::int64_t(kx) * s.dilation_w) * c + ch];
        }
        out[x * c + ch] = sum / count;
      }
    }
  }
}

void conv_direct_scalar(const DirectConvArgs& a, std::int64_t y0, std::int64_t y1) {
  const ConvShape& s = *a.shape;
  const std::int64_t in_c = s.in_c, out_c = s.out_c;
  for (std::int64_t y = y0; y < y1; ++y) {
    const TapRange ry = tap_range(y, s.stride_h, s.pad_top, s.dilation_h, s.kh, s.in_h);
    float* out = a.out + (y - a.out_row0) * s.out_w * out_c;
    for (std::int64_t x = 0; x < s.out_w; ++x) {
      const TapRange rx = tap_range(x, s.stride_w, s.pad_left, s.dilation_w, s.kw, s.in_w);
      for (std::int64_t o = 0; o < out_c; ++o) {
        float acc = a.bias[o];
        for (int ky = ry.first; ky < ry.last; ++ky) {
          const float* row = a.in + (ry.origin + std::int64_t(ky) * s.dilation_h - a.in_row0) * s.in_w * in_c;
          for (int kx = rx.first; kx < rx.last; ++kx) {
            const float* px = row + (rx.origin + std::int64_t(kx) * s.dilation_w) * in_c;
            const float* w = a.weights + (std::int64_t(ky) * s.kw + kx) * in_c * out_c + o;
            for (std::int64_t i = 0; i < in_c; ++i) acc = std::fma(px[i], w[i * out_c], acc);
          }
        }
        out[x * out_c + o] = activate(a.act, acc);
      }
    }
  }
}

}  // namespace

const OpsKernels& ops_kernels_scalar() {
  static const OpsKernels table = [] {
    OpsKernels t{};
    t.activate = activate_scalar;
    t.add = add_scalar;
    t.mul = mul_scalar;
    t.channel_affine = channel_affine_scalar;
    t.global_avg_pool = global_avg_pool_scalar;
    t.max_pool = max_pool_scalar;
    t.avg_pool = avg_pool_scalar;
    t.conv_direct = conv_direct_scalar;
    return t;
  }();
  return table;
}

}  // namespace keensight::nn::detail
