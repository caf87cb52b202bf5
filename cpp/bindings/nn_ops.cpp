// Private pybind11 glue of the nn ops table and operators (nn/kernels.hpp, nn/pool.hpp,
// nn/conv_direct.hpp), for the tests and benchmarks: _nn_pool, _nn_global_avg_pool,
// _nn_elementwise, _nn_channel_affine, _nn_conv_direct. NHWC float32 arrays of one
// image; `level` names the ISA table to run (None: the active one). Array checks, GIL
// release, no algorithms.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "keensight/core.hpp"
#include "nn/conv_direct.hpp"
#include "nn/kernels.hpp"
#include "nn/pool.hpp"

namespace py = pybind11;

namespace keensight::bindings {

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
namespace nn = keensight::nn;

// Outputs larger than this many floats (1 GiB) are refused rather than allocated.
constexpr std::int64_t kMaxOutputFloats = std::int64_t(1) << 28;

// `obj` as a C-contiguous float32 array with `ndim` dimensions (0: any), no silent
// conversion from another dtype.
FloatArray float_array(const py::handle& obj, const char* name, int ndim) {
  if (!py::isinstance<py::array>(obj)) throw TypeError(std::string(name) + ": expected a numpy array of dtype float32");
  const auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<float>()))
    throw TypeError(std::string(name) + ": expected dtype float32, got " + std::string(py::str(a.dtype())));
  if (ndim > 0 && a.ndim() != ndim)
    throw ValueError(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array, got " +
                     std::to_string(a.ndim()) + " dimensions");
  return FloatArray::ensure(a);
}

// A tuple / list of `n` ints in [lo, 2^20].
std::vector<int> int_tuple(const py::handle& obj, const char* name, std::size_t n, int lo) {
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    throw TypeError(std::string(name) + ": expected a tuple of " + std::to_string(n) + " ints");
  const auto seq = py::reinterpret_borrow<py::sequence>(obj);
  if (seq.size() != n)
    throw ValueError(std::string(name) + ": expected " + std::to_string(n) + " values, got " +
                     std::to_string(seq.size()));
  std::vector<int> out;
  for (const py::handle v : seq) {
    if (!py::isinstance<py::int_>(v) || py::isinstance<py::bool_>(v))
      throw TypeError(std::string(name) + ": expected ints");
    const long long x = v.cast<long long>();
    if (x < lo || x > (1 << 20))
      throw ValueError(std::string(name) + ": expected values in [" + std::to_string(lo) + ", 1048576], got " +
                       std::to_string(x));
    out.push_back(static_cast<int>(x));
  }
  return out;
}

// (kind, lo, hi, alpha, beta): kind as nn::ActKind (0 none, 1 clip, 2 hardswish,
// 3 hardsigmoid, 4 sigmoid, 5 swish).
nn::Activation activation_of(const py::handle& obj) {
  if (!py::isinstance<py::tuple>(obj) || py::len(obj) != 5)
    throw TypeError("act: expected a tuple (kind, lo, hi, alpha, beta)");
  const auto t = py::reinterpret_borrow<py::tuple>(obj);
  if (!py::isinstance<py::int_>(t[0]) || py::isinstance<py::bool_>(t[0])) throw TypeError("act: kind must be an int");
  const long long kind = t[0].cast<long long>();
  if (kind < 0 || kind > 5) throw ValueError("act: kind must be 0..5 (none, clip, hardswish, hardsigmoid, sigmoid, swish)");
  float v[4];
  for (int i = 0; i < 4; ++i) {
    if (!py::isinstance<py::float_>(t[i + 1]) && !py::isinstance<py::int_>(t[i + 1]))
      throw TypeError("act: lo, hi, alpha, beta must be numbers");
    v[i] = t[i + 1].cast<float>();
  }
  nn::Activation act;
  act.kind = static_cast<nn::ActKind>(kind);
  act.lo = v[0];
  act.hi = v[1];
  act.alpha = v[2];
  act.beta = v[3];
  if (act.kind == nn::ActKind::clip && !(act.lo <= act.hi)) throw ValueError("act: clip needs lo <= hi");
  return act;
}

// The ops table of `level` (None: the active level's); a level this CPU or build
// lacks is refused, never run.
const nn::detail::OpsKernels& kernels_of(const py::object& level) {
  if (level.is_none()) return nn::detail::ops_kernels();
  if (!py::isinstance<py::str>(level)) throw TypeError("level: expected an ISA name or None");
  const Isa isa = isa_from_name(level.cast<std::string>());
  const CpuInfo info = cpu_info();
  if (!info.levels.contains(isa) || !info.compiled_levels.contains(isa))
    throw ValueError("level: '" + std::string(isa_name(isa)) + "' is not available on this CPU and build");
  return nn::detail::ops_kernels_at(isa);
}

FloatArray new_output(const std::vector<py::ssize_t>& shape) {
  std::int64_t total = 1;
  for (py::ssize_t d : shape) total *= d;
  if (total > kMaxOutputFloats) throw ValueError("the output would have " + std::to_string(total) + " values, more than 2^28");
  return FloatArray(shape);
}

FloatArray pool(const std::string& kind, const py::object& x_obj, const py::object& kernel, const py::object& stride,
                const py::object& pads, const py::object& dilation, bool ceil_mode, bool count_include_pad,
                const py::object& level) {
  nn::PoolKind k;
  if (kind == "max") k = nn::PoolKind::max;
  else if (kind == "average") k = nn::PoolKind::average;
  else throw ValueError("kind: expected 'max' or 'average', got '" + kind + "'");
  const FloatArray x = float_array(x_obj, "x", 3);
  const std::vector<int> ks = int_tuple(kernel, "kernel", 2, 1), ss = int_tuple(stride, "stride", 2, 1);
  const std::vector<int> ps = int_tuple(pads, "pads", 4, 0), ds = int_tuple(dilation, "dilation", 2, 1);
  nn::PoolParams p;
  p.kernel_h = ks[0];
  p.kernel_w = ks[1];
  p.stride_h = ss[0];
  p.stride_w = ss[1];
  p.pad_top = ps[0];
  p.pad_left = ps[1];
  p.pad_bottom = ps[2];
  p.pad_right = ps[3];
  p.dilation_h = ds[0];
  p.dilation_w = ds[1];
  p.ceil_mode = ceil_mode;
  p.count_include_pad = count_include_pad;
  const nn::ConvShape shape = nn::pool_shape(x.shape(0), x.shape(1), x.shape(2), p);
  const nn::detail::OpsKernels& kern = kernels_of(level);
  FloatArray out = new_output({static_cast<py::ssize_t>(shape.out_h), static_cast<py::ssize_t>(shape.out_w),
                               static_cast<py::ssize_t>(shape.out_c)});
  const float* in = x.data();
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    nn::pool2d(k, shape, count_include_pad, in, dst, &kern);
  }
  return out;
}

FloatArray global_avg_pool(const py::object& x_obj, const py::object& level) {
  const FloatArray x = float_array(x_obj, "x", 3);
  const nn::detail::OpsKernels& kern = kernels_of(level);
  FloatArray out = new_output({x.shape(2)});
  const float* in = x.data();
  float* dst = out.mutable_data();
  const std::int64_t pixels = x.shape(0) * x.shape(1), c = x.shape(2);
  if (pixels < 1 || c < 1) throw ValueError("x: expected a non-empty (H, W, C) array");
  {
    py::gil_scoped_release release;
    nn::global_avg_pool2d(in, pixels, c, dst, &kern);
  }
  return out;
}

FloatArray elementwise(const std::string& op, const py::object& a_obj, const py::object& b_obj, const py::object& act_obj,
                       const py::object& level) {
  const nn::Activation act = activation_of(act_obj);
  const nn::detail::OpsKernels& kern = kernels_of(level);
  const FloatArray a = float_array(a_obj, "a", 0);
  std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
  FloatArray out = new_output(shape);
  const std::int64_t n = a.size();
  float* y = out.mutable_data();
  if (op == "activate") {
    if (!b_obj.is_none()) throw ValueError("b: expected None for op 'activate'");
    py::gil_scoped_release release;
    kern.activate(act, a.data(), y, n);
    return out;
  }
  if (op != "add" && op != "mul") throw ValueError("op: expected 'add', 'mul' or 'activate', got '" + op + "'");
  const FloatArray b = float_array(b_obj, "b", a.ndim());
  for (py::ssize_t d = 0; d < a.ndim(); ++d)
    if (b.shape(d) != a.shape(d)) throw ValueError("b: expected the shape of a");
  {
    py::gil_scoped_release release;
    (op == "add" ? kern.add : kern.mul)(a.data(), b.data(), y, n, act);
  }
  return out;
}

// x: (..., C), scale / shift: (C,) or None.
FloatArray channel_affine(const py::object& x_obj, const py::object& scale_obj, const py::object& shift_obj,
                          const py::object& act_obj, const py::object& level) {
  const nn::Activation act = activation_of(act_obj);
  const nn::detail::OpsKernels& kern = kernels_of(level);
  const FloatArray x = float_array(x_obj, "x", 0);
  if (x.ndim() < 1 || x.shape(x.ndim() - 1) < 1) throw ValueError("x: expected an array whose last axis (channels) is not empty");
  const std::int64_t c = x.shape(x.ndim() - 1), pixels = x.size() / c;
  FloatArray scale, shift;
  for (int which = 0; which < 2; ++which) {
    const py::object& obj = which == 0 ? scale_obj : shift_obj;
    if (obj.is_none()) continue;
    FloatArray v = float_array(obj, which == 0 ? "scale" : "shift", 1);
    if (v.shape(0) != c)
      throw ValueError(std::string(which == 0 ? "scale" : "shift") + ": expected " + std::to_string(c) +
                       " values (one per channel)");
    (which == 0 ? scale : shift) = v;
  }
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  FloatArray out = new_output(shape);
  const float* sc = scale_obj.is_none() ? nullptr : scale.data();
  const float* sh = shift_obj.is_none() ? nullptr : shift.data();
  float* y = out.mutable_data();
  {
    py::gil_scoped_release release;
    kern.channel_affine(x.data(), sc, sh, y, pixels, c, act);
  }
  return out;
}

FloatArray conv_direct(const py::object& x_obj, const py::object& w_obj, const py::object& bias_obj,
                       const py::object& stride, const py::object& pads, const py::object& dilation,
                       const py::object& act_obj, const py::object& level) {
  const FloatArray x = float_array(x_obj, "x", 3);
  const FloatArray w = float_array(w_obj, "w", 4);
  const nn::Activation act = activation_of(act_obj);
  const nn::detail::OpsKernels& kern = kernels_of(level);
  const std::vector<int> ss = int_tuple(stride, "stride", 2, 1), ps = int_tuple(pads, "pads", 4, 0);
  const std::vector<int> ds = int_tuple(dilation, "dilation", 2, 1);
  if (w.shape(1) != x.shape(2))
    throw ValueError("w: expected " + std::to_string(x.shape(2)) + " input channels (x's), got " +
                     std::to_string(w.shape(1)));
  if (w.shape(0) < 1 || w.shape(2) < 1 || w.shape(3) < 1 || w.shape(2) > (1 << 20) || w.shape(3) > (1 << 20))
    throw ValueError("w: expected a non-empty (out_c, in_c, kh, kw) array");
  const nn::ConvShape shape =
      nn::conv_direct_shape(x.shape(0), x.shape(1), x.shape(2), w.shape(0), static_cast<int>(w.shape(2)),
                            static_cast<int>(w.shape(3)), ss[0], ss[1], ps.data(), ds[0], ds[1]);
  if (!nn::conv_direct_applies(shape))
    throw ValueError("w: the direct convolution takes in_c * kh * kw <= " +
                     std::to_string(nn::detail::kDirectConvMaxTaps) + ", got " +
                     std::to_string(shape.in_c * shape.kh * shape.kw));
  FloatArray bias;
  if (!bias_obj.is_none()) {
    bias = float_array(bias_obj, "bias", 1);
    if (bias.shape(0) != shape.out_c)
      throw ValueError("bias: expected " + std::to_string(shape.out_c) + " values (one per output channel)");
  }
  FloatArray out = new_output({static_cast<py::ssize_t>(shape.out_h), static_cast<py::ssize_t>(shape.out_w),
                               static_cast<py::ssize_t>(shape.out_c)});
  const float* in = x.data();
  const float* wp = w.data();
  const float* b = bias_obj.is_none() ? nullptr : bias.data();
  float* y = out.mutable_data();
  {
    py::gil_scoped_release release;
    const std::vector<float> packed = nn::pack_direct_conv_weights(wp, shape.out_c, shape.in_c, shape.kh, shape.kw);
    nn::conv_direct(shape, in, packed.data(), b, act, y, &kern);
  }
  return out;
}

}  // namespace

void bind_nn_ops(py::module_& m) {
  m.def("_nn_pool", &pool, py::arg("kind"), py::arg("x"), py::arg("kernel"), py::arg("stride"), py::arg("pads"),
        py::arg("dilation"), py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("level") = py::none(),
        "ONNX MaxPool ('max') / AveragePool ('average') of one NHWC float32 image (H, W, C); pads (top, left, "
        "bottom, right).");
  m.def("_nn_global_avg_pool", &global_avg_pool, py::arg("x"), py::arg("level") = py::none(),
        "GlobalAveragePool of one NHWC float32 image (H, W, C) -> (C,).");
  m.def("_nn_elementwise", &elementwise, py::arg("op"), py::arg("a"), py::arg("b"), py::arg("act"),
        py::arg("level") = py::none(),
        "activate(act, a + b) ('add'), activate(act, a * b) ('mul') or activate(act, a) ('activate', b None); act = "
        "(kind, lo, hi, alpha, beta).");
  m.def("_nn_channel_affine", &channel_affine, py::arg("x"), py::arg("scale"), py::arg("shift"), py::arg("act"),
        py::arg("level") = py::none(), "activate(act, x * scale + shift) with scale / shift (C,) or None over x (..., C).");
  m.def("_nn_conv_direct", &conv_direct, py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("stride"),
        py::arg("pads"), py::arg("dilation"), py::arg("act"), py::arg("level") = py::none(),
        "The direct dense convolution (in_c * kh * kw <= 64) of one NHWC float32 image (H, W, C) with ONNX weights "
        "(O, I, kh, kw) -> (OH, OW, O).");
}

}  // namespace keensight::bindings
