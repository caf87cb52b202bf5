// The CNN engine's network: nodes built once (weights packed), activation
// buffers planned once, images run one at a time through the node list.
//
// Execution model. Activations are NHWC float32 per image (pixel stride = the
// channel count). The input is transposed from NCHW when an image starts and
// every requested tensor is transposed back to NCHW the moment it is produced,
// so no tensor has to outlive its last consumer. A batch runs image by image:
// with several threads and at least as many images as threads, each thread
// takes whole images (no synchronisation inside a network run); otherwise the
// operators thread inside the image (rows of a depthwise / pool layer, row
// blocks x column groups of a pointwise GEMM). Either way every output value
// is the same sequence of floating-point operations, so results do not depend
// on the batch or the thread count.
//
// Buffer plan. Each tensor gets a slot of the per-image arena; a slot is reused
// by a later tensor once every consumer of its tensor has run (best fit among
// free slots, never the slot of an input of the same node). Arenas are pooled
// per network, so concurrent run() calls each take their own and repeated
// calls touch memory that is already mapped.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/buffer.hpp"
#include "core/gemm.hpp"
#include "core/parallel.hpp"
#include "keensight/nn.hpp"
#include "nn/conv_direct.hpp"
#include "nn/depthwise.hpp"
#include "nn/pool.hpp"
#include "nn/pool_window.hpp"
#include "nn/kernels.hpp"

namespace keensight::nn {

using keensight::nn::ConvShape;
using keensight::detail::AlignedBuffer;
using keensight::detail::GemmF32Kernels;

namespace {

enum class Op {
  input,
  conv_pointwise,  // 1x1, stride 1, no padding, groups 1: one GEMM on the NHWC rows
  conv_depthwise,  // groups == in == out channels
  conv_direct,     // groups 1, in_c * kh * kw <= kDirectConvMaxTaps (the stem)
  conv_im2col,     // everything else: im2col strips per group + GEMM
  max_pool,
  avg_pool,
  global_avg_pool,
  activation,
  add,
  mul,
  channel_affine,
  concat,
  flatten,
  dense,
  softmax,
};

// Elements of one image's tensors (and of its whole activation arena) are
// limited so that no offset computation can overflow and no plan asks for
// absurd memory: 4 GiB of floats a tensor, 8 GiB an arena.
constexpr std::int64_t kMaxTensorElements = std::int64_t{1} << 30;
constexpr std::int64_t kMaxArenaFloats = std::int64_t{1} << 31;
// The im2col strip of a general convolution: at most this many floats.
constexpr std::int64_t kIm2colStripFloats = std::int64_t{1} << 18;  // 1 MiB

std::int64_t checked_size(const Shape& s, const char* what) {
  if (s.c <= 0 || s.h <= 0 || s.w <= 0)
    throw ValueError(std::string(what) + ": expected positive C, H, W, got " + std::to_string(s.c) + " x " +
                     std::to_string(s.h) + " x " + std::to_string(s.w));
  if (s.c > kMaxTensorElements || s.h > kMaxTensorElements || s.w > kMaxTensorElements ||
      s.c * s.h > kMaxTensorElements || s.c * s.h * s.w > kMaxTensorElements)
    throw ValueError(std::string(what) + ": a tensor of " + std::to_string(s.c) + " x " + std::to_string(s.h) +
                     " x " + std::to_string(s.w) + " per image is larger than 2^30 elements (4 GiB)");
  return s.c * s.h * s.w;
}

void check_activation(const Activation& act, const char* what) {
  const int kind = static_cast<int>(act.kind);
  if (kind < 0 || kind > static_cast<int>(ActKind::swish))
    throw ValueError(std::string(what) + ": unknown activation kind " + std::to_string(kind));
  if (act.kind == ActKind::clip && !(act.lo <= act.hi))
    throw ValueError(std::string(what) + ": clip bounds must satisfy lo <= hi");
  if ((act.kind == ActKind::hardsigmoid || act.kind == ActKind::hardswish) &&
      !(std::isfinite(act.alpha) && std::isfinite(act.beta)))
    throw ValueError(std::string(what) + ": hardsigmoid / hardswish alpha and beta must be finite");
}

struct Node {
  Op op = Op::input;
  std::vector<int> inputs;
  int output = -1;
  Activation act;
  ConvShape geom;  // convolutions and pools
  bool count_include_pad = false;
  const GemmF32Kernels* gemm = nullptr;  // the table `weights` was packed for (GEMM ops)
  AlignedBuffer<float> weights;          // packed
  std::vector<float> bias;               // convolutions / dense: out_c values (zeros when none)
  std::vector<float> scale, shift;       // channel_affine (empty: none)
  bool broadcast = false;                // add / mul: the second input is C x 1 x 1
  std::int64_t k = 0;                    // GEMM reduction length
  std::int64_t strip_rows = 0;           // conv_im2col: output rows per strip
};

struct Slot {
  std::int64_t floats = 0, offset = 0;
};

// A MobileNet v2 bottleneck run over strips of output rows (Sandler et al. 2018,
// §5.1 "Memory efficient inference": the expanded tensor is never materialised
// whole): node `expand` (a 1x1 convolution; -1 when the block has none) ->
// `dw` (depthwise) -> `project` (a 1x1 convolution, residual allowed). Per strip,
// the expansion computes the input rows the depthwise strip reads (rows kept from
// the previous strip are not recomputed), the depthwise computes the strip, the
// projection writes it to the output tensor. Same operations per value as the
// three nodes run one after the other.
struct FusedBlock {
  int expand = -1, dw = -1, project = -1;  // node indices
  std::int64_t strip_rows = 1;             // depthwise output rows per strip
};

// Where every tensor lives in the per-image arena, for one execution mode.
struct Plan {
  bool made = false;
  std::vector<std::int64_t> offset;  // per tensor, floats into the arena (-1: no slot: inside a fused block)
  std::int64_t scratch_offset = 0, arena_floats = 0;
  std::vector<FusedBlock> blocks;
  std::vector<int> block_at;         // per node: the fused block starting there, or -1
  std::vector<bool> inside;          // per node: a member of a fused block (run by it)
};

}  // namespace

struct Network::Impl {
  std::vector<Shape> shapes;  // per tensor
  std::vector<Node> nodes;    // in execution order; node.output is the tensor it produces
  std::int64_t weight_bytes = 0;

  // The plans (made on the first run after a change): plans[1] fuses the
  // bottleneck blocks, plans[0] runs every node on its own (when a run asks for
  // a tensor inside a block).
  mutable std::mutex mutex;
  mutable Plan plans[2];
  mutable std::vector<std::unique_ptr<AlignedBuffer<float>>> free_arenas;

  int add_tensor(const Shape& s, const char* what) {
    checked_size(s, what);
    shapes.push_back(s);
    plans[0].made = plans[1].made = false;
    return static_cast<int>(shapes.size()) - 1;
  }
  const Shape& tensor(int t, const char* what) const {
    if (t < 0 || t >= static_cast<int>(shapes.size()))
      throw ValueError(std::string(what) + ": no tensor " + std::to_string(t) + " in this network (it has " +
                       std::to_string(shapes.size()) + ")");
    return shapes[static_cast<std::size_t>(t)];
  }
  int push(Node&& node, const Shape& out, const char* what) {
    node.output = add_tensor(out, what);
    nodes.push_back(std::move(node));
    return nodes.back().output;
  }

  const Plan& plan(bool fuse) const;  // call with `mutex` held
  std::vector<FusedBlock> find_blocks() const;
  void run_image(const Plan& plan, const std::vector<const float*>& x, std::int64_t image,
                 const std::vector<int>& outputs, const std::vector<float*>& out, float* arena, int threads,
                 double* node_seconds = nullptr) const;
  void run_node(const Plan& plan, const Node& node, float* arena, int threads) const;
  void run_block(const Plan& plan, const FusedBlock& block, float* arena, int threads) const;
};

std::int64_t conv_output_size(std::int64_t size, int k, int stride, int dilation, int pad_begin, int pad_end,
                              bool ceil_mode, const char* what) {
  if (k < 1 || stride < 1 || dilation < 1)
    throw ValueError(std::string(what) + ": kernel, stride and dilation must be >= 1");
  if (pad_begin < 0 || pad_end < 0) throw ValueError(std::string(what) + ": pads must be >= 0");
  const std::int64_t out = detail::window_output_size(size, k, stride, pad_begin, pad_end, dilation, ceil_mode);
  if (out < 1)
    throw ValueError(std::string(what) + ": the kernel (" + std::to_string(std::int64_t{k - 1} * dilation + 1) +
                     " with dilation) is larger than the padded input (" +
                     std::to_string(size + pad_begin + pad_end) + ")");
  return out;
}

Network::Network() : impl_(std::make_unique<Impl>()) {}
Network::~Network() = default;

int Network::input(Shape shape) {
  Node node;
  node.op = Op::input;
  return impl_->push(std::move(node), shape, "input");
}

namespace {

std::string shape_text(const Shape& s) {
  return std::to_string(s.c) + " x " + std::to_string(s.h) + " x " + std::to_string(s.w);
}

}  // namespace

namespace {

ConvShape conv_geometry(const Shape& in, std::int64_t out_c, int kh, int kw, const Conv2dParams& p, bool ceil_mode,
                        const char* what) {
  ConvShape g;
  g.in_h = in.h;
  g.in_w = in.w;
  g.in_c = in.c;
  g.out_c = out_c;
  g.kh = kh;
  g.kw = kw;
  g.stride_h = p.stride_h;
  g.stride_w = p.stride_w;
  g.dilation_h = p.dilation_h;
  g.dilation_w = p.dilation_w;
  g.pad_top = p.pad_top;
  g.pad_left = p.pad_left;
  g.pad_bottom = p.pad_bottom;
  g.pad_right = p.pad_right;
  g.groups = p.groups;
  g.out_h = conv_output_size(in.h, kh, p.stride_h, p.dilation_h, p.pad_top, p.pad_bottom, ceil_mode, what);
  g.out_w = conv_output_size(in.w, kw, p.stride_w, p.dilation_w, p.pad_left, p.pad_right, ceil_mode, what);
  return g;
}

void check_conv_params(const Conv2dParams& p, const char* what) {
  if (p.stride_h < 1 || p.stride_w < 1) throw ValueError(std::string(what) + ": strides must be >= 1");
  if (p.dilation_h < 1 || p.dilation_w < 1) throw ValueError(std::string(what) + ": dilations must be >= 1");
  if (p.pad_top < 0 || p.pad_left < 0 || p.pad_bottom < 0 || p.pad_right < 0)
    throw ValueError(std::string(what) + ": pads must be >= 0");
}

}  // namespace

int Network::conv(int x, const float* w, std::int64_t out_c, int kh, int kw, const float* bias, const Conv2dParams& p,
                  const Activation& act, int residual) {
  const char* what = "conv";
  const Shape in = impl_->tensor(x, "conv input");
  check_conv_params(p, what);
  check_activation(act, what);
  if (!w) throw ValueError("conv: weights are null");
  if (out_c < 1 || kh < 1 || kw < 1) throw ValueError("conv: expected a non-empty O x I x kh x kw weight");
  if (p.groups < 1) throw ValueError("conv: groups must be >= 1");
  if (in.c % p.groups != 0 || out_c % p.groups != 0)
    throw ValueError("conv: groups (" + std::to_string(p.groups) + ") must divide the input channels (" +
                     std::to_string(in.c) + ") and the output channels (" + std::to_string(out_c) + ")");
  Node node;
  node.geom = conv_geometry(in, out_c, kh, kw, p, false, what);
  node.act = act;
  node.inputs = {x};
  const Shape out{out_c, node.geom.out_h, node.geom.out_w};
  checked_size(out, what);
  if (residual >= 0) {
    const Shape r = impl_->tensor(residual, "conv residual");
    if (r.c != out.c || r.h != out.h || r.w != out.w)
      throw ValueError("conv: the residual (" + shape_text(r) + ") does not have the output's shape (" +
                       shape_text(out) + ")");
    node.inputs.push_back(residual);
  }
  node.bias.assign(static_cast<std::size_t>(out_c), 0.f);
  if (bias) std::copy(bias, bias + out_c, node.bias.begin());
  const std::int64_t cin_g = in.c / p.groups, cout_g = out_c / p.groups;
  const std::int64_t taps = std::int64_t{kh} * kw;
  const bool depthwise = p.groups == in.c && out_c == in.c && p.groups > 1;
  const bool pointwise = p.groups == 1 && kh == 1 && kw == 1 && p.stride_h == 1 && p.stride_w == 1 &&
                         p.pad_top == 0 && p.pad_left == 0 && p.pad_bottom == 0 && p.pad_right == 0;
  const bool direct = conv_direct_applies(node.geom) && !pointwise && residual < 0;
  if (depthwise && residual < 0) {
    node.op = Op::conv_depthwise;
    node.weights.resize(taps * in.c);
    pack_depthwise_weights(w, in.c, kh, kw, node.weights.get());
  } else if (direct) {
    node.op = Op::conv_direct;
    const std::vector<float> packed = pack_direct_conv_weights(w, out_c, in.c, kh, kw);
    node.weights.resize(static_cast<std::int64_t>(packed.size()));
    std::copy(packed.begin(), packed.end(), node.weights.get());
  } else {
    // GEMM: B rows are output channels, each of k = taps * cin_g values in
    // (ky, kx, ci) order, the order of an NHWC im2col row.
    node.op = pointwise ? Op::conv_pointwise : Op::conv_im2col;
    node.gemm = &keensight::detail::gemm_f32_kernels();
    node.k = taps * cin_g;
    std::vector<float> rows(static_cast<std::size_t>(cout_g * node.k));
    const std::int64_t group_floats = keensight::detail::fused_packed_size(*node.gemm, cout_g, node.k);
    node.weights.resize(group_floats * p.groups);
    for (int g = 0; g < p.groups; ++g) {
      for (std::int64_t o = 0; o < cout_g; ++o)
        for (std::int64_t i = 0; i < cin_g; ++i)
          for (std::int64_t t = 0; t < taps; ++t)
            rows[static_cast<std::size_t>(o * node.k + t * cin_g + i)] = w[((g * cout_g + o) * cin_g + i) * taps + t];
      keensight::detail::pack_fused_b(*node.gemm, rows.data(), node.k, cout_g, node.k,
                                      node.weights.get() + g * group_floats);
    }
    if (!pointwise) {
      const std::int64_t row_floats = node.geom.out_w * node.k;
      node.strip_rows = std::max<std::int64_t>(1, std::min(node.geom.out_h, kIm2colStripFloats / row_floats));
    }
  }
  impl_->weight_bytes += static_cast<std::int64_t>(node.weights.capacity() * sizeof(float) + node.bias.size() * sizeof(float));
  return impl_->push(std::move(node), out, what);
}

namespace {

ConvShape pool_geometry(const Shape& in, const Pool2dParams& p, const char* what) {
  PoolParams q;
  q.kernel_h = p.kh;
  q.kernel_w = p.kw;
  q.stride_h = p.stride_h;
  q.stride_w = p.stride_w;
  q.pad_top = p.pad_top;
  q.pad_left = p.pad_left;
  q.pad_bottom = p.pad_bottom;
  q.pad_right = p.pad_right;
  q.dilation_h = p.dilation_h;
  q.dilation_w = p.dilation_w;
  q.ceil_mode = p.ceil_mode;
  q.count_include_pad = p.count_include_pad;
  try {
    return pool_shape(in.h, in.w, in.c, q);
  } catch (const ValueError& e) {
    throw ValueError(std::string(what) + ": " + e.what());
  }
}

}  // namespace

int Network::max_pool(int x, const Pool2dParams& p) {
  const Shape in = impl_->tensor(x, "max_pool input");
  Node node;
  node.op = Op::max_pool;
  node.geom = pool_geometry(in, p, "max_pool");
  node.inputs = {x};
  return impl_->push(std::move(node), Shape{in.c, node.geom.out_h, node.geom.out_w}, "max_pool");
}

int Network::avg_pool(int x, const Pool2dParams& p) {
  const Shape in = impl_->tensor(x, "avg_pool input");
  if (p.dilation_h != 1 || p.dilation_w != 1) throw ValueError("avg_pool: dilation must be 1");
  Node node;
  node.op = Op::avg_pool;
  node.geom = pool_geometry(in, p, "avg_pool");
  node.count_include_pad = p.count_include_pad;
  node.inputs = {x};
  return impl_->push(std::move(node), Shape{in.c, node.geom.out_h, node.geom.out_w}, "avg_pool");
}

int Network::global_avg_pool(int x) {
  const Shape in = impl_->tensor(x, "global_avg_pool input");
  Node node;
  node.op = Op::global_avg_pool;
  node.inputs = {x};
  return impl_->push(std::move(node), Shape{in.c, 1, 1}, "global_avg_pool");
}

int Network::activation(int x, const Activation& act) {
  const Shape in = impl_->tensor(x, "activation input");
  check_activation(act, "activation");
  Node node;
  node.op = Op::activation;
  node.act = act;
  node.inputs = {x};
  return impl_->push(std::move(node), in, "activation");
}


static int binary_node(Network::Impl& impl, Op op, int a, int b, const Activation& act, const char* what) {
  const Shape sa = impl.tensor(a, what), sb = impl.tensor(b, what);
  check_activation(act, what);
  Node node;
  node.op = op;
  node.act = act;
  node.inputs = {a, b};
  if (sa.c == sb.c && sa.h == sb.h && sa.w == sb.w) {
    node.broadcast = false;
  } else if (sb.c == sa.c && sb.h == 1 && sb.w == 1) {
    node.broadcast = true;
  } else {
    throw ValueError(std::string(what) + ": the second input (" + shape_text(sb) + ") must have the first's shape (" +
                     shape_text(sa) + ") or be C x 1 x 1 with its channels");
  }
  return impl.push(std::move(node), sa, what);
}

int Network::add(int a, int b, const Activation& act) { return binary_node(*impl_, Op::add, a, b, act, "add"); }
int Network::mul(int a, int b, const Activation& act) { return binary_node(*impl_, Op::mul, a, b, act, "mul"); }

int Network::channel_affine(int x, const float* scale, const float* shift, const Activation& act) {
  const Shape in = impl_->tensor(x, "channel_affine input");
  check_activation(act, "channel_affine");
  Node node;
  node.op = Op::channel_affine;
  node.act = act;
  node.inputs = {x};
  if (scale) node.scale.assign(scale, scale + in.c);
  if (shift) node.shift.assign(shift, shift + in.c);
  return impl_->push(std::move(node), in, "channel_affine");
}

int Network::concat(const std::vector<int>& xs) {
  if (xs.empty()) throw ValueError("concat: expected at least one input");
  const Shape first = impl_->tensor(xs[0], "concat input");
  std::int64_t c = 0;
  for (int x : xs) {
    const Shape s = impl_->tensor(x, "concat input");
    if (s.h != first.h || s.w != first.w)
      throw ValueError("concat: inputs must share H x W, got " + shape_text(first) + " and " + shape_text(s));
    c += s.c;
  }
  Node node;
  node.op = Op::concat;
  node.inputs = xs;
  return impl_->push(std::move(node), Shape{c, first.h, first.w}, "concat");
}

int Network::flatten(int x) {
  const Shape in = impl_->tensor(x, "flatten input");
  Node node;
  node.op = Op::flatten;
  node.inputs = {x};
  return impl_->push(std::move(node), Shape{in.size(), 1, 1}, "flatten");
}

int Network::dense(int x, const float* w, std::int64_t out_c, const float* bias, const Activation& act) {
  const Shape in = impl_->tensor(x, "dense input");
  check_activation(act, "dense");
  if (in.h != 1 || in.w != 1)
    throw ValueError("dense: expected a vector input (C x 1 x 1), got " + shape_text(in) + "; flatten it first");
  if (!w || out_c < 1) throw ValueError("dense: expected a non-empty O x I weight");
  Node node;
  node.op = Op::dense;
  node.act = act;
  node.inputs = {x};
  node.k = in.c;
  node.gemm = &keensight::detail::gemm_f32_kernels();
  node.weights.resize(keensight::detail::fused_packed_size(*node.gemm, out_c, in.c));
  keensight::detail::pack_fused_b(*node.gemm, w, in.c, out_c, in.c, node.weights.get());
  node.bias.assign(static_cast<std::size_t>(out_c), 0.f);
  if (bias) std::copy(bias, bias + out_c, node.bias.begin());
  impl_->weight_bytes += static_cast<std::int64_t>(node.weights.capacity() * sizeof(float) + node.bias.size() * sizeof(float));
  return impl_->push(std::move(node), Shape{out_c, 1, 1}, "dense");
}

int Network::softmax(int x) {
  const Shape in = impl_->tensor(x, "softmax input");
  if (in.h != 1 || in.w != 1) throw ValueError("softmax: expected a vector input (C x 1 x 1), got " + shape_text(in));
  Node node;
  node.op = Op::softmax;
  node.inputs = {x};
  return impl_->push(std::move(node), in, "softmax");
}

int Network::node_count() const { return static_cast<int>(impl_->nodes.size()); }

// The packings of Network::conv / dense undone: the weights as they were given.
std::vector<float> Network::node_weights(int node) const {
  if (node < 0 || node >= node_count()) throw ValueError("node_weights: no node " + std::to_string(node));
  const Node& n = impl_->nodes[static_cast<std::size_t>(node)];
  const ConvShape& g = n.geom;
  const std::int64_t taps = std::int64_t{g.kh} * g.kw;
  std::vector<float> w;
  switch (n.op) {
    case Op::conv_depthwise:
      w.resize(static_cast<std::size_t>(g.in_c * taps));
      for (std::int64_t ch = 0; ch < g.in_c; ++ch)
        for (std::int64_t t = 0; t < taps; ++t) w[static_cast<std::size_t>(ch * taps + t)] = n.weights[t * g.in_c + ch];
      return w;
    case Op::conv_direct:
      w.resize(static_cast<std::size_t>(g.out_c * g.in_c * taps));
      for (std::int64_t o = 0; o < g.out_c; ++o)
        for (std::int64_t i = 0; i < g.in_c; ++i)
          for (std::int64_t t = 0; t < taps; ++t)
            w[static_cast<std::size_t>((o * g.in_c + i) * taps + t)] = n.weights[(t * g.in_c + i) * g.out_c + o];
      return w;
    case Op::conv_pointwise:
    case Op::conv_im2col:
    case Op::dense: {
      // B panels of nr rows: row o, coordinate j at (o / nr) * nr * k + j * nr + o % nr.
      const bool dense = n.op == Op::dense;
      const int groups = dense ? 1 : g.groups;
      const std::int64_t out_c = dense ? static_cast<std::int64_t>(n.bias.size()) : g.out_c;
      const std::int64_t cout_g = out_c / groups, cin_g = dense ? n.k : g.in_c / groups;
      const std::int64_t nr = n.gemm->nr;
      const std::int64_t group_floats = keensight::detail::fused_packed_size(*n.gemm, cout_g, n.k);
      w.resize(static_cast<std::size_t>(out_c * n.k));
      for (int grp = 0; grp < groups; ++grp)
        for (std::int64_t o = 0; o < cout_g; ++o)
          for (std::int64_t j = 0; j < n.k; ++j) {
            const float v = n.weights[grp * group_floats + (o / nr) * nr * n.k + j * nr + o % nr];
            if (dense) {
              w[static_cast<std::size_t>(o * n.k + j)] = v;
            } else {
              const std::int64_t t = j / cin_g, i = j % cin_g;  // j = t * cin_g + i
              w[static_cast<std::size_t>(((grp * cout_g + o) * cin_g + i) * taps + t)] = v;
            }
          }
      return w;
    }
    default: throw ValueError("node_weights: node " + std::to_string(node) + " has no weights");
  }
}

std::vector<float> Network::node_bias(int node) const {
  if (node < 0 || node >= node_count()) throw ValueError("node_bias: no node " + std::to_string(node));
  return impl_->nodes[static_cast<std::size_t>(node)].bias;
}

std::string Network::node_kind(int node) const {
  if (node < 0 || node >= node_count()) throw ValueError("node_kind: no node " + std::to_string(node));
  switch (impl_->nodes[static_cast<std::size_t>(node)].op) {
    case Op::input: return "input";
    case Op::conv_pointwise: return "conv_pointwise";
    case Op::conv_depthwise: return "conv_depthwise";
    case Op::conv_direct: return "conv_direct";
    case Op::conv_im2col: return "conv_im2col";
    case Op::max_pool: return "max_pool";
    case Op::avg_pool: return "avg_pool";
    case Op::global_avg_pool: return "global_avg_pool";
    case Op::activation: return "activation";
    case Op::add: return "add";
    case Op::mul: return "mul";
    case Op::channel_affine: return "channel_affine";
    case Op::concat: return "concat";
    case Op::flatten: return "flatten";
    case Op::dense: return "dense";
    case Op::softmax: return "softmax";
  }
  return "unknown";
}

int Network::tensor_count() const { return static_cast<int>(impl_->shapes.size()); }
Shape Network::shape(int t) const { return impl_->tensor(t, "shape"); }
std::int64_t Network::weight_bytes() const { return impl_->weight_bytes; }
std::int64_t Network::arena_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->plan(true).arena_floats * static_cast<std::int64_t>(sizeof(float));
}

// ---------------------------------------------------------------------------
// Planning

namespace {

// Bytes of the expanded strip a fused block keeps in cache: the block's working
// set (expanded rows + depthwise rows) stays within a 512 KiB L2 (Zen 3; 1-2 MiB
// on Zen 4 / 5 and recent Xeons) beside the weights streaming through.
constexpr std::int64_t kFusedStripFloats = std::int64_t{96} << 10;  // 384 KiB
// Blocks whose whole expanded tensor is smaller than this stay unfused: it fits in
// L2 anyway, and short strips would cut the GEMMs into few-row calls that reload
// the weights per strip (Lite0's 14 x 14 x 672 blocks measured slower fused).
constexpr std::int64_t kFuseAboveFloats = std::int64_t{256} << 10;  // 1 MiB

bool is_pointwise(const Node& n) { return n.op == Op::conv_pointwise; }

}  // namespace

std::vector<FusedBlock> Network::Impl::find_blocks() const {
  std::vector<int> consumers(shapes.size(), 0);
  for (const Node& n : nodes)
    for (int t : n.inputs) ++consumers[static_cast<std::size_t>(t)];
  const auto only_into = [&](const Node& producer, const Node& consumer) {
    return consumers[static_cast<std::size_t>(producer.output)] == 1 && consumer.inputs.size() >= 1 &&
           consumer.inputs[0] == producer.output &&
           (consumer.inputs.size() < 2 || consumer.inputs[1] != producer.output);
  };
  std::vector<FusedBlock> blocks;
  for (std::size_t i = 0; i + 1 < nodes.size(); ++i) {
    FusedBlock b;
    std::size_t d = i;
    if (is_pointwise(nodes[i]) && i + 2 < nodes.size() && nodes[i + 1].op == Op::conv_depthwise &&
        only_into(nodes[i], nodes[i + 1]) && nodes[i].inputs.size() == 1) {
      b.expand = static_cast<int>(i);
      d = i + 1;
    } else if (nodes[i].op != Op::conv_depthwise) {
      continue;
    }
    if (d + 1 >= nodes.size() || !is_pointwise(nodes[d + 1]) || !only_into(nodes[d], nodes[d + 1])) continue;
    b.dw = static_cast<int>(d);
    b.project = static_cast<int>(d + 1);
    const ConvShape& g = nodes[d].geom;
    const std::int64_t row_floats = g.in_w * g.in_c;  // one expanded row
    const std::int64_t keff = std::int64_t{g.kh - 1} * g.dilation_h + 1;
    b.strip_rows = std::max<std::int64_t>(1, (kFusedStripFloats / row_floats - keff) / g.stride_h + 1);
    b.strip_rows = std::min(b.strip_rows, g.out_h);
    if (g.in_h * row_floats <= kFuseAboveFloats) continue;
    blocks.push_back(b);
    i = static_cast<std::size_t>(b.project);
  }
  return blocks;
}

const Plan& Network::Impl::plan(bool fuse) const {
  Plan& p = plans[fuse ? 1 : 0];
  if (p.made) return p;
  const std::size_t tensors = shapes.size(), count = nodes.size();
  p.blocks = fuse ? find_blocks() : std::vector<FusedBlock>{};
  p.block_at.assign(count, -1);
  p.inside.assign(count, false);
  // The node index each node counts as: a block's members all run at its last node.
  std::vector<std::size_t> at(count);
  for (std::size_t i = 0; i < count; ++i) at[i] = i;
  std::vector<bool> internal(tensors, false);
  for (std::size_t b = 0; b < p.blocks.size(); ++b) {
    const FusedBlock& fb = p.blocks[b];
    const int first = fb.expand >= 0 ? fb.expand : fb.dw;
    p.block_at[static_cast<std::size_t>(first)] = static_cast<int>(b);
    for (int m : {fb.expand, fb.dw, fb.project})
      if (m >= 0) {
        p.inside[static_cast<std::size_t>(m)] = true;
        at[static_cast<std::size_t>(m)] = static_cast<std::size_t>(fb.project);
      }
    if (fb.expand >= 0) internal[static_cast<std::size_t>(nodes[static_cast<std::size_t>(fb.expand)].output)] = true;
    internal[static_cast<std::size_t>(nodes[static_cast<std::size_t>(fb.dw)].output)] = true;
  }
  std::vector<std::int64_t> last_use(tensors, -1);
  for (std::size_t i = 0; i < count; ++i) {
    const auto when = static_cast<std::int64_t>(at[i]);
    last_use[static_cast<std::size_t>(nodes[i].output)] = std::max(last_use[static_cast<std::size_t>(nodes[i].output)], when);
    for (int t : nodes[i].inputs) last_use[static_cast<std::size_t>(t)] = std::max(last_use[static_cast<std::size_t>(t)], when);
  }
  constexpr std::int64_t kAlign = 16;  // floats: 64 bytes
  std::vector<Slot> slots;
  std::vector<int> slot_of(tensors, -1);
  std::vector<int> occupant;  // per slot: the tensor in it now
  std::vector<bool> slot_free;
  std::int64_t scratch = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const Node& node = nodes[i];
    if (node.op == Op::conv_im2col)
      scratch = std::max(scratch, keensight::detail::round_up(node.strip_rows * node.geom.out_w * node.k, kAlign));
    if (internal[static_cast<std::size_t>(node.output)]) continue;  // lives in the block's strips
    const auto now = static_cast<std::int64_t>(at[i]);
    // Free the slots whose tensor's last consumer ran before this node.
    for (std::size_t s = 0; s < slots.size(); ++s)
      if (!slot_free[s] && last_use[static_cast<std::size_t>(occupant[s])] < now) slot_free[s] = true;
    const std::int64_t need = keensight::detail::round_up(shapes[static_cast<std::size_t>(node.output)].size(), kAlign);
    int best = -1;
    for (std::size_t s = 0; s < slots.size(); ++s) {
      if (!slot_free[s]) continue;
      const auto cost = [&](std::size_t q) {
        // Prefer the smallest slot that fits, else the largest one (grown least).
        return slots[q].floats >= need ? slots[q].floats - need : (need - slots[q].floats) * 4;
      };
      if (best < 0 || cost(s) < cost(static_cast<std::size_t>(best))) best = static_cast<int>(s);
    }
    if (best < 0) {
      slots.push_back(Slot{need, 0});
      slot_free.push_back(false);
      occupant.push_back(node.output);
      best = static_cast<int>(slots.size()) - 1;
    } else {
      occupant[static_cast<std::size_t>(best)] = node.output;
      slots[static_cast<std::size_t>(best)].floats = std::max(slots[static_cast<std::size_t>(best)].floats, need);
      slot_free[static_cast<std::size_t>(best)] = false;
    }
    // A slot is freed only when its tensor's last consumer has run, so a node's
    // output never shares a slot with its inputs (nor a block's output with the
    // block's input or residual: they count as used at the block's last node).
    slot_of[static_cast<std::size_t>(node.output)] = best;
  }
  p.offset.assign(tensors, -1);
  std::int64_t total = 0;
  for (Slot& s : slots) {
    s.offset = total;
    total += s.floats;
  }
  for (std::size_t t = 0; t < tensors; ++t)
    if (slot_of[t] >= 0) p.offset[t] = slots[static_cast<std::size_t>(slot_of[t])].offset;
  p.scratch_offset = total;
  p.arena_floats = total + scratch;
  if (p.arena_floats > kMaxArenaFloats)
    throw ValueError("network: its activations need " + std::to_string(p.arena_floats / (std::int64_t{1} << 28)) +
                     " GiB per image, more than the 8 GiB limit");
  p.made = true;
  return p;
}

// ---------------------------------------------------------------------------
// Running

namespace {

// The layout changes at the network's edges: dst[j * rows + i] = src[i * cols + j],
// in 32 x 32 blocks that stay in L1 (a plain loop strides by H x W floats on one
// side and measured ~8x slower on 112 x 112 x 96).
void transpose(const float* src, std::int64_t rows, std::int64_t cols, float* dst) {
  if (rows == 1 || cols == 1) {
    std::memcpy(dst, src, static_cast<std::size_t>(rows * cols) * sizeof(float));
    return;
  }
  constexpr std::int64_t kBlock = 32;
  for (std::int64_t i0 = 0; i0 < rows; i0 += kBlock)
    for (std::int64_t j0 = 0; j0 < cols; j0 += kBlock) {
      const std::int64_t i1 = std::min(rows, i0 + kBlock), j1 = std::min(cols, j0 + kBlock);
      for (std::int64_t i = i0; i < i1; ++i)
        for (std::int64_t j = j0; j < j1; ++j) dst[j * rows + i] = src[i * cols + j];
    }
}

// NCHW image -> NHWC, and back.
void to_nhwc(const float* src, std::int64_t c, std::int64_t hw, float* dst) { transpose(src, c, hw, dst); }
void to_nchw(const float* src, std::int64_t c, std::int64_t hw, float* dst) { transpose(src, hw, c, dst); }

// Output rows [0, rows) split across threads in chunks of at least `min_rows`.
template <class Fn>
void for_rows(std::int64_t rows, std::int64_t work_per_row, int threads, Fn&& fn) {
  // A chunk of rows worth at least ~32k multiply-adds keeps the threads' start-up
  // cost small against the work.
  const std::int64_t min_rows = std::max<std::int64_t>(1, (std::int64_t{1} << 15) / std::max<std::int64_t>(work_per_row, 1));
  if (threads <= 1 || rows <= min_rows) {
    fn(std::int64_t{0}, rows);
    return;
  }
  keensight::detail::parallel_for(rows, min_rows, fn, threads);
}

struct ActivationAfter {
  const detail::OpsKernels* ops;
  Activation act;
  static void apply(void* ctx, std::int64_t, std::int64_t, std::int64_t rows, std::int64_t cols, float* c,
                    std::int64_t ldc) {
    const auto* self = static_cast<const ActivationAfter*>(ctx);
    for (std::int64_t i = 0; i < rows; ++i) self->ops->activate(self->act, c + i * ldc, c + i * ldc, cols);
  }
};

// The GEMM epilogue of a convolution / dense node: clip in registers, other
// activations on each finished block.
keensight::detail::FusedEpilogue gemm_epilogue(const Node& node, const float* bias, const float* residual,
                                               std::int64_t ld_residual, ActivationAfter& after) {
  keensight::detail::FusedEpilogue ep;
  ep.bias = bias;
  ep.residual = residual;
  ep.ld_residual = ld_residual;
  if (node.act.kind == ActKind::clip) {
    ep.lo = node.act.lo;
    ep.hi = node.act.hi;
  } else if (node.act.kind != ActKind::none) {
    after.act = node.act;
    ep.after = &ActivationAfter::apply;
    ep.ctx = &after;
  }
  return ep;
}

}  // namespace

void Network::Impl::run_node(const Plan& plan, const Node& node, float* arena, int threads) const {
  const std::vector<std::int64_t>& offset = plan.offset;
  const auto& ops = detail::ops_kernels();
  const Shape& out_shape = shapes[static_cast<std::size_t>(node.output)];
  float* out = arena + offset[static_cast<std::size_t>(node.output)];
  const auto in_ptr = [&](std::size_t i) {
    return static_cast<const float*>(arena + offset[static_cast<std::size_t>(node.inputs[i])]);
  };
  const auto in_shape = [&](std::size_t i) { return shapes[static_cast<std::size_t>(node.inputs[i])]; };
  const ConvShape& g = node.geom;
  ActivationAfter after{&ops, Activation{}};
  switch (node.op) {
    case Op::input: return;
    case Op::conv_pointwise: {
      const float* residual = node.inputs.size() > 1 ? in_ptr(1) : nullptr;
      const auto ep = gemm_epilogue(node, node.bias.data(), residual, g.out_c, after);
      keensight::detail::gemm_rows_fused(*node.gemm, in_ptr(0), g.in_c, g.out_h * g.out_w, node.weights.get(), g.out_c,
                                         node.k, out, g.out_c, ep, threads);
      return;
    }
    case Op::conv_im2col: {
      const float* in = in_ptr(0);
      const float* residual = node.inputs.size() > 1 ? in_ptr(1) : nullptr;
      float* cols = arena + plan.scratch_offset;
      const std::int64_t cin_g = g.in_c / g.groups, cout_g = g.out_c / g.groups;
      const std::int64_t group_floats = keensight::detail::fused_packed_size(*node.gemm, cout_g, node.k);
      for (std::int64_t y0 = 0; y0 < g.out_h; y0 += node.strip_rows) {
        const std::int64_t y1 = std::min(g.out_h, y0 + node.strip_rows);
        for (int grp = 0; grp < g.groups; ++grp) {
          // One im2col row per output pixel: (ky, kx, ci) of the group's channels, zeros in the padding.
          for (std::int64_t y = y0; y < y1; ++y)
            for (std::int64_t x = 0; x < g.out_w; ++x) {
              float* row = cols + ((y - y0) * g.out_w + x) * node.k;
              for (int ky = 0; ky < g.kh; ++ky) {
                const std::int64_t iy = y * g.stride_h - g.pad_top + std::int64_t{ky} * g.dilation_h;
                for (int kx = 0; kx < g.kw; ++kx) {
                  const std::int64_t ix = x * g.stride_w - g.pad_left + std::int64_t{kx} * g.dilation_w;
                  float* dst = row + (std::int64_t{ky} * g.kw + kx) * cin_g;
                  if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w)
                    std::fill(dst, dst + cin_g, 0.f);
                  else
                    std::memcpy(dst, in + (iy * g.in_w + ix) * g.in_c + grp * cin_g,
                                static_cast<std::size_t>(cin_g) * sizeof(float));
                }
              }
            }
          const std::int64_t row0 = y0 * g.out_w, rows = (y1 - y0) * g.out_w;
          const auto ep = gemm_epilogue(node, node.bias.data() + grp * cout_g,
                                        residual ? residual + row0 * g.out_c + grp * cout_g : nullptr, g.out_c, after);
          keensight::detail::gemm_rows_fused(*node.gemm, cols, node.k, rows, node.weights.get() + grp * group_floats,
                                             cout_g, node.k, out + row0 * g.out_c + grp * cout_g, g.out_c, ep, threads);
        }
      }
      return;
    }
    case Op::conv_depthwise: {
      const auto& dw = detail::depthwise_kernels();
      for_rows(g.out_h, g.out_w * g.out_c * g.kh * g.kw, threads, [&](std::int64_t y0, std::int64_t y1) {
        depthwise_conv2d_rows(g, node.weights.get(), node.bias.data(), node.act, in_ptr(0), 0, out, 0, y0, y1, &dw);
      });
      return;
    }
    case Op::conv_direct:
      for_rows(g.out_h, g.out_w * g.out_c * g.kh * g.kw * g.in_c, threads, [&](std::int64_t y0, std::int64_t y1) {
        conv_direct_rows(g, in_ptr(0), 0, node.weights.get(), node.bias.data(), node.act, out, 0, y0, y1, &ops);
      });
      return;
    case Op::max_pool:
    case Op::avg_pool: {
      const PoolKind kind = node.op == Op::max_pool ? PoolKind::max : PoolKind::average;
      for_rows(g.out_h, g.out_w * g.out_c * g.kh * g.kw, threads, [&](std::int64_t y0, std::int64_t y1) {
        pool2d_rows(kind, g, node.count_include_pad, in_ptr(0), 0, out, 0, y0, y1, &ops);
      });
      return;
    }
    case Op::global_avg_pool: {
      const Shape s = in_shape(0);
      ops.global_avg_pool(in_ptr(0), s.h * s.w, s.c, out);
      return;
    }
    case Op::activation: ops.activate(node.act, in_ptr(0), out, out_shape.size()); return;
    case Op::add:
    case Op::mul: {
      if (node.broadcast) {
        const Shape s = in_shape(0);
        const float* b = in_ptr(1);
        ops.channel_affine(in_ptr(0), node.op == Op::mul ? b : nullptr, node.op == Op::add ? b : nullptr, out,
                           s.h * s.w, s.c, node.act);
      } else {
        (node.op == Op::add ? ops.add : ops.mul)(in_ptr(0), in_ptr(1), out, out_shape.size(), node.act);
      }
      return;
    }
    case Op::channel_affine: {
      const Shape s = in_shape(0);
      ops.channel_affine(in_ptr(0), node.scale.empty() ? nullptr : node.scale.data(),
                         node.shift.empty() ? nullptr : node.shift.data(), out, s.h * s.w, s.c, node.act);
      return;
    }
    case Op::concat: {
      const std::int64_t pixels = out_shape.h * out_shape.w;
      std::int64_t c0 = 0;
      for (std::size_t i = 0; i < node.inputs.size(); ++i) {
        const std::int64_t c = in_shape(i).c;
        const float* src = in_ptr(i);
        for (std::int64_t p = 0; p < pixels; ++p)
          std::memcpy(out + p * out_shape.c + c0, src + p * c, static_cast<std::size_t>(c) * sizeof(float));
        c0 += c;
      }
      return;
    }
    case Op::flatten: {
      const Shape s = in_shape(0);
      to_nchw(in_ptr(0), s.c, s.h * s.w, out);
      return;
    }
    case Op::dense: {
      const auto ep = gemm_epilogue(node, node.bias.data(), nullptr, 0, after);
      keensight::detail::gemm_rows_fused(*node.gemm, in_ptr(0), node.k, 1, node.weights.get(), out_shape.c, node.k, out,
                                         out_shape.c, ep, threads);
      return;
    }
    case Op::softmax: {
      const float* x = in_ptr(0);
      const std::int64_t c = out_shape.c;
      float m = -std::numeric_limits<float>::infinity();
      for (std::int64_t i = 0; i < c; ++i) m = std::max(m, x[i]);
      double sum = 0;
      for (std::int64_t i = 0; i < c; ++i) {
        out[i] = std::exp(x[i] - m);
        sum += out[i];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (std::int64_t i = 0; i < c; ++i) out[i] *= inv;
      return;
    }
  }
}

namespace {

// Per-thread strip buffers of the fused blocks (grown, never shrunk; each thread
// runs one block at a time).
AlignedBuffer<float>& strip_buffer(int which) {
  thread_local AlignedBuffer<float> buffers[2];
  return buffers[which];
}

}  // namespace

void Network::Impl::run_block(const Plan& plan, const FusedBlock& b, float* arena, int threads) const {
  const Node& dw = nodes[static_cast<std::size_t>(b.dw)];
  const Node& pr = nodes[static_cast<std::size_t>(b.project)];
  const Node* ex = b.expand >= 0 ? &nodes[static_cast<std::size_t>(b.expand)] : nullptr;
  const ConvShape& g = dw.geom;  // in_h x in_w x c: the expanded tensor; out_h x out_w x c: the depthwise's
  const std::int64_t c = g.in_c, cout = pr.geom.out_c;
  const int block_input = ex ? ex->inputs[0] : dw.inputs[0];
  const float* in = arena + plan.offset[static_cast<std::size_t>(block_input)];
  const float* residual =
      pr.inputs.size() > 1 ? arena + plan.offset[static_cast<std::size_t>(pr.inputs[1])] : nullptr;
  float* out = arena + plan.offset[static_cast<std::size_t>(pr.output)];
  const auto& ops = detail::ops_kernels();
  const auto& dw_kernels = detail::depthwise_kernels();
  const std::int64_t keff = std::int64_t{g.kh - 1} * g.dilation_h + 1;
  const std::int64_t max_in_rows = (b.strip_rows - 1) * g.stride_h + keff;

  // Output rows [y_begin, y_end) of the block on this thread, strip by strip.
  const auto rows = [&](std::int64_t y_begin, std::int64_t y_end) {
    ActivationAfter after_ex{&ops, Activation{}}, after_pr{&ops, Activation{}};
    AlignedBuffer<float>& expanded = strip_buffer(0);
    AlignedBuffer<float>& dw_out = strip_buffer(1);
    if (ex) expanded.resize(max_in_rows * g.in_w * c);
    dw_out.resize(b.strip_rows * g.out_w * c);
    std::int64_t have0 = 0, have1 = 0;  // expanded rows held: [have0, have1) at expanded[0 ..]
    for (std::int64_t y0 = y_begin; y0 < y_end; y0 += b.strip_rows) {
      const std::int64_t y1 = std::min(y_end, y0 + b.strip_rows);
      const auto need = depthwise_input_rows(g, y0, y1);
      const float* dw_in = in;
      std::int64_t dw_row0 = 0;
      if (ex) {
        const std::int64_t row_floats = g.in_w * c;
        // Keep the rows of the previous strip this one reads again, compute the rest.
        std::int64_t keep0 = std::max(need.first, have0), keep1 = std::min(need.second, have1);
        if (keep1 <= keep0) keep0 = keep1 = need.first;
        if (keep1 > keep0 && keep0 > have0)
          std::memmove(expanded.get(), expanded.get() + (keep0 - have0) * row_floats,
                       static_cast<std::size_t>((keep1 - keep0) * row_floats) * sizeof(float));
        const std::int64_t held = keep1 - keep0;
        const std::int64_t first_new = keep1 > keep0 ? keep1 : need.first;
        if (need.second > first_new) {
          const auto ep = gemm_epilogue(*ex, ex->bias.data(), nullptr, 0, after_ex);
          keensight::detail::gemm_rows_fused(*ex->gemm, in + first_new * g.in_w * ex->geom.in_c, ex->geom.in_c,
                                             (need.second - first_new) * g.in_w, ex->weights.get(), c, ex->k,
                                             expanded.get() + held * row_floats, c, ep, 1);
        }
        have0 = keep1 > keep0 ? keep0 : need.first;
        have1 = need.second;
        dw_in = expanded.get();
        dw_row0 = have0;
      }
      depthwise_conv2d_rows(g, dw.weights.get(), dw.bias.data(), dw.act, dw_in, dw_row0, dw_out.get(), y0, y0, y1,
                            &dw_kernels);
      const std::int64_t pixel0 = y0 * g.out_w, pixels = (y1 - y0) * g.out_w;
      const auto ep = gemm_epilogue(pr, pr.bias.data(), residual ? residual + pixel0 * cout : nullptr, cout, after_pr);
      keensight::detail::gemm_rows_fused(*pr.gemm, dw_out.get(), c, pixels, pr.weights.get(), cout, pr.k,
                                         out + pixel0 * cout, cout, ep, 1);
    }
  };
  if (threads <= 1 || g.out_h < 2) {
    rows(0, g.out_h);
    return;
  }
  // Each thread takes a band of output rows (the expanded rows at band edges are
  // computed by both neighbours: a few rows, no synchronisation).
  keensight::detail::parallel_threads(static_cast<int>(std::min<std::int64_t>(threads, g.out_h)), [&](int t, int nt) {
    const std::int64_t y0 = g.out_h * t / nt, y1 = g.out_h * (t + 1) / nt;
    if (y1 > y0) rows(y0, y1);
  });
}

void Network::Impl::run_image(const Plan& plan, const std::vector<const float*>& x, std::int64_t image,
                              const std::vector<int>& outputs, const std::vector<float*>& out, float* arena,
                              int threads, double* node_seconds) const {
  const auto emit = [&](int t) {
    const Shape& s = shapes[static_cast<std::size_t>(t)];
    for (std::size_t i = 0; i < outputs.size(); ++i)
      if (outputs[i] == t)
        to_nchw(arena + plan.offset[static_cast<std::size_t>(t)], s.c, s.h * s.w, out[i] + image * s.size());
  };
  std::size_t next_input = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const Node& node = nodes[i];
    const auto start = node_seconds ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    if (node.op == Op::input) {
      const Shape& s = shapes[static_cast<std::size_t>(node.output)];
      to_nhwc(x[next_input++] + image * s.size(), s.c, s.h * s.w,
              arena + plan.offset[static_cast<std::size_t>(node.output)]);
    } else if (plan.block_at[i] >= 0) {
      const FusedBlock& b = plan.blocks[static_cast<std::size_t>(plan.block_at[i])];
      run_block(plan, b, arena, threads);
      emit(nodes[static_cast<std::size_t>(b.project)].output);
    } else if (!plan.inside[i]) {
      run_node(plan, node, arena, threads);
    }
    if (!plan.inside[i]) emit(node.output);
    if (node_seconds)
      node_seconds[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
}

std::vector<double> Network::profile(const std::vector<const float*>& x, std::int64_t n, int threads) const {
  Impl& impl = *impl_;
  if (static_cast<int>(x.size()) != input_count())
    throw ValueError("profile: expected " + std::to_string(input_count()) + " input arrays, got " + std::to_string(x.size()));
  std::vector<double> seconds(impl.nodes.size(), 0.0);
  const Plan* plan = nullptr;
  {
    std::lock_guard<std::mutex> lock(impl.mutex);
    plan = &impl.plan(true);
  }
  AlignedBuffer<float> arena(plan->arena_floats);
  const int nt = std::max(1, threads > 0 ? threads : get_num_threads());
  for (std::int64_t j = 0; j < n; ++j) impl.run_image(*plan, x, j, {}, {}, arena.get(), nt, seconds.data());
  return seconds;
}

int Network::input_count() const {
  int count = 0;
  for (const Node& node : impl_->nodes) count += node.op == Op::input;
  return count;
}

int Network::input_tensor(int i) const {
  for (const Node& node : impl_->nodes)
    if (node.op == Op::input && i-- == 0) return node.output;
  throw ValueError("input_tensor: no input " + std::to_string(i));
}

void Network::run(const std::vector<const float*>& x, std::int64_t n, const std::vector<int>& outputs,
                  const std::vector<float*>& out, int threads) const {
  Impl& impl = *impl_;
  if (input_count() == 0) throw ValueError("run: the network has no input");
  if (static_cast<int>(x.size()) != input_count())
    throw ValueError("run: expected " + std::to_string(input_count()) + " input arrays, got " + std::to_string(x.size()));
  if (outputs.size() != out.size()) throw ValueError("run: one output buffer per requested tensor");
  for (int t : outputs) impl.tensor(t, "run output");
  if (n <= 0) return;
  // Fused blocks, unless a requested tensor lives inside one.
  const Plan* plan = nullptr;
  {
    std::lock_guard<std::mutex> lock(impl.mutex);
    plan = &impl.plan(true);
    for (int t : outputs)
      if (plan->offset[static_cast<std::size_t>(t)] < 0) plan = &impl.plan(false);
  }
  const std::int64_t floats = plan->arena_floats;
  const auto take_arena = [&]() {
    std::lock_guard<std::mutex> lock(impl.mutex);
    if (!impl.free_arenas.empty() && impl.free_arenas.back()->capacity() >= floats) {
      auto a = std::move(impl.free_arenas.back());
      impl.free_arenas.pop_back();
      return a;
    }
    return std::make_unique<AlignedBuffer<float>>(floats);
  };
  const auto give_arena = [&](std::unique_ptr<AlignedBuffer<float>> a) {
    std::lock_guard<std::mutex> lock(impl.mutex);
    if (impl.free_arenas.size() < 16) impl.free_arenas.push_back(std::move(a));
  };
  const int nt = std::max(1, threads > 0 ? threads : get_num_threads());
  if (nt > 1 && n >= nt) {
    // Whole images per thread, each operator single-threaded.
    keensight::detail::parallel_threads(nt, [&](int t, int count) {
      auto arena = take_arena();
      for (std::int64_t j = t; j < n; j += count) impl.run_image(*plan, x, j, outputs, out, arena->get(), 1);
      give_arena(std::move(arena));
    });
    return;
  }
  auto arena = take_arena();
  for (std::int64_t j = 0; j < n; ++j) impl.run_image(*plan, x, j, outputs, out, arena->get(), nt);
  give_arena(std::move(arena));
}

}  // namespace keensight::nn
