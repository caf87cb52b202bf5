// Private pybind11 glue of the depthwise convolution operator (nn/depthwise.hpp),
// for the tests and benchmarks: _nn_depthwise. Argument checks, GIL release, no
// algorithms.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "keensight/core.hpp"
#include "nn/depthwise.hpp"

namespace py = pybind11;

namespace keensight::bindings {

namespace {

// `obj` as a C-contiguous float32 array of `ndim` dimensions (no conversion from
// another dtype).
py::array_t<float, py::array::c_style> float32_array(const py::handle& obj, const char* name, int ndim) {
  if (!py::isinstance<py::array>(obj)) throw TypeError(std::string(name) + ": expected a numpy array of dtype float32");
  const auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<float>()))
    throw TypeError(std::string(name) + ": expected dtype float32, got " + std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    throw ValueError(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array, got " +
                     std::to_string(a.ndim()) + " dimensions");
  return py::array_t<float, py::array::c_style>::ensure(a);
}

// A tuple or list of exactly n ints (Python or NumPy integers, not bool).
template <std::size_t N>
std::array<int, N> int_tuple(const py::object& obj, const char* name) {
  if (!py::isinstance<py::tuple>(obj) && !py::isinstance<py::list>(obj))
    throw TypeError(std::string(name) + ": expected a tuple of " + std::to_string(N) + " ints");
  const auto seq = py::reinterpret_borrow<py::sequence>(obj);
  if (seq.size() != N)
    throw ValueError(std::string(name) + ": expected " + std::to_string(N) + " values, got " + std::to_string(seq.size()));
  std::array<int, N> out{};
  for (std::size_t i = 0; i < N; ++i) {
    const py::object item = seq[i];
    if (py::isinstance<py::bool_>(item) || !PyIndex_Check(item.ptr()))
      throw TypeError(std::string(name) + ": expected ints, got " + std::string(py::str(py::type::of(item))));
    const long long v = py::int_(item).cast<long long>();
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
      throw ValueError(std::string(name) + ": value " + std::to_string(v) + " out of range");
    out[i] = static_cast<int>(v);
  }
  return out;
}

// A Python or NumPy number (anything with __float__ except bool and str).
float number(const py::object& v, const char* name) {
  if (py::isinstance<py::bool_>(v) || py::isinstance<py::str>(v) || !py::hasattr(v, "__float__"))
    throw TypeError(std::string(name) + ": expected a number");
  return py::float_(v).cast<float>();
}

// (kind, lo, hi, alpha, beta) -> Activation; None: no activation.
nn::Activation activation_of(const py::object& obj) {
  nn::Activation act;
  if (obj.is_none()) return act;
  if (!py::isinstance<py::tuple>(obj) && !py::isinstance<py::list>(obj))
    throw TypeError("act: expected a tuple (kind, lo, hi, alpha, beta) or None");
  const auto seq = py::reinterpret_borrow<py::sequence>(obj);
  if (seq.size() != 5) throw ValueError("act: expected 5 values (kind, lo, hi, alpha, beta), got " + std::to_string(seq.size()));
  const py::object kind = seq[0];
  if (py::isinstance<py::bool_>(kind) || !PyIndex_Check(kind.ptr())) throw TypeError("act: kind must be an int");
  const long long k = py::int_(kind).cast<long long>();
  if (k < 0 || k > static_cast<long long>(nn::ActKind::swish))
    throw ValueError("act: kind must be 0 (none) .. 5 (swish), got " + std::to_string(k));
  act.kind = static_cast<nn::ActKind>(k);
  act.lo = number(seq[1], "act lo");
  act.hi = number(seq[2], "act hi");
  act.alpha = number(seq[3], "act alpha");
  act.beta = number(seq[4], "act beta");
  if (act.kind == nn::ActKind::clip && !(act.lo <= act.hi)) throw ValueError("act: expected lo <= hi for clip");
  return act;
}

// The table of `level` (None: the active level's); the level must run on this CPU.
const nn::detail::DepthwiseKernels& kernels_of(const py::object& level) {
  if (level.is_none()) return nn::detail::depthwise_kernels();
  if (!py::isinstance<py::str>(level)) throw TypeError("level: expected an ISA level name or None");
  const Isa isa = isa_from_name(level.cast<std::string>());
  const CpuInfo info = cpu_info();
  if (!info.levels.contains(isa) || !info.compiled_levels.contains(isa))
    throw ValueError("level: '" + std::string(isa_name(isa)) + "' does not run on this CPU or build");
  return nn::detail::depthwise_kernels_at(isa);
}

py::array_t<float> nn_depthwise(const py::object& x_obj, const py::object& w_obj, const py::object& bias_obj,
                                const py::object& stride_obj, const py::object& pads_obj,
                                const py::object& dilation_obj, const py::object& act_obj, const py::object& level,
                                int num_threads) {
  const auto x = float32_array(x_obj, "x", 3);
  const auto w = float32_array(w_obj, "w", 4);
  const std::int64_t h = x.shape(0), wd = x.shape(1), c = x.shape(2);
  if (w.shape(0) != c || w.shape(1) != 1)
    throw ValueError("w: expected shape (C, 1, kh, kw) with C = " + std::to_string(c) + " (the channels of x), got (" +
                     std::to_string(w.shape(0)) + ", " + std::to_string(w.shape(1)) + ", ...)");
  if (w.shape(2) > std::numeric_limits<int>::max() || w.shape(3) > std::numeric_limits<int>::max())
    throw ValueError("w: kernel too large");
  const auto stride = stride_obj.is_none() ? std::array<int, 2>{1, 1} : int_tuple<2>(stride_obj, "stride");
  const auto pads = pads_obj.is_none() ? std::array<int, 4>{0, 0, 0, 0} : int_tuple<4>(pads_obj, "pads");
  const auto dilation = dilation_obj.is_none() ? std::array<int, 2>{1, 1} : int_tuple<2>(dilation_obj, "dilation");
  const nn::Activation act = activation_of(act_obj);
  const nn::detail::DepthwiseKernels& kernels = kernels_of(level);
  const nn::ConvShape s =
      nn::depthwise_shape(h, wd, c, static_cast<int>(w.shape(2)), static_cast<int>(w.shape(3)), stride[0], stride[1],
                          pads[0], pads[1], pads[2], pads[3], dilation[0], dilation[1]);
  py::array_t<float, py::array::c_style> bias;
  if (!bias_obj.is_none()) {
    bias = float32_array(bias_obj, "bias", 1);
    if (bias.shape(0) != c) throw ValueError("bias: expected " + std::to_string(c) + " values (one per channel)");
  }
  py::array_t<float> out({s.out_h, s.out_w, c});
  const float* xp = x.data();
  const float* wp = w.data();
  const float* bp = bias_obj.is_none() ? nullptr : bias.data();
  float* op = out.mutable_data();
  {
    py::gil_scoped_release release;
    std::vector<float> packed(static_cast<std::size_t>(s.kh) * s.kw * c);
    nn::pack_depthwise_weights(wp, c, s.kh, s.kw, packed.data());
    nn::depthwise_conv2d_nhwc(s, packed.data(), bp, act, xp, op, num_threads, &kernels);
  }
  return out;
}

}  // namespace

void bind_nn_depthwise(py::module_& m) {
  m.def("_nn_depthwise", &nn_depthwise, py::arg("x"), py::arg("w"), py::arg("bias") = py::none(),
        py::arg("stride") = py::none(), py::arg("pads") = py::none(), py::arg("dilation") = py::none(),
        py::arg("act") = py::none(), py::arg("level") = py::none(), py::arg("num_threads") = 0,
        "Depthwise convolution of one NHWC float32 image x (H, W, C) with ONNX weights w (C, 1, kh, kw), "
        "bias (C,), stride (sh, sw), pads (top, left, bottom, right), dilation (dh, dw), act (kind, lo, hi, "
        "alpha, beta), at ISA `level` (None: the active one); returns (OH, OW, C) (private: tests of nn kernels).");
}

}  // namespace keensight::bindings
