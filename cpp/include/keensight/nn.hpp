// keensight nn: a CNN inference engine for compact networks (MobileNet v1/v2/v3,
// EfficientNet-Lite) on CPUs.
//
// A Network is built node by node (the Python layer lowers ONNX graphs to these
// calls), prepares every weight once (GEMM panels, depthwise taps channels-last)
// and plans its activation buffers, then runs images: NCHW float32 in and out
// at the edges, NHWC inside. Every image goes through the same sequence of
// operations whatever the batch size or the thread count, so results do not
// depend on either.
//
// Thread safety: building (the add-node calls) is not thread-safe; run() is
// const and may be called from many threads at once (each call takes its own
// activation arena from a pool).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "keensight/core.hpp"

namespace keensight::nn {

// The activations a convolution, an elementwise op or a standalone pass applies.
enum class ActKind : std::int32_t { none = 0, clip = 1, hardswish = 2, hardsigmoid = 3, sigmoid = 4, swish = 5 };

struct Activation {
  ActKind kind = ActKind::none;
  // clip: [lo, hi] (relu: [0, inf], relu6: [0, 6]).
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
  // hardsigmoid(x) = clamp(x * alpha + beta, 0, 1) (ONNX: alpha 0.2, beta 0.5;
  // PyTorch / MobileNetV3: 1/6, 0.5); hardswish(x) = x * hardsigmoid(x) (ONNX
  // HardSwish: alpha 1/6, beta 0.5).
  float alpha = 1.f / 6.f, beta = 0.5f;
};

// Per-image tensor shape: a feature map C x H x W, or a vector of C (H = W = 1).
struct Shape {
  std::int64_t c = 0, h = 0, w = 0;
  std::int64_t size() const { return c * h * w; }
};

struct Conv2dParams {
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int groups = 1;
};

struct Pool2dParams {
  int kh = 1, kw = 1;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool ceil_mode = false;
  bool count_include_pad = false;  // average pool only
};

// Output length of a convolution / pool axis (ONNX): floor or ceil of
// (size + pads - ((k - 1) * d + 1)) / s, + 1; with ceil_mode the last window
// must start inside the input or the leading padding. Throws ValueError naming
// `what` when the dilated kernel exceeds the padded input.
std::int64_t conv_output_size(std::int64_t size, int k, int stride, int dilation, int pad_begin, int pad_end,
                              bool ceil_mode, const char* what);

class Network {
 public:
  Network();
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // Each call adds one node and returns its output tensor's id. Arguments are
  // validated (ValueError naming the problem); weights are copied and packed.
  int input(Shape shape);
  // w: O x (C / groups) x kh x kw (ONNX OIHW); bias: O values or null;
  // residual: a tensor of the output's shape added before the activation, or -1.
  int conv(int x, const float* w, std::int64_t out_c, int kh, int kw, const float* bias, const Conv2dParams& p,
           const Activation& act, int residual = -1);
  int max_pool(int x, const Pool2dParams& p);
  int avg_pool(int x, const Pool2dParams& p);
  int global_avg_pool(int x);
  int activation(int x, const Activation& act);
  // b: the shape of a, or C x 1 x 1 (broadcast over H x W).
  int add(int a, int b, const Activation& act);
  int mul(int a, int b, const Activation& act);
  // y = x * scale + shift per channel; scale / shift: C values or null.
  int channel_affine(int x, const float* scale, const float* shift, const Activation& act);
  int concat(const std::vector<int>& xs);
  int flatten(int x);  // C x H x W -> (C * H * W) vector in C-major (ONNX) order
  // w: O x I (I = the input's size); y = w x + bias.
  int dense(int x, const float* w, std::int64_t out_c, const float* bias, const Activation& act);
  int softmax(int x);  // over the channels of a vector

  int tensor_count() const;
  Shape shape(int t) const;
  // Bytes of packed weights and of one image's activation arena.
  std::int64_t weight_bytes() const;
  std::int64_t arena_bytes() const;

  // The inputs, in the order input() added them, and the tensor of input i.
  int input_count() const;
  int input_tensor(int i) const;

  // Runs n images: x[i] holds input i of every image (n x C x H x W, NCHW);
  // writes tensor outputs[i] of image j (NCHW) at out[i] + j * shape(outputs[i]).size().
  // threads: 0 = the default (get_num_threads()).
  void run(const std::vector<const float*>& x, std::int64_t n, const std::vector<int>& outputs,
           const std::vector<float*>& out, int threads = 0) const;
  // Runs the n images one by one with `threads` inside each operator and returns
  // the seconds spent in each node (the order nodes were added), summed over images.
  std::vector<double> profile(const std::vector<const float*>& x, std::int64_t n, int threads = 0) const;
  // The node that produces tensor t (-1 for none), and the kind of each node
  // ("conv_pointwise", "conv_depthwise", ..., "input").
  int node_count() const;
  std::string node_kind(int node) const;
  // A convolution's or dense node's weights as they were given (O x I/groups x kh
  // x kw, or O x I, row-major; the packing undone) and its bias (zeros when none):
  // what lets a network be saved without keeping a second copy of its weights.
  std::vector<float> node_weights(int node) const;
  std::vector<float> node_bias(int node) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace keensight::nn
