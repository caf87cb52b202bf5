// The depthwise convolution operator (depthwise.hpp): shapes, packing, the choice
// of kernel entry and the threading over output rows.
#include "nn/depthwise.hpp"
#include "nn/pool_window.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "core/parallel.hpp"

namespace keensight::nn {

namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw ValueError(message);
}

// Work (multiply-adds) below which another thread costs more than it saves.
constexpr std::int64_t kMinFmasPerThread = 1 << 16;

}  // namespace

ConvShape depthwise_shape(std::int64_t in_h, std::int64_t in_w, std::int64_t c, int kh, int kw, int stride_h,
                          int stride_w, int pad_top, int pad_left, int pad_bottom, int pad_right, int dilation_h,
                          int dilation_w) {
  require(c >= 1, "channels: expected at least 1, got " + std::to_string(c));
  require(in_h >= 1 && in_w >= 1,
          "input: expected a non-empty image, got " + std::to_string(in_h) + " x " + std::to_string(in_w));
  require(kh >= 1 && kw >= 1, "kernel: expected sizes >= 1, got " + std::to_string(kh) + " x " + std::to_string(kw));
  require(stride_h >= 1 && stride_w >= 1, "stride: expected values >= 1");
  require(dilation_h >= 1 && dilation_w >= 1, "dilation: expected values >= 1");
  require(pad_top >= 0 && pad_left >= 0 && pad_bottom >= 0 && pad_right >= 0, "pads: expected values >= 0");
  ConvShape s;
  s.in_h = in_h;
  s.in_w = in_w;
  s.in_c = s.out_c = c;
  s.groups = static_cast<int>(std::min<std::int64_t>(c, 1 << 30));
  s.kh = kh;
  s.kw = kw;
  s.stride_h = stride_h;
  s.stride_w = stride_w;
  s.dilation_h = dilation_h;
  s.dilation_w = dilation_w;
  s.pad_top = pad_top;
  s.pad_left = pad_left;
  s.pad_bottom = pad_bottom;
  s.pad_right = pad_right;
  s.out_h = detail::window_output_size(in_h, kh, stride_h, pad_top, pad_bottom, dilation_h, false);
  s.out_w = detail::window_output_size(in_w, kw, stride_w, pad_left, pad_right, dilation_w, false);
  require(s.out_h >= 1 && s.out_w >= 1, "kernel: the (dilated) kernel " + std::to_string(kh) + " x " +
                                            std::to_string(kw) + " is larger than the padded input " +
                                            std::to_string(in_h + pad_top + pad_bottom) + " x " +
                                            std::to_string(in_w + pad_left + pad_right));
  return s;
}

void check_depthwise_shape(const ConvShape& s) {
  const ConvShape want = depthwise_shape(s.in_h, s.in_w, s.in_c, s.kh, s.kw, s.stride_h, s.stride_w, s.pad_top,
                                         s.pad_left, s.pad_bottom, s.pad_right, s.dilation_h, s.dilation_w);
  require(s.out_c == s.in_c, "shape: a depthwise convolution has as many output channels as input channels");
  require(s.out_h == want.out_h && s.out_w == want.out_w, "shape: out_h / out_w do not follow from the input");
}

void pack_depthwise_weights(const float* w_c1hw, std::int64_t c, int kh, int kw, float* dst) {
  const std::int64_t taps = static_cast<std::int64_t>(kh) * kw;
  for (std::int64_t ch = 0; ch < c; ++ch)
    for (std::int64_t t = 0; t < taps; ++t) dst[t * c + ch] = w_c1hw[ch * taps + t];
}

DepthwiseRowsFn depthwise_entry(const detail::DepthwiseKernels& kernels, const ConvShape& s) {
  const bool square_stride = s.stride_h == s.stride_w && (s.stride_h == 1 || s.stride_h == 2);
  if (square_stride && s.dilation_h == 1 && s.dilation_w == 1 && s.kh == s.kw) {
    const bool s1 = s.stride_h == 1;
    if (s.kh == 3) return s1 ? kernels.dwconv_3x3s1 : kernels.dwconv_3x3s2;
    if (s.kh == 5) return s1 ? kernels.dwconv_5x5s1 : kernels.dwconv_5x5s2;
  }
  return kernels.dwconv_any;
}

std::pair<std::int64_t, std::int64_t> depthwise_input_rows(const ConvShape& s, std::int64_t y0, std::int64_t y1) {
  if (y1 <= y0) return {0, 0};
  const detail::RowSpan span = detail::input_rows_for(y0, y1, s.stride_h, s.pad_top, s.dilation_h, s.kh, s.in_h);
  return {span.first, span.last};
}

void depthwise_conv2d_rows(const ConvShape& s, const float* packed_weights, const float* bias, const Activation& act,
                           const float* in, std::int64_t in_row0, float* out, std::int64_t out_row0, std::int64_t y0,
                           std::int64_t y1, const detail::DepthwiseKernels* kernels) {
  const detail::DepthwiseKernels& table = kernels ? *kernels : detail::depthwise_kernels();
  detail::DepthwiseArgs a;
  a.shape = &s;
  a.in = in;
  a.in_row0 = in_row0;
  a.weights = packed_weights;
  a.bias = bias;
  a.act = act;
  a.out = out;
  a.out_row0 = out_row0;
  depthwise_entry(table, s)(a, y0, y1);
}

void depthwise_conv2d_nhwc(const ConvShape& s, const float* packed_weights, const float* bias, const Activation& act,
                           const float* in, float* out, int threads, const detail::DepthwiseKernels* kernels) {
  std::vector<float> zeros;
  if (!bias) {
    zeros.assign(static_cast<std::size_t>(s.in_c), 0.f);
    bias = zeros.data();
  }
  const std::int64_t fmas_per_row = s.out_w * s.in_c * s.kh * s.kw;
  const std::int64_t min_rows = std::max<std::int64_t>(1, kMinFmasPerThread / std::max<std::int64_t>(1, fmas_per_row));
  keensight::detail::parallel_for(
      s.out_h, min_rows,
      [&](std::int64_t y0, std::int64_t y1) {
        depthwise_conv2d_rows(s, packed_weights, bias, act, in, 0, out, 0, y0, y1, kernels);
      },
      threads);
}

}  // namespace keensight::nn
