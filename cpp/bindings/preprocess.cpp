// pybind11 glue for the preprocess area: arrays checked, GIL released, C++ called.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "arrays.hpp"
#include "keensight/preprocess.hpp"

namespace keensight::bindings {
using namespace ::keensight::preprocess;

namespace {

PreprocessOptions preprocess_options(std::int64_t rows, std::int64_t cols, std::int64_t resize_shorter, bool bgr,
                                     const std::array<float, 3>& mean, const std::array<float, 3>& std,
                                     const std::string& interpolation, const std::string& layout) {
  PreprocessOptions o;
  o.rows = rows;
  o.cols = cols;
  o.resize_shorter = resize_shorter;
  o.bgr = bgr;
  for (int c = 0; c < 3; ++c) {
    o.mean[c] = mean[static_cast<std::size_t>(c)];
    o.std[c] = std[static_cast<std::size_t>(c)];
  }
  if (interpolation == "bilinear") o.interpolation = Interpolation::bilinear;
  else if (interpolation == "area") o.interpolation = Interpolation::area;
  else throw ValueError("interpolation: expected 'bilinear' or 'area', got '" + interpolation + "'");
  if (layout == "NCHW") o.layout = TensorLayout::nchw;
  else if (layout == "NHWC") o.layout = TensorLayout::nhwc;
  else throw ValueError("layout: expected 'NCHW' or 'NHWC', got '" + layout + "'");
  return o;
}

}  // namespace

void bind_preprocess(py::module_& m) {
  m.def("preprocess_batch",
        [](const std::vector<py::array>& images, const std::vector<bool>& bgr, const py::array& out,
           std::int64_t rows, std::int64_t cols, std::int64_t resize_shorter, bool out_bgr,
           const std::array<float, 3>& mean, const std::array<float, 3>& std, const std::string& interpolation,
           const std::string& layout, int threads) {
          PreprocessOptions o =
              preprocess_options(rows, cols, resize_shorter, out_bgr, mean, std, interpolation, layout);
          o.threads = threads;
          if (bgr.size() != images.size()) throw ValueError("bgr: expected one flag per image");
          const auto n = static_cast<py::ssize_t>(images.size());
          if (!out.dtype().is(py::dtype::of<float>())) throw TypeError("out: expected dtype float32");
          const bool nchw = o.layout == TensorLayout::nchw;
          const std::vector<py::ssize_t> want = nchw ? std::vector<py::ssize_t>{n, 3, rows, cols}
                                                     : std::vector<py::ssize_t>{n, rows, cols, 3};
          if (out.ndim() != 4 || !std::equal(want.begin(), want.end(), out.shape()))
            throw ValueError("out: expected shape (" + std::to_string(want[0]) + ", " + std::to_string(want[1]) +
                             ", " + std::to_string(want[2]) + ", " + std::to_string(want[3]) + ")");
          if (!(out.flags() & py::array::c_style)) throw ValueError("out: expected a C-contiguous array");
          if (!out.writeable()) throw ValueError("out: array is read-only");
          std::vector<PreprocessSource> sources(images.size());
          for (std::size_t k = 0; k < images.size(); ++k) {
            const std::string name = "images[" + std::to_string(k) + "]";
            sources[k].image = image_view(images[k], name.c_str(), false);
            sources[k].bgr = bgr[k];
          }
          float* dst = static_cast<float*>(const_cast<void*>(out.data()));
          py::gil_scoped_release release;
          preprocess_batch(sources.data(), static_cast<std::int64_t>(sources.size()), o, dst);
        },
        py::arg("images"), py::arg("bgr"), py::arg("out"), py::arg("rows"), py::arg("cols"),
        py::arg("resize_shorter"), py::arg("out_bgr"), py::arg("mean"), py::arg("std"),
        py::arg("interpolation"), py::arg("layout"), py::arg("threads") = 0,
        "Resize + centre crop + channel order + normalisation + layout of uint8 images into `out`, "
        "on at most `threads` threads (0: keensight's setting).");
  m.def("preprocess_geometry",
        [](std::int64_t src_rows, std::int64_t src_cols, std::int64_t rows, std::int64_t cols,
           std::int64_t resize_shorter) {
          PreprocessOptions o;
          o.rows = rows;
          o.cols = cols;
          o.resize_shorter = resize_shorter;
          const ResizeCrop g = resize_crop_geometry(src_rows, src_cols, o);
          return py::make_tuple(g.resized_rows, g.resized_cols, g.crop_top, g.crop_left);
        },
        py::arg("src_rows"), py::arg("src_cols"), py::arg("rows"), py::arg("cols"), py::arg("resize_shorter"),
        "(resized_rows, resized_cols, crop_top, crop_left) that preprocess_batch uses for one image.");
}

}  // namespace keensight::bindings
