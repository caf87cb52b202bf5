// Internal: the leaf kernels of keensight's CNN engine (keensight.nn), one table
// per family and ISA level on the core dispatch (core/dispatch.hpp), XNNPACK
// style: a kernel is named by operation, tile and ISA (dwconv_3x3s1 ...), lives
// in a per-ISA file (depthwise_avx512.cpp ...) and contains no shape logic
// beyond its arguments; the operator files (depthwise.cpp, pool.cpp, conv.cpp)
// do shapes, padding, threading and dispatch.
//
// Layout: activations are NHWC float32, one image at a time, pixels of exactly
// `c` channels (pixel stride c, row stride w * c). Kernels take a row range of
// the output, so that the operators can thread over rows and the fused blocks
// can run them over strips of rows held in small buffers: `in` holds input rows
// from `in_row0` on (input row y is at in + (y - in_row0) * in_w * c) and `out`
// output rows from `out_row0` on.
//
// Arithmetic contract (what the kernel test checks): every output is
//   acc = bias[c]; for each tap in (ky, kx) order that lies inside the input:
//   acc = fma(input, weight, acc); out = activate(act, acc)
// taps in the padding are skipped (they would add 0). A SIMD kernel doing the
// same fused multiply-adds in the same order agrees with the scalar one bit for
// bit (sigmoid / swish: within a few ulp, their exp is approximated).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "keensight/core.hpp"
#include "keensight/nn.hpp"

namespace keensight::nn {

// Clamps propagate NaN (as ONNX Runtime's Clip): SIMD code writes them as
// max(lo, x) then min(hi, x) with the bound FIRST (x86 max/min return the
// second operand when either is NaN).
inline float clamp_nan(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

// The scalar reference of every activation: two roundings in x * alpha + beta
// (no fma; the build has -ffp-contract=off), sigmoid as 1 / (1 + exp(-x)).
inline float activate(const Activation& act, float x) {
  switch (act.kind) {
    case ActKind::none: return x;
    case ActKind::clip: return clamp_nan(x, act.lo, act.hi);
    case ActKind::hardsigmoid: return clamp_nan(x * act.alpha + act.beta, 0.f, 1.f);
    case ActKind::hardswish: return x * clamp_nan(x * act.alpha + act.beta, 0.f, 1.f);
    case ActKind::sigmoid: return 1.f / (1.f + std::exp(-x));
    case ActKind::swish: return x / (1.f + std::exp(-x));
  }
  return x;
}

// The geometry of a 2-D convolution or pool on one NHWC image.
struct ConvShape {
  std::int64_t in_h = 0, in_w = 0, in_c = 0;
  std::int64_t out_h = 0, out_w = 0, out_c = 0;
  int kh = 1, kw = 1;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int groups = 1;
};

}  // namespace keensight::nn

namespace keensight::nn::detail {

// ---------------------------------------------------------------------------
// Depthwise convolution (groups == in_c == out_c), depthwise.cpp picks the entry.

struct DepthwiseArgs {
  const ConvShape* shape = nullptr;  // in_c == out_c == c
  const float* in = nullptr;         // input rows from in_row0 on
  std::int64_t in_row0 = 0;
  const float* weights = nullptr;    // packed [kh * kw][c]: tap (ky, kx) of channel ch at (ky * kw + kx) * c + ch
  const float* bias = nullptr;       // [c], never null (zeros when the layer has none)
  Activation act;
  float* out = nullptr;              // output rows from out_row0 on
  std::int64_t out_row0 = 0;
};

struct DepthwiseKernels {
  // Output rows [y0, y1) of one image. The fixed-shape entries require the
  // shape they are named for (kh = kw = 3 or 5, stride 1 or 2 both ways,
  // dilation 1, any padding); dwconv_any takes every shape.
  void (*dwconv_3x3s1)(const DepthwiseArgs& a, std::int64_t y0, std::int64_t y1);
  void (*dwconv_3x3s2)(const DepthwiseArgs& a, std::int64_t y0, std::int64_t y1);
  void (*dwconv_5x5s1)(const DepthwiseArgs& a, std::int64_t y0, std::int64_t y1);
  void (*dwconv_5x5s2)(const DepthwiseArgs& a, std::int64_t y0, std::int64_t y1);
  void (*dwconv_any)(const DepthwiseArgs& a, std::int64_t y0, std::int64_t y1);
};

const DepthwiseKernels& depthwise_kernels();              // the active level's (depthwise.cpp)
const DepthwiseKernels& depthwise_kernels_at(Isa level);  // the table `level` falls back to
const DepthwiseKernels& depthwise_kernels_scalar();
const DepthwiseKernels& depthwise_kernels_avx2();
const DepthwiseKernels& depthwise_kernels_avx512();

// ---------------------------------------------------------------------------
// Dense convolution with few input taps (the 3 -> 32 channel 3x3 stride-2 stem
// of MobileNet / EfficientNet: in_c * kh * kw <= 64), direct, vectorised over
// the output channels; groups == 1, any stride / padding / dilation.

struct DirectConvArgs {
  const ConvShape* shape = nullptr;
  const float* in = nullptr;  // input rows from in_row0 on (in_c channels a pixel)
  std::int64_t in_row0 = 0;
  // packed [kh][kw][in_c][out_c]: weight (o, i, ky, kx) at ((ky * kw + kx) * in_c + i) * out_c + o
  const float* weights = nullptr;
  const float* bias = nullptr;  // [out_c], never null
  Activation act;
  float* out = nullptr;  // output rows from out_row0 on (out_c channels a pixel)
  std::int64_t out_row0 = 0;
};
// Summation order of each output: acc = bias; for ky, kx (inside the input), for i: acc = fma(x, w, acc).
constexpr std::int64_t kDirectConvMaxTaps = 64;

// ---------------------------------------------------------------------------
// Pools. Pooling windows follow ONNX MaxPool / AveragePool: window of output
// (y, x) starts at (y * stride_h - pad_top, x * stride_w - pad_left) with taps
// ky * dilation_h; positions outside the input are skipped (max: never the
// maximum; average: not counted unless count_include_pad, which counts the
// positions inside the padded input [-pad_top, in_h + pad_bottom) only).
// Max pool: an all-padding window gives -inf; NaN propagates as ONNX Runtime does.

struct PoolArgs {
  const ConvShape* shape = nullptr;  // in_c == out_c == c; groups unused
  bool count_include_pad = false;
  const float* in = nullptr;
  std::int64_t in_row0 = 0;
  float* out = nullptr;
  std::int64_t out_row0 = 0;
};

struct OpsKernels {
  // y[i] = activate(act, x[i]); x == y allowed.
  void (*activate)(const Activation& act, const float* x, float* y, std::int64_t n);
  // y[i] = activate(act, a[i] + b[i]); y may be a or b.
  void (*add)(const float* a, const float* b, float* y, std::int64_t n, const Activation& act);
  // y[i] = activate(act, a[i] * b[i]); y may be a or b.
  void (*mul)(const float* a, const float* b, float* y, std::int64_t n, const Activation& act);
  // Broadcast over pixels (squeeze-excitation, per-channel affine):
  // y[p * c + ch] = activate(act, x[p * c + ch] * scale[ch] + shift[ch]) for p < pixels;
  // scale or shift null: 1 or 0 (the product and the sum are two roundings).
  void (*channel_affine)(const float* x, const float* scale, const float* shift, float* y, std::int64_t pixels,
                         std::int64_t c, const Activation& act);
  // y[ch] = (sum over p in order of x[p * c + ch]) * (1 / pixels), float accumulation.
  void (*global_avg_pool)(const float* x, std::int64_t pixels, std::int64_t c, float* y);
  // Output rows [y0, y1) of one image.
  void (*max_pool)(const PoolArgs& a, std::int64_t y0, std::int64_t y1);
  void (*avg_pool)(const PoolArgs& a, std::int64_t y0, std::int64_t y1);
  // Output rows [y0, y1) of one image; requires in_c * kh * kw <= kDirectConvMaxTaps.
  void (*conv_direct)(const DirectConvArgs& a, std::int64_t y0, std::int64_t y1);
};

const OpsKernels& ops_kernels();              // ops.cpp
const OpsKernels& ops_kernels_at(Isa level);
const OpsKernels& ops_kernels_scalar();
const OpsKernels& ops_kernels_avx2();
const OpsKernels& ops_kernels_avx512();

}  // namespace keensight::nn::detail
