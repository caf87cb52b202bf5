// pybind11 glue for the filters area: views in, GIL released, C++ called.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "arrays.hpp"
#include "keensight/filters.hpp"

namespace keensight::bindings {
using namespace ::keensight::filters;

namespace {

using f32_array = py::array_t<float, py::array::c_style | py::array::forcecast>;

FilterOptions options(int anchor_x, int anchor_y, int border, double border_value, double delta) {
  if (border < 0 || border > 4)
    throw ValueError("border: expected 0..4 (constant, replicate, reflect, wrap, reflect101)");
  FilterOptions o;
  o.anchor_x = anchor_x;
  o.anchor_y = anchor_y;
  o.border = static_cast<Border>(border);
  o.border_value = border_value;
  o.delta = delta;
  return o;
}

FilterMethod method_from_name(const std::string& name) {
  if (name == "auto") return FilterMethod::automatic;
  if (name == "direct") return FilterMethod::direct;
  if (name == "fft") return FilterMethod::fft;
  throw ValueError("method: expected 'auto', 'direct' or 'fft', got '" + name + "'");
}

// Sizes are checked before the kernel is copied (and before a shape beyond int
// could be narrowed).
void check_kernel_shape(const f32_array& k, const char* name) {
  for (py::ssize_t d = 0; d < k.ndim(); ++d)
    if (k.shape(d) > kMaxKernelSize)
      throw ValueError(std::string(name) + ": kernels larger than " + std::to_string(kMaxKernelSize) +
                       " taps per side are not supported");
}

Kernel2D kernel_2d(const f32_array& k, const char* name) {
  if (k.ndim() != 2) throw ValueError(std::string(name) + ": expected a 2-D kernel");
  check_kernel_shape(k, name);
  Kernel2D out;
  out.rows = static_cast<int>(k.shape(0));
  out.cols = static_cast<int>(k.shape(1));
  out.values.assign(k.data(), k.data() + k.size());
  return out;
}

std::vector<float> kernel_1d(const f32_array& k, const char* name) {
  if (k.ndim() != 1) throw ValueError(std::string(name) + ": expected a 1-D kernel");
  check_kernel_shape(k, name);
  return std::vector<float>(k.data(), k.data() + k.size());
}

py::array_t<float> to_array(const Kernel2D& k) {
  py::array_t<float> a({k.rows, k.cols});
  std::copy(k.values.begin(), k.values.end(), a.mutable_data());
  return a;
}

py::array_t<double> to_array(const std::vector<double>& v) {
  py::array_t<double> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

// Calls fn with the GIL released.
template <class Fn>
void nogil(Fn&& fn) {
  py::gil_scoped_release release;
  fn();
}

#define KS_OPTION_ARGS                                                                  \
  py::arg("anchor_x") = -1, py::arg("anchor_y") = -1, py::arg("border") = 4,            \
  py::arg("border_value") = 0.0, py::arg("delta") = 0.0

}  // namespace

void bind_filters(py::module_& m) {
  m.def("filter2d",
        [](const py::array& src, const py::array& dst, const f32_array& kernel, int ax, int ay,
           int border, double value, double delta, const std::string& method) {
          ImageView s = image_view(src, "src", false), d = image_view(dst, "dst", true);
          Kernel2D k = kernel_2d(kernel, "kernel");
          FilterOptions o = options(ax, ay, border, value, delta);
          o.method = method_from_name(method);
          nogil([&] { filter2d(s, d, k, o); });
        },
        py::arg("src"), py::arg("dst"), py::arg("kernel"), KS_OPTION_ARGS, py::arg("method") = "auto");

  m.def("filter_bank",
        [](const py::array& src, const std::vector<py::array>& dsts,
           const std::vector<f32_array>& kernels, int ax, int ay, int border, double value,
           double delta, const std::string& method) {
          ImageView s = image_view(src, "src", false);
          std::vector<ImageView> d;
          for (const py::array& a : dsts) d.push_back(image_view(a, "dst", true));
          std::vector<Kernel2D> ks;
          for (const f32_array& k : kernels) ks.push_back(kernel_2d(k, "kernels"));
          FilterOptions o = options(ax, ay, border, value, delta);
          o.method = method_from_name(method);
          nogil([&] { filter_bank(s, d, ks, o); });
        },
        py::arg("src"), py::arg("dsts"), py::arg("kernels"), KS_OPTION_ARGS, py::arg("method") = "auto");

  m.def("sep_filter2d",
        [](const py::array& src, const py::array& dst, const f32_array& kx, const f32_array& ky,
           int ax, int ay, int border, double value, double delta) {
          ImageView s = image_view(src, "src", false), d = image_view(dst, "dst", true);
          std::vector<float> fx = kernel_1d(kx, "kernel_x"), fy = kernel_1d(ky, "kernel_y");
          FilterOptions o = options(ax, ay, border, value, delta);
          nogil([&] { sep_filter2d(s, d, fx, fy, o); });
        },
        py::arg("src"), py::arg("dst"), py::arg("kernel_x"), py::arg("kernel_y"), KS_OPTION_ARGS);

  m.def("gaussian_blur",
        [](const py::array& src, const py::array& dst, int kx, int ky, double sx, double sy,
           int border) {
          ImageView s = image_view(src, "src", false), d = image_view(dst, "dst", true);
          FilterOptions o = options(-1, -1, border, 0.0, 0.0);
          nogil([&] { gaussian_blur(s, d, kx, ky, sx, sy, o.border); });
        },
        py::arg("src"), py::arg("dst"), py::arg("ksize_x"), py::arg("ksize_y"), py::arg("sigma_x"),
        py::arg("sigma_y"), py::arg("border") = 4);

  m.def("sobel",
        [](const py::array& src, const py::array& dst, int dx, int dy, int ksize, double scale,
           int ax, int ay, int border, double value, double delta) {
          ImageView s = image_view(src, "src", false), d = image_view(dst, "dst", true);
          FilterOptions o = options(ax, ay, border, value, delta);
          nogil([&] { sobel(s, d, dx, dy, ksize, scale, o); });
        },
        py::arg("src"), py::arg("dst"), py::arg("dx"), py::arg("dy"), py::arg("ksize"),
        py::arg("scale"), KS_OPTION_ARGS);

  m.def("prewitt",
        [](const py::array& src, const py::array& dst, int dx, int dy, double scale, int ax,
           int ay, int border, double value, double delta) {
          ImageView s = image_view(src, "src", false), d = image_view(dst, "dst", true);
          FilterOptions o = options(ax, ay, border, value, delta);
          nogil([&] { prewitt(s, d, dx, dy, scale, o); });
        },
        py::arg("src"), py::arg("dst"), py::arg("dx"), py::arg("dy"), py::arg("scale"),
        KS_OPTION_ARGS);

  m.def("laplacian",
        [](const py::array& src, const py::array& dst, int ksize, double scale, int ax, int ay,
           int border, double value, double delta) {
          ImageView s = image_view(src, "src", false), d = image_view(dst, "dst", true);
          FilterOptions o = options(ax, ay, border, value, delta);
          nogil([&] { laplacian(s, d, ksize, scale, o); });
        },
        py::arg("src"), py::arg("dst"), py::arg("ksize"), py::arg("scale"), KS_OPTION_ARGS);

  m.def("laplacian_of_gaussian",
        [](const py::array& src, const py::array& dst, int ksize, double sigma, double scale,
           int ax, int ay, int border, double value, double delta) {
          ImageView s = image_view(src, "src", false), d = image_view(dst, "dst", true);
          FilterOptions o = options(ax, ay, border, value, delta);
          nogil([&] { laplacian_of_gaussian(s, d, ksize, sigma, scale, o); });
        },
        py::arg("src"), py::arg("dst"), py::arg("ksize"), py::arg("sigma"), py::arg("scale"),
        KS_OPTION_ARGS);

  m.def("difference_of_gaussians",
        [](const py::array& src, const py::array& dst, int ksize, double sigma1, double sigma2,
           int ax, int ay, int border, double value, double delta) {
          ImageView s = image_view(src, "src", false), d = image_view(dst, "dst", true);
          FilterOptions o = options(ax, ay, border, value, delta);
          nogil([&] { difference_of_gaussians(s, d, ksize, sigma1, sigma2, o); });
        },
        py::arg("src"), py::arg("dst"), py::arg("ksize"), py::arg("sigma1"), py::arg("sigma2"),
        KS_OPTION_ARGS);

  m.def("gradient_magnitude",
        [](const py::array& src, const py::array& dst, int op, int ksize, bool l1, int ax, int ay,
           int border, double value, double delta) {
          ImageView s = image_view(src, "src", false), d = image_view(dst, "dst", true);
          if (op < 0 || op > 2) throw ValueError("operator: expected sobel, prewitt or scharr");
          FilterOptions o = options(ax, ay, border, value, delta);
          nogil([&] { gradient_magnitude(s, d, static_cast<GradientOperator>(op), ksize, l1, o); });
        },
        py::arg("src"), py::arg("dst"), py::arg("op"), py::arg("ksize"), py::arg("l1"),
        KS_OPTION_ARGS);

  m.def("max_kernel_size", [] { return kMaxKernelSize; },
        "The largest kernel side (taps) any filter accepts, given or derived from sigma.");
  m.def("gaussian_kernel", [](int ksize, double sigma) { return to_array(gaussian_kernel(ksize, sigma)); },
        py::arg("ksize"), py::arg("sigma"));
  m.def("gabor_kernel",
        [](int kx, int ky, double sigma, double theta, double lambd, double gamma, double psi) {
          return to_array(gabor_kernel(kx, ky, sigma, theta, lambd, gamma, psi));
        },
        py::arg("ksize_x"), py::arg("ksize_y"), py::arg("sigma"), py::arg("theta"),
        py::arg("lambd"), py::arg("gamma"), py::arg("psi"));
  m.def("log_kernel", [](int ksize, double sigma) { return to_array(log_kernel(ksize, sigma)); },
        py::arg("ksize"), py::arg("sigma"));
  m.def("deriv_kernel", [](int order, int ksize) { return to_array(deriv_kernel(order, ksize)); },
        py::arg("order"), py::arg("ksize"));
  m.def("gaussian_ksize_for_sigma",
        [](double sigma, bool is_uint8) {
          return gaussian_ksize_for_sigma(sigma, is_uint8 ? Depth::u8 : Depth::f32);
        },
        py::arg("sigma"), py::arg("is_uint8"));
  m.def("border_index",
        [](std::int64_t p, std::int64_t len, int border) {
          if (len <= 0) throw ValueError("len: expected a positive length");
          return border_index(p, len, options(-1, -1, border, 0, 0).border);
        },
        py::arg("p"), py::arg("len"), py::arg("border"));
}

}  // namespace keensight::bindings
