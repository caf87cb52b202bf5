// The direct stem convolution operator (nn/conv_direct.hpp).
#include "nn/conv_direct.hpp"

#include <algorithm>
#include <string>

#include "core/parallel.hpp"
#include "nn/pool_window.hpp"

namespace keensight::nn {

namespace {

void check_positive(std::int64_t v, const char* name) {
  if (v < 1) throw ValueError(std::string(name) + ": expected >= 1, got " + std::to_string(v));
}

}  // namespace

ConvShape conv_direct_shape(std::int64_t in_h, std::int64_t in_w, std::int64_t in_c, std::int64_t out_c, int kh,
                            int kw, int stride_h, int stride_w, const int pads[4], int dilation_h, int dilation_w) {
  check_positive(in_h, "input height");
  check_positive(in_w, "input width");
  check_positive(in_c, "input channels");
  check_positive(out_c, "output channels");
  check_positive(kh, "kernel height");
  check_positive(kw, "kernel width");
  check_positive(stride_h, "strides[0]");
  check_positive(stride_w, "strides[1]");
  check_positive(dilation_h, "dilations[0]");
  check_positive(dilation_w, "dilations[1]");
  for (int i = 0; i < 4; ++i)
    if (pads[i] < 0) throw ValueError("pads[" + std::to_string(i) + "]: expected >= 0, got " + std::to_string(pads[i]));
  ConvShape s;
  s.in_h = in_h;
  s.in_w = in_w;
  s.in_c = in_c;
  s.out_c = out_c;
  s.kh = kh;
  s.kw = kw;
  s.stride_h = stride_h;
  s.stride_w = stride_w;
  s.dilation_h = dilation_h;
  s.dilation_w = dilation_w;
  s.pad_top = pads[0];
  s.pad_left = pads[1];
  s.pad_bottom = pads[2];
  s.pad_right = pads[3];
  s.out_h = detail::window_output_size(in_h, kh, stride_h, s.pad_top, s.pad_bottom, dilation_h, false);
  s.out_w = detail::window_output_size(in_w, kw, stride_w, s.pad_left, s.pad_right, dilation_w, false);
  if (s.out_h < 1 || s.out_w < 1)
    throw ValueError("weights: the (dilated) kernel is larger than the padded input " +
                     std::to_string(in_h + s.pad_top + s.pad_bottom) + "x" +
                     std::to_string(in_w + s.pad_left + s.pad_right));
  return s;
}

bool conv_direct_applies(const ConvShape& s) {
  return s.groups == 1 && s.in_c >= 1 && s.in_c * s.kh * s.kw <= detail::kDirectConvMaxTaps;
}

std::vector<float> pack_direct_conv_weights(const float* w, std::int64_t out_c, std::int64_t in_c, int kh, int kw) {
  std::vector<float> packed(static_cast<std::size_t>(out_c * in_c * kh * kw));
  for (std::int64_t o = 0; o < out_c; ++o)
    for (std::int64_t i = 0; i < in_c; ++i)
      for (int ky = 0; ky < kh; ++ky)
        for (int kx = 0; kx < kw; ++kx)
          packed[static_cast<std::size_t>(((std::int64_t(ky) * kw + kx) * in_c + i) * out_c + o)] =
              w[((o * in_c + i) * kh + ky) * kw + kx];
  return packed;
}

void conv_direct_rows(const ConvShape& shape, const float* in, std::int64_t in_row0, const float* packed,
                      const float* bias, const Activation& act, float* out, std::int64_t out_row0, std::int64_t y0,
                      std::int64_t y1, const detail::OpsKernels* kernels) {
  if (y0 >= y1) return;
  const detail::OpsKernels& k = kernels ? *kernels : detail::ops_kernels();
  detail::DirectConvArgs args;
  args.shape = &shape;
  args.in = in;
  args.in_row0 = in_row0;
  args.weights = packed;
  args.bias = bias;
  args.act = act;
  args.out = out;
  args.out_row0 = out_row0;
  k.conv_direct(args, y0, y1);
}

void conv_direct(const ConvShape& shape, const float* in, const float* packed, const float* bias,
                 const Activation& act, float* out, const detail::OpsKernels* kernels) {
  if (!conv_direct_applies(shape))
    throw ValueError("conv_direct: expected groups == 1 and in_c * kh * kw <= " +
                     std::to_string(detail::kDirectConvMaxTaps) + ", got groups " + std::to_string(shape.groups) +
                     " and " + std::to_string(shape.in_c * shape.kh * shape.kw) + " taps");
  std::vector<float> zeros;
  if (!bias) {
    zeros.assign(static_cast<std::size_t>(shape.out_c), 0.f);
    bias = zeros.data();
  }
  const detail::OpsKernels& k = kernels ? *kernels : detail::ops_kernels();
  // Rows per thread chunk: at least ~64k multiply-adds.
  const std::int64_t per_row = std::max<std::int64_t>(1, shape.out_w * shape.out_c * shape.in_c * shape.kh * shape.kw);
  const std::int64_t min_rows = std::max<std::int64_t>(1, (std::int64_t(1) << 16) / per_row);
  keensight::detail::parallel_for(shape.out_h, min_rows, [&](std::int64_t y0, std::int64_t y1) {
    conv_direct_rows(shape, in, 0, packed, bias, act, out, 0, y0, y1, &k);
  });
}

}  // namespace keensight::nn
