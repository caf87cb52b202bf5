// pybind11 glue of the CNN engine (keensight/nn.hpp): the network builder and
// run(). Array checks, GIL release, no algorithms; the Python layer
// (keensight.nn) validates arguments first and lowers graphs to these calls.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "keensight/nn.hpp"

namespace py = pybind11;

namespace keensight::bindings {

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
using ActTuple = std::tuple<int, float, float, float, float>;

// `obj` as a C-contiguous float32 array of `ndim` dimensions (no silent conversion).
FloatArray float_array(const py::handle& obj, const char* name, int ndim) {
  if (!py::isinstance<py::array>(obj)) throw TypeError(std::string(name) + ": expected a float32 numpy array");
  const auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<float>()))
    throw TypeError(std::string(name) + ": expected dtype float32, got " + std::string(py::str(a.dtype())));
  if (ndim >= 0 && a.ndim() != ndim)
    throw ValueError(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array, got " +
                     std::to_string(a.ndim()) + " dimensions");
  return FloatArray::ensure(a);
}

// An optional vector of exactly n floats (None: null).
const float* optional_vector(const py::object& obj, const char* name, std::int64_t n, FloatArray& keep) {
  if (obj.is_none()) return nullptr;
  keep = float_array(obj, name, 1);
  if (keep.shape(0) != n)
    throw ValueError(std::string(name) + ": expected " + std::to_string(n) + " values, got " +
                     std::to_string(keep.shape(0)));
  return keep.data();
}

nn::Activation activation(const ActTuple& t) {
  nn::Activation a;
  a.kind = static_cast<nn::ActKind>(std::get<0>(t));
  a.lo = std::get<1>(t);
  a.hi = std::get<2>(t);
  a.alpha = std::get<3>(t);
  a.beta = std::get<4>(t);
  return a;
}

std::array<int, 4> four(const std::vector<int>& v, const char* name) {
  if (v.size() != 4) throw ValueError(std::string(name) + ": expected 4 values (top, left, bottom, right)");
  return {v[0], v[1], v[2], v[3]};
}

std::array<int, 2> two(const std::vector<int>& v, const char* name) {
  if (v.size() != 2) throw ValueError(std::string(name) + ": expected 2 values (h, w)");
  return {v[0], v[1]};
}

nn::Pool2dParams pool_params(const std::vector<int>& kernel, const std::vector<int>& stride,
                             const std::vector<int>& pads, const std::vector<int>& dilation, bool ceil_mode,
                             bool count_include_pad) {
  nn::Pool2dParams p;
  const auto k = two(kernel, "kernel"), s = two(stride, "stride"), d = two(dilation, "dilation");
  const auto pd = four(pads, "pads");
  p.kh = k[0];
  p.kw = k[1];
  p.stride_h = s[0];
  p.stride_w = s[1];
  p.dilation_h = d[0];
  p.dilation_w = d[1];
  p.pad_top = pd[0];
  p.pad_left = pd[1];
  p.pad_bottom = pd[2];
  p.pad_right = pd[3];
  p.ceil_mode = ceil_mode;
  p.count_include_pad = count_include_pad;
  return p;
}

// The arrays of every input of `net` (N x C x H x W float32 each, the input's C, H, W,
// one N for all), kept alive in `keep`; returns N.
std::int64_t input_arrays(const nn::Network& net, const std::vector<py::object>& xs, std::vector<FloatArray>& keep,
                          std::vector<const float*>& ptrs) {
  if (static_cast<int>(xs.size()) != net.input_count())
    throw ValueError("x: expected " + std::to_string(net.input_count()) + " input arrays, got " +
                     std::to_string(xs.size()));
  std::int64_t n = -1;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    keep.push_back(float_array(xs[i], "x", 4));
    const FloatArray& x = keep.back();
    const nn::Shape in = net.shape(net.input_tensor(static_cast<int>(i)));
    if (x.shape(1) != in.c || x.shape(2) != in.h || x.shape(3) != in.w)
      throw ValueError("x: expected N x " + std::to_string(in.c) + " x " + std::to_string(in.h) + " x " +
                       std::to_string(in.w) + " arrays for input " + std::to_string(i) + ", got " +
                       std::to_string(x.shape(0)) + " x " + std::to_string(x.shape(1)) + " x " +
                       std::to_string(x.shape(2)) + " x " + std::to_string(x.shape(3)));
    if (n >= 0 && x.shape(0) != n) throw ValueError("x: every input must have the same batch size");
    n = x.shape(0);
    ptrs.push_back(x.data());
  }
  return n;
}

}  // namespace

void bind_nn(py::module_& m) {
  py::class_<nn::Network>(m, "Network", "The CNN engine's network builder (internal; use keensight.nn.Network)")
      .def(py::init<>())
      .def("input",
           [](nn::Network& net, std::int64_t c, std::int64_t h, std::int64_t w) { return net.input(nn::Shape{c, h, w}); },
           py::arg("c"), py::arg("h"), py::arg("w"))
      .def(
          "conv",
          [](nn::Network& net, int x, const py::object& w_obj, const py::object& b_obj, const std::vector<int>& stride,
             const std::vector<int>& pads, const std::vector<int>& dilation, int groups, const ActTuple& act,
             int residual) {
            const FloatArray w = float_array(w_obj, "w", 4);
            FloatArray b;
            const float* bias = optional_vector(b_obj, "bias", w.shape(0), b);
            const nn::Pool2dParams q = pool_params({1, 1}, stride, pads, dilation, false, false);
            nn::Conv2dParams p;
            p.stride_h = q.stride_h;
            p.stride_w = q.stride_w;
            p.dilation_h = q.dilation_h;
            p.dilation_w = q.dilation_w;
            p.pad_top = q.pad_top;
            p.pad_left = q.pad_left;
            p.pad_bottom = q.pad_bottom;
            p.pad_right = q.pad_right;
            p.groups = groups;
            const nn::Shape in = net.shape(x);
            if (w.shape(1) * groups != in.c)
              throw ValueError("w: expects " + std::to_string(w.shape(1)) + " x groups (" + std::to_string(groups) +
                               ") = " + std::to_string(w.shape(1) * groups) + " input channels, the input has " +
                               std::to_string(in.c));
            py::gil_scoped_release release;
            return net.conv(x, w.data(), w.shape(0), static_cast<int>(w.shape(2)), static_cast<int>(w.shape(3)), bias,
                            p, activation(act), residual);
          },
          py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("stride"), py::arg("pads"), py::arg("dilation"),
          py::arg("groups"), py::arg("act"), py::arg("residual") = -1)
      .def("max_pool",
           [](nn::Network& net, int x, const std::vector<int>& kernel, const std::vector<int>& stride,
              const std::vector<int>& pads, const std::vector<int>& dilation, bool ceil_mode) {
             return net.max_pool(x, pool_params(kernel, stride, pads, dilation, ceil_mode, false));
           },
           py::arg("x"), py::arg("kernel"), py::arg("stride"), py::arg("pads"), py::arg("dilation"), py::arg("ceil_mode"))
      .def("avg_pool",
           [](nn::Network& net, int x, const std::vector<int>& kernel, const std::vector<int>& stride,
              const std::vector<int>& pads, bool ceil_mode, bool count_include_pad) {
             return net.avg_pool(x, pool_params(kernel, stride, pads, {1, 1}, ceil_mode, count_include_pad));
           },
           py::arg("x"), py::arg("kernel"), py::arg("stride"), py::arg("pads"), py::arg("ceil_mode"),
           py::arg("count_include_pad"))
      .def("global_avg_pool", &nn::Network::global_avg_pool, py::arg("x"))
      .def("activation", [](nn::Network& net, int x, const ActTuple& act) { return net.activation(x, activation(act)); },
           py::arg("x"), py::arg("act"))
      .def("add", [](nn::Network& net, int a, int b, const ActTuple& act) { return net.add(a, b, activation(act)); },
           py::arg("a"), py::arg("b"), py::arg("act"))
      .def("mul", [](nn::Network& net, int a, int b, const ActTuple& act) { return net.mul(a, b, activation(act)); },
           py::arg("a"), py::arg("b"), py::arg("act"))
      .def("channel_affine",
           [](nn::Network& net, int x, const py::object& scale, const py::object& shift, const ActTuple& act) {
             const std::int64_t c = net.shape(x).c;
             FloatArray s, t;
             const float* ps = optional_vector(scale, "scale", c, s);
             const float* pt = optional_vector(shift, "shift", c, t);
             return net.channel_affine(x, ps, pt, activation(act));
           },
           py::arg("x"), py::arg("scale"), py::arg("shift"), py::arg("act"))
      .def("concat", &nn::Network::concat, py::arg("xs"))
      .def("flatten", &nn::Network::flatten, py::arg("x"))
      .def("dense",
           [](nn::Network& net, int x, const py::object& w_obj, const py::object& b_obj, const ActTuple& act) {
             const FloatArray w = float_array(w_obj, "w", 2);
             const std::int64_t in = net.shape(x).size();
             if (w.shape(1) != in)
               throw ValueError("w: expects " + std::to_string(w.shape(1)) + " inputs, the input has " +
                                std::to_string(in));
             FloatArray b;
             const float* bias = optional_vector(b_obj, "bias", w.shape(0), b);
             py::gil_scoped_release release;
             return net.dense(x, w.data(), w.shape(0), bias, activation(act));
           },
           py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("act"))
      .def("softmax", &nn::Network::softmax, py::arg("x"))
      .def("shape",
           [](const nn::Network& net, int t) {
             const nn::Shape s = net.shape(t);
             return std::make_tuple(s.c, s.h, s.w);
           },
           py::arg("t"))
      .def_property_readonly("tensor_count", &nn::Network::tensor_count)
      .def_property_readonly("weight_bytes", &nn::Network::weight_bytes)
      .def_property_readonly("arena_bytes", &nn::Network::arena_bytes)
      .def_property_readonly("input_count", &nn::Network::input_count)
      .def_property_readonly("node_count", &nn::Network::node_count)
      .def("node_kind", &nn::Network::node_kind, py::arg("node"))
      .def(
          "node_weights",
          [](const nn::Network& net, int node) {
            std::vector<float> w;
            {
              py::gil_scoped_release release;
              w = net.node_weights(node);
            }
            FloatArray a(static_cast<py::ssize_t>(w.size()));
            std::copy(w.begin(), w.end(), a.mutable_data());
            return a;
          },
          py::arg("node"))
      .def(
          "node_bias",
          [](const nn::Network& net, int node) {
            const std::vector<float> b = net.node_bias(node);
            FloatArray a(static_cast<py::ssize_t>(b.size()));
            std::copy(b.begin(), b.end(), a.mutable_data());
            return a;
          },
          py::arg("node"))
      .def(
          "profile",
          [](const nn::Network& net, const std::vector<py::object>& xs, int threads) {
            std::vector<FloatArray> keep;
            std::vector<const float*> ptrs;
            const std::int64_t n = input_arrays(net, xs, keep, ptrs);
            py::gil_scoped_release release;
            return net.profile(ptrs, n, threads);
          },
          py::arg("x"), py::arg("threads") = 0)
      .def(
          "run",
          [](const nn::Network& net, const std::vector<py::object>& xs, const std::vector<int>& outputs, int threads) {
            std::vector<FloatArray> keep;
            std::vector<const float*> ptrs;
            const std::int64_t n = input_arrays(net, xs, keep, ptrs);
            py::list result;
            std::vector<float*> out;
            for (int t : outputs) {
              const nn::Shape s = net.shape(t);
              FloatArray a({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(s.c), static_cast<py::ssize_t>(s.h),
                            static_cast<py::ssize_t>(s.w)});
              out.push_back(a.mutable_data());
              result.append(a);
            }
            {
              py::gil_scoped_release release;
              net.run(ptrs, n, outputs, out, threads);
            }
            return result;
          },
          py::arg("x"), py::arg("outputs"), py::arg("threads") = 0);
}

}  // namespace keensight::bindings
