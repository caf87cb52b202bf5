// Internal: the pooling operators of keensight.nn on NHWC float32 images, one image
// at a time: ONNX MaxPool / AveragePool (any kernel, stride, padding, dilation,
// ceil_mode, count_include_pad) and GlobalAveragePool. Shapes, validation,
// threading and dispatch here; the kernels are the ops table's (nn/kernels.hpp).
#pragma once

#include <cstdint>

#include "nn/kernels.hpp"

namespace keensight::nn {

enum class PoolKind : std::int32_t { max = 0, average = 1 };

// The 2-D attributes of ONNX MaxPool / AveragePool (pads in ONNX order: top, left,
// bottom, right).
struct PoolParams {
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int dilation_h = 1, dilation_w = 1;
  bool ceil_mode = false;
  bool count_include_pad = false;  // AveragePool only
};

// The geometry of a pool over an in_h x in_w x channels image, output size by the
// ONNX rules (nn/pool_window.hpp window_output_size; ceil_mode's last window starts
// inside the input or the left padding). Throws ValueError naming the attribute:
// sizes < 1, kernel / stride / dilation < 1, pads < 0 or not smaller than the
// (dilated) kernel, a kernel larger than the padded input.
ConvShape pool_shape(std::int64_t in_h, std::int64_t in_w, std::int64_t channels, const PoolParams& params);

// One image: out (shape.out_h x out_w x in_c) from in (in_h x in_w x in_c), threaded
// over output rows (core/parallel.hpp; the result does not depend on the thread
// count). `kernels`: the ops table to use (null: the active level's).
// An all-padding window (possible only with dilation) gives -inf (max) or NaN
// (average without count_include_pad: 0 / 0).
void pool2d(PoolKind kind, const ConvShape& shape, bool count_include_pad, const float* in, float* out,
            const detail::OpsKernels* kernels = nullptr);

// Output rows [y0, y1) on this thread: `in` holds input rows from in_row0 on
// (nn/pool_window.hpp input_rows_for says which rows are read), `out` output rows
// from out_row0 on. For the fused blocks running strips of rows.
void pool2d_rows(PoolKind kind, const ConvShape& shape, bool count_include_pad, const float* in,
                 std::int64_t in_row0, float* out, std::int64_t out_row0, std::int64_t y0, std::int64_t y1,
                 const detail::OpsKernels* kernels = nullptr);

// GlobalAveragePool of one image: out[c] = mean over the pixels of in[p * channels + c].
// Throws ValueError if pixels or channels < 1.
void global_avg_pool2d(const float* in, std::int64_t pixels, std::int64_t channels, float* out,
                       const detail::OpsKernels* kernels = nullptr);

}  // namespace keensight::nn
