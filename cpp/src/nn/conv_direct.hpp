// Internal: the direct dense convolution of keensight.nn for layers with few input
// taps, in_c * kh * kw <= detail::kDirectConvMaxTaps (the 3 -> 32 channel 3x3
// stride-2 stem of MobileNet / EfficientNet), on NHWC float32 images, one at a time.
// An im2col + GEMM would spend more on packing 27-wide rows than on the FMAs; the
// direct kernel keeps a tile of output pixels x output channels in registers
// (nn/ops_simd.hpp). Shapes, checks, weight packing and threading here.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/kernels.hpp"

namespace keensight::nn {

// The geometry of a groups == 1 convolution (ONNX output size, floor mode).
// pads in ONNX order (top, left, bottom, right). Throws ValueError naming the
// argument: sizes < 1, stride / dilation < 1, pads < 0, a kernel larger than the
// padded input.
ConvShape conv_direct_shape(std::int64_t in_h, std::int64_t in_w, std::int64_t in_c, std::int64_t out_c, int kh,
                            int kw, int stride_h, int stride_w, const int pads[4], int dilation_h, int dilation_w);

// Whether the direct kernel takes this shape: groups == 1 and in_c * kh * kw <= 64.
bool conv_direct_applies(const ConvShape& shape);

// ONNX Conv weights (out_c, in_c, kh, kw) -> the kernel's [kh][kw][in_c][out_c]:
// weight (o, i, ky, kx) at ((ky * kw + kx) * in_c + i) * out_c + o.
std::vector<float> pack_direct_conv_weights(const float* w_oihw, std::int64_t out_c, std::int64_t in_c, int kh,
                                            int kw);

// One image: out (out_h x out_w x out_c) = activate(act, conv(in, weights) + bias),
// threaded over output rows (the result does not depend on the thread count).
// `packed`: pack_direct_conv_weights; `bias`: out_c values or null (zeros);
// `kernels`: the ops table to use (null: the active level's). Throws ValueError if
// !conv_direct_applies(shape).
void conv_direct(const ConvShape& shape, const float* in, const float* packed, const float* bias,
                 const Activation& act, float* out, const detail::OpsKernels* kernels = nullptr);

// Output rows [y0, y1) on this thread: `in` holds input rows from in_row0 on
// (nn/pool_window.hpp input_rows_for says which are read), `out` output rows from
// out_row0 on. `bias` must not be null here.
void conv_direct_rows(const ConvShape& shape, const float* in, std::int64_t in_row0, const float* packed,
                      const float* bias, const Activation& act, float* out, std::int64_t out_row0, std::int64_t y0,
                      std::int64_t y1, const detail::OpsKernels* kernels = nullptr);

}  // namespace keensight::nn
