// Internal: the depthwise convolution operator of keensight.nn (groups == C, ONNX
// Conv with group = C and weights (C, 1, kh, kw)) on one NHWC float32 image: shape
// checks, weight packing, the choice of kernel-table entry (nn/kernels.hpp) and the
// threading over output rows. The kernels themselves are in depthwise_<isa>.cpp.
#pragma once

#include <cstdint>
#include <utility>

#include "nn/kernels.hpp"

namespace keensight::nn {

// The ConvShape of a depthwise convolution of an (in_h, in_w, c) image with a kh x kw
// kernel, stride, pads (top, left, bottom, right, ONNX order except that ONNX lists
// both begins first) and dilation; out_h / out_w follow ONNX (floor((in + pads -
// dilation (k - 1) - 1) / stride) + 1). Throws ValueError naming the argument on
// c, in_h, in_w < 1, kh, kw, strides, dilations < 1, negative pads, or a dilated
// kernel larger than the padded input.
ConvShape depthwise_shape(std::int64_t in_h, std::int64_t in_w, std::int64_t c, int kh, int kw, int stride_h,
                          int stride_w, int pad_top, int pad_left, int pad_bottom, int pad_right, int dilation_h,
                          int dilation_w);

// Throws ValueError unless `s` is a depthwise shape depthwise_shape would return.
void check_depthwise_shape(const ConvShape& s);

// ONNX weights (C, 1, kh, kw) -> the kernels' packed layout [kh * kw][C]
// (dst[(ky * kw + kx) * c + ch] = w_c1hw[(ch * kh + ky) * kw + kx]); dst holds kh * kw * c floats.
void pack_depthwise_weights(const float* w_c1hw, std::int64_t c, int kh, int kw, float* dst);

using DepthwiseRowsFn = void (*)(const detail::DepthwiseArgs& a, std::int64_t y0, std::int64_t y1);

// The entry of `kernels` for `s`: the fixed-shape 3x3 / 5x5 ones at stride 1 or 2
// (both ways) and dilation 1, dwconv_any otherwise.
DepthwiseRowsFn depthwise_entry(const detail::DepthwiseKernels& kernels, const ConvShape& s);

// Input rows [first, last) (clipped to [0, in_h)) that output rows [y0, y1) read:
// what a strip buffer passed as `in` with in_row0 = first must hold.
std::pair<std::int64_t, std::int64_t> depthwise_input_rows(const ConvShape& s, std::int64_t y0, std::int64_t y1);

// Output rows [y0, y1) of one image on the calling thread: `in` holds input rows
// from in_row0 on, `out` output rows from out_row0 on (nn/kernels.hpp DepthwiseArgs);
// packed_weights from pack_depthwise_weights; bias [c], never null. kernels: a table
// (depthwise_kernels_at(level)), null for the active level's.
void depthwise_conv2d_rows(const ConvShape& s, const float* packed_weights, const float* bias, const Activation& act,
                           const float* in, std::int64_t in_row0, float* out, std::int64_t out_row0, std::int64_t y0,
                           std::int64_t y1, const detail::DepthwiseKernels* kernels = nullptr);

// The whole image: in (in_h, in_w, c) NHWC -> out (out_h, out_w, c) NHWC, over at most
// `threads` threads (0: keensight's thread count), split by output rows (the result
// does not depend on the split). bias may be null (no bias).
void depthwise_conv2d_nhwc(const ConvShape& s, const float* packed_weights, const float* bias, const Activation& act,
                           const float* in, float* out, int threads = 0,
                           const detail::DepthwiseKernels* kernels = nullptr);

}  // namespace keensight::nn
