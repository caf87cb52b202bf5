// The pooling operators (nn/pool.hpp): ONNX shapes and checks, threading over
// output rows, the ops table's kernels.
#include "nn/pool.hpp"

#include <algorithm>
#include <string>

#include "core/parallel.hpp"
#include "nn/pool_window.hpp"

namespace keensight::nn {

namespace {

// Rows per thread chunk: at least ~64k taps of work, so that a small pool is not split.
std::int64_t min_rows_per_chunk(const ConvShape& s) {
  const std::int64_t per_row = std::max<std::int64_t>(1, s.out_w * s.in_c * s.kh * s.kw);
  return std::max<std::int64_t>(1, (std::int64_t(1) << 16) / per_row);
}

void check_positive(std::int64_t v, const char* name) {
  if (v < 1) throw ValueError(std::string(name) + ": expected >= 1, got " + std::to_string(v));
}

}  // namespace

ConvShape pool_shape(std::int64_t in_h, std::int64_t in_w, std::int64_t channels, const PoolParams& p) {
  check_positive(in_h, "input height");
  check_positive(in_w, "input width");
  check_positive(channels, "channels");
  check_positive(p.kernel_h, "kernel_shape[0]");
  check_positive(p.kernel_w, "kernel_shape[1]");
  check_positive(p.stride_h, "strides[0]");
  check_positive(p.stride_w, "strides[1]");
  check_positive(p.dilation_h, "dilations[0]");
  check_positive(p.dilation_w, "dilations[1]");
  const int pads[4] = {p.pad_top, p.pad_left, p.pad_bottom, p.pad_right};
  const std::int64_t extent_h = std::int64_t(p.kernel_h - 1) * p.dilation_h + 1;
  const std::int64_t extent_w = std::int64_t(p.kernel_w - 1) * p.dilation_w + 1;
  for (int i = 0; i < 4; ++i) {
    if (pads[i] < 0) throw ValueError("pads[" + std::to_string(i) + "]: expected >= 0, got " + std::to_string(pads[i]));
    const std::int64_t extent = i % 2 == 0 ? extent_h : extent_w;
    if (pads[i] >= extent)
      throw ValueError("pads[" + std::to_string(i) + "]: expected smaller than the (dilated) kernel, " +
                       std::to_string(extent) + ", got " + std::to_string(pads[i]));
  }
  ConvShape s;
  s.in_h = in_h;
  s.in_w = in_w;
  s.in_c = s.out_c = channels;
  s.kh = p.kernel_h;
  s.kw = p.kernel_w;
  s.stride_h = p.stride_h;
  s.stride_w = p.stride_w;
  s.dilation_h = p.dilation_h;
  s.dilation_w = p.dilation_w;
  s.pad_top = p.pad_top;
  s.pad_left = p.pad_left;
  s.pad_bottom = p.pad_bottom;
  s.pad_right = p.pad_right;
  s.out_h = detail::window_output_size(in_h, s.kh, s.stride_h, s.pad_top, s.pad_bottom, s.dilation_h, p.ceil_mode);
  s.out_w = detail::window_output_size(in_w, s.kw, s.stride_w, s.pad_left, s.pad_right, s.dilation_w, p.ceil_mode);
  if (s.out_h < 1 || s.out_w < 1)
    throw ValueError("kernel_shape: the (dilated) kernel " + std::to_string(extent_h) + "x" + std::to_string(extent_w) +
                     " is larger than the padded input " + std::to_string(in_h + s.pad_top + s.pad_bottom) + "x" +
                     std::to_string(in_w + s.pad_left + s.pad_right));
  return s;
}

void pool2d_rows(PoolKind kind, const ConvShape& shape, bool count_include_pad, const float* in,
                 std::int64_t in_row0, float* out, std::int64_t out_row0, std::int64_t y0, std::int64_t y1,
                 const detail::OpsKernels* kernels) {
  if (y0 >= y1) return;
  const detail::OpsKernels& k = kernels ? *kernels : detail::ops_kernels();
  detail::PoolArgs args;
  args.shape = &shape;
  args.count_include_pad = count_include_pad;
  args.in = in;
  args.in_row0 = in_row0;
  args.out = out;
  args.out_row0 = out_row0;
  (kind == PoolKind::max ? k.max_pool : k.avg_pool)(args, y0, y1);
}

void pool2d(PoolKind kind, const ConvShape& shape, bool count_include_pad, const float* in, float* out,
            const detail::OpsKernels* kernels) {
  const detail::OpsKernels& k = kernels ? *kernels : detail::ops_kernels();
  keensight::detail::parallel_for(shape.out_h, min_rows_per_chunk(shape), [&](std::int64_t y0, std::int64_t y1) {
    pool2d_rows(kind, shape, count_include_pad, in, 0, out, 0, y0, y1, &k);
  });
}

void global_avg_pool2d(const float* in, std::int64_t pixels, std::int64_t channels, float* out,
                       const detail::OpsKernels* kernels) {
  check_positive(pixels, "pixels");
  check_positive(channels, "channels");
  // One thread: the whole pass reads each input once (EfficientNet's 7x7x1280 is
  // 63k adds, less than a thread start-up costs).
  (kernels ? *kernels : detail::ops_kernels()).global_avg_pool(in, pixels, channels, out);
}

}  // namespace keensight::nn
