// Private pybind11 glue of the core GEMM driver (core/gemm.hpp), for the
// tests: _gemm_f32, _gemm_u8s8, _gemm_xnor and _gemm_kernels. Array checks,
// GIL release, no algorithms.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/gemm.hpp"

namespace py = pybind11;

namespace keensight::bindings {

namespace {

using detail::GemmEpilogue;
using detail::GemmKernels;

template <class T>
const char* dtype_name() {
  if (std::is_same<T, float>::value) return "float32";
  if (std::is_same<T, std::uint8_t>::value) return "uint8";
  if (std::is_same<T, std::int8_t>::value) return "int8";
  return "int32";
}

// `obj` as a C-contiguous array of exactly dtype T (no silent conversion from
// another dtype) with `ndim` dimensions.
template <class T>
py::array_t<T, py::array::c_style> exact_array(const py::handle& obj, const char* name, int ndim) {
  if (!py::isinstance<py::array>(obj))
    throw TypeError(std::string(name) + ": expected a numpy array of dtype " + dtype_name<T>());
  const auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<T>()))
    throw TypeError(std::string(name) + ": expected dtype " + dtype_name<T>() + ", got " + std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    throw ValueError(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array, got " +
                     std::to_string(a.ndim()) + " dimensions");
  return py::array_t<T, py::array::c_style>::ensure(a);
}

template <class Acc>
Acc bound_value(const py::object& v, const char* name) {
  if constexpr (std::is_same<Acc, float>::value) {
    if (!py::isinstance<py::float_>(v) && !py::isinstance<py::int_>(v))
      throw TypeError(std::string(name) + ": expected a number or None");
    return v.cast<float>();
  } else {
    if (!py::isinstance<py::int_>(v) || py::isinstance<py::bool_>(v))
      throw TypeError(std::string(name) + ": expected an int or None");
    const long long x = v.cast<long long>();
    if (x < std::numeric_limits<Acc>::min() || x > std::numeric_limits<Acc>::max())
      throw ValueError(std::string(name) + ": expected a value in the int32 range");
    return static_cast<Acc>(x);
  }
}

// The epilogue's arrays stay alive (and contiguous) while the GEMM runs.
template <class Acc>
struct Epilogue {
  py::array_t<Acc, py::array::c_style> scale, bias, residual;
  GemmEpilogue<Acc> ep;

  Epilogue(const py::object& scale_obj, const py::object& bias_obj, const py::object& residual_obj,
           const py::object& lo, const py::object& hi, std::int64_t m, std::int64_t n) {
    if (!scale_obj.is_none()) {
      scale = vector_of(scale_obj, "scale", n);
      ep.scale = scale.data();
    }
    if (!bias_obj.is_none()) {
      bias = vector_of(bias_obj, "bias", n);
      ep.bias = bias.data();
    }
    if (!residual_obj.is_none()) {
      residual = exact_array<Acc>(residual_obj, "residual", 2);
      if (residual.shape(0) != m || residual.shape(1) != n)
        throw ValueError("residual: expected shape (" + std::to_string(m) + ", " + std::to_string(n) + ")");
      ep.residual = residual.data();
      ep.ld_residual = n;
    }
    if (!lo.is_none() || !hi.is_none()) {
      ep.clamp = true;
      ep.lo = lo.is_none() ? std::numeric_limits<Acc>::lowest() : bound_value<Acc>(lo, "lo");
      ep.hi = hi.is_none() ? std::numeric_limits<Acc>::max() : bound_value<Acc>(hi, "hi");
      if (std::is_same<Acc, float>::value && std::numeric_limits<Acc>::has_infinity) {
        if (lo.is_none()) ep.lo = -std::numeric_limits<Acc>::infinity();
        if (hi.is_none()) ep.hi = std::numeric_limits<Acc>::infinity();
      }
      if (!(ep.lo <= ep.hi)) throw ValueError("lo, hi: expected lo <= hi");
    }
  }

  static py::array_t<Acc, py::array::c_style> vector_of(const py::object& obj, const char* name, std::int64_t n) {
    auto v = exact_array<Acc>(obj, name, 1);
    if (v.shape(0) != n)
      throw ValueError(std::string(name) + ": expected " + std::to_string(n) + " values (one per column of the result)");
    return v;
  }
};

// The table named `kernel` (one of _gemm_kernels(op)), or the active level's.
template <class T>
const GemmKernels<T>& kernel_named(const std::string& kernel, const std::vector<const GemmKernels<T>*>& variants,
                                   const GemmKernels<T>& active) {
  if (kernel.empty()) return active;
  std::string names;
  for (const GemmKernels<T>* v : variants) {
    if (kernel == v->name) return *v;
    names += (names.empty() ? "" : ", ") + std::string(v->name);
  }
  throw ValueError("kernel: expected one of this CPU's kernels (" + names + "), got '" + kernel + "'");
}

template <class T>
py::array_t<typename T::Acc> run(const GemmKernels<T>& kern, const typename T::A* a, std::int64_t lda,
                                 const typename T::B* b, std::int64_t ldb, std::int64_t m, std::int64_t n,
                                 std::int64_t k, const Epilogue<typename T::Acc>& ep, int num_threads) {
  py::array_t<typename T::Acc> c({m, n});
  typename T::Acc* out = c.mutable_data();
  {
    py::gil_scoped_release release;
    detail::gemm<T>(kern, a, lda, b, ldb, out, n, m, n, k, ep.ep, num_threads);
  }
  return c;
}

int threads_arg(int num_threads) {
  if (num_threads < 0) throw ValueError("num_threads: expected 0 (all) or a positive count");
  return num_threads;
}

std::vector<std::string> names_of(const std::string& op) {
  std::vector<std::string> names;
  const auto add = [&](const auto& variants) {
    for (const auto* v : variants) names.emplace_back(v->name);
  };
  if (op == "f32") add(detail::gemm_f32_variants());
  else if (op == "u8s8") add(detail::gemm_u8s8_variants());
  else if (op == "xnor") add(detail::gemm_xnor_variants());
  else throw ValueError("op: expected 'f32', 'u8s8' or 'xnor', got '" + op + "'");
  return names;
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("_gemm_kernels", &names_of, py::arg("op"),
        "Names of the GEMM tiles of `op` ('f32', 'u8s8', 'xnor') this build has and this CPU runs.");
  m.def("_gemm_active_kernel", [](const std::string& op) {
    if (op == "f32") return std::string(detail::gemm_f32_kernels().name);
    if (op == "u8s8") return std::string(detail::gemm_u8s8_kernels().name);
    if (op == "xnor") return std::string(detail::gemm_xnor_kernels().name);
    throw ValueError("op: expected 'f32', 'u8s8' or 'xnor', got '" + op + "'");
  }, py::arg("op"), "The tile `op` uses at the active ISA level.");

  m.def("_gemm_f32",
        [](const py::object& a_obj, const py::object& b_obj, const py::object& scale, const py::object& bias,
           const py::object& residual, const py::object& lo, const py::object& hi, const std::string& kernel,
           int num_threads) {
          const auto a = exact_array<float>(a_obj, "a", 2), b = exact_array<float>(b_obj, "b", 2);
          if (b.shape(1) != a.shape(1))
            throw ValueError("b: expected " + std::to_string(a.shape(1)) + " columns (as a), got " +
                             std::to_string(b.shape(1)));
          const auto& kern = kernel_named<detail::GemmF32>(kernel, detail::gemm_f32_variants(), detail::gemm_f32_kernels());
          const Epilogue<float> ep(scale, bias, residual, lo, hi, a.shape(0), b.shape(0));
          return run<detail::GemmF32>(kern, a.data(), a.shape(1), b.data(), b.shape(1), a.shape(0), b.shape(0),
                                      a.shape(1), ep, threads_arg(num_threads));
        },
        py::arg("a"), py::arg("b"), py::arg("scale") = py::none(), py::arg("bias") = py::none(),
        py::arg("residual") = py::none(), py::arg("lo") = py::none(), py::arg("hi") = py::none(),
        py::arg("kernel") = "", py::arg("num_threads") = 0,
        "clamp(a @ b.T * scale + bias + residual, lo, hi) in float32 (private: tests of the core GEMM).");

  m.def("_gemm_u8s8",
        [](const py::object& a_obj, const py::object& b_obj, const py::object& scale, const py::object& bias,
           const py::object& residual, const py::object& lo, const py::object& hi, const std::string& kernel,
           int num_threads) {
          const auto a = exact_array<std::uint8_t>(a_obj, "a", 2);
          const auto b = exact_array<std::int8_t>(b_obj, "b", 2);
          if (b.shape(1) != a.shape(1))
            throw ValueError("b: expected " + std::to_string(a.shape(1)) + " columns (as a), got " +
                             std::to_string(b.shape(1)));
          if (a.shape(1) > detail::GemmU8S8::kMaxK)
            throw ValueError("a: at most " + std::to_string(detail::GemmU8S8::kMaxK) +
                             " columns (int32 sums of 255 x -128 products), got " + std::to_string(a.shape(1)));
          const auto& kern =
              kernel_named<detail::GemmU8S8>(kernel, detail::gemm_u8s8_variants(), detail::gemm_u8s8_kernels());
          const Epilogue<std::int32_t> ep(scale, bias, residual, lo, hi, a.shape(0), b.shape(0));
          return run<detail::GemmU8S8>(kern, a.data(), a.shape(1), b.data(), b.shape(1), a.shape(0), b.shape(0),
                                       a.shape(1), ep, threads_arg(num_threads));
        },
        py::arg("a"), py::arg("b"), py::arg("scale") = py::none(), py::arg("bias") = py::none(),
        py::arg("residual") = py::none(), py::arg("lo") = py::none(), py::arg("hi") = py::none(),
        py::arg("kernel") = "", py::arg("num_threads") = 0,
        "clamp(a @ b.T * scale + bias + residual, lo, hi) for uint8 a, int8 b, in int32, exact (wrapping on "
        "int32 overflow of the epilogue) (private: tests of the core GEMM).");

  m.def("_gemm_xnor",
        [](const py::object& a_obj, const py::object& b_obj, std::int64_t k, const py::object& scale,
           const py::object& bias, const py::object& residual, const py::object& lo, const py::object& hi,
           const std::string& kernel, int num_threads) {
          const auto a = exact_array<std::uint8_t>(a_obj, "a_bits", 2);
          const auto b = exact_array<std::uint8_t>(b_obj, "b_bits", 2);
          if (k < 0 || k > std::numeric_limits<std::int32_t>::max())
            throw ValueError("k: expected 0 <= k < 2**31, got " + std::to_string(k));
          const std::int64_t bytes = detail::GemmXnor::source_length(k);
          for (const auto* arr : {&a, &b}) {
            const char* name = arr == &a ? "a_bits" : "b_bits";
            if (arr->shape(1) != bytes)
              throw ValueError(std::string(name) + ": expected ceil(k / 8) = " + std::to_string(bytes) +
                               " bytes a row, got " + std::to_string(arr->shape(1)));
            // Bit j of a row is bit 7 - j % 8 of byte j / 8 (np.packbits' order):
            // the bits past k, the low bits of the last byte, must be zero.
            const unsigned pad = k % 8 ? 0xFFu >> (k % 8) : 0u;
            for (std::int64_t r = 0; pad && r < arr->shape(0); ++r)
              if (arr->data()[r * bytes + bytes - 1] & pad)
                throw ValueError(std::string(name) + ": bits past k must be zero (np.packbits pads with zeros); row " +
                                 std::to_string(r) + " has some set");
          }
          const auto& kern =
              kernel_named<detail::GemmXnor>(kernel, detail::gemm_xnor_variants(), detail::gemm_xnor_kernels());
          const Epilogue<std::int32_t> ep(scale, bias, residual, lo, hi, a.shape(0), b.shape(0));
          return run<detail::GemmXnor>(kern, a.data(), bytes, b.data(), bytes, a.shape(0), b.shape(0), k, ep,
                                       threads_arg(num_threads));
        },
        py::arg("a_bits"), py::arg("b_bits"), py::arg("k"), py::arg("scale") = py::none(),
        py::arg("bias") = py::none(), py::arg("residual") = py::none(), py::arg("lo") = py::none(),
        py::arg("hi") = py::none(), py::arg("kernel") = "", py::arg("num_threads") = 0,
        "The ±1 dot products k - 2 popcount(a XOR b) of bit rows packed by np.packbits(..., axis=1), then the "
        "epilogue, in int32 (private: tests of the core GEMM).");
}

}  // namespace keensight::bindings
