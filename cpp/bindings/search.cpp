// pybind11 glue of the search area: metrics, exact k-NN, FlatIndex, PCA transform,
// sequential three-way decisions. Array checks, GIL release, no algorithms.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "keensight/search.hpp"

namespace py = pybind11;

namespace keensight::bindings {

namespace {

using f32_matrix = py::array_t<float, py::array::c_style | py::array::forcecast>;

// A 2-D C-contiguous float32 matrix named `name`, optionally with `cols` columns.
void check_matrix(const f32_matrix& a, const char* name, std::int64_t cols = -1) {
  if (a.ndim() != 2)
    throw ValueError(std::string(name) + ": expected a 2-D array, got " + std::to_string(a.ndim()) + " dimensions");
  if (cols >= 0 && a.shape(1) != cols)
    throw ValueError(std::string(name) + ": expected " + std::to_string(cols) + " columns, got " +
                     std::to_string(a.shape(1)));
}

void check_vector(const f32_matrix& a, const char* name, std::int64_t size) {
  if (a.ndim() != 1 || a.shape(0) != size)
    throw ValueError(std::string(name) + ": expected a 1-D array of " + std::to_string(size) + " values");
}

using i64_vector = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

void check_ids(const i64_vector& ids, const char* name, std::int64_t n) {
  if (ids.ndim() != 1 || (n >= 0 && ids.shape(0) != n))
    throw ValueError(std::string(name) + ": expected a 1-D array" +
                     (n >= 0 ? " of " + std::to_string(n) + " ids" : std::string()));
}

template <class T>
py::array_t<T> to_array(const std::vector<T>& v) {
  py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

using KnnResult = std::pair<py::array_t<float>, py::array_t<std::int64_t>>;

// nq x min(k, rows) results: never wider than the rows searched (k = 10**9 on
// 500 rows allocates 500 slots per query, not 10**9).
KnnResult knn_result(std::int64_t nq, std::int64_t k, std::int64_t rows) {
  if (k < 1) throw ValueError("k: expected a positive int, got " + std::to_string(k));
  const std::int64_t width = std::max<std::int64_t>(1, std::min(k, rows));
  return {py::array_t<float>({nq, width}), py::array_t<std::int64_t>({nq, width})};
}

}  // namespace

void bind_search(py::module_& m) {
  m.def("metric_name", [](const std::string& name) {
    return std::string(search::metric_name(search::metric_from_name(name)));
  }, py::arg("metric"));

  m.def("knn",
        [](const f32_matrix& queries, const f32_matrix& base, std::int64_t k, const std::string& metric) {
          check_matrix(base, "base");
          check_matrix(queries, "queries", base.shape(1));
          const search::Metric mt = search::metric_from_name(metric);
          KnnResult r = knn_result(queries.shape(0), k, base.shape(0));
          const std::int64_t width = r.first.shape(1);
          float* d = r.first.mutable_data();
          std::int64_t* i = r.second.mutable_data();
          {
            py::gil_scoped_release release;
            search::knn(queries.data(), queries.shape(0), base.data(), base.shape(0), base.shape(1), width, mt, d, i);
          }
          return r;
        },
        py::arg("queries"), py::arg("base"), py::arg("k"), py::arg("metric") = "l2");

  py::class_<search::FlatIndex>(m, "FlatIndex")
      .def(py::init([](std::int64_t dim, const std::string& metric) {
             return search::FlatIndex(dim, search::metric_from_name(metric));
           }),
           py::arg("dim"), py::arg("metric") = "l2")
      .def_property_readonly("dim", &search::FlatIndex::dim)
      .def_property_readonly("metric", [](const search::FlatIndex& f) { return std::string(search::metric_name(f.metric())); })
      .def("__len__", &search::FlatIndex::size, py::call_guard<py::gil_scoped_release>())
      .def("add",
           [](search::FlatIndex& f, const f32_matrix& x, const py::object& ids) {
             check_matrix(x, "x", f.dim());
             i64_vector id_array;
             if (!ids.is_none()) {
               id_array = i64_vector::ensure(ids);
               if (!id_array) throw TypeError("ids: expected an integer array");
               check_ids(id_array, "ids", x.shape(0));
             }
             const std::int64_t* ip = ids.is_none() ? nullptr : id_array.data();
             py::gil_scoped_release release;
             f.add(x.data(), x.shape(0), ip);
           },
           py::arg("x"), py::arg("ids") = py::none())
      .def("search",
           [](const search::FlatIndex& f, const f32_matrix& queries, std::int64_t k, const py::object& allowed) {
             check_matrix(queries, "queries", f.dim());
             i64_vector allowed_array;
             if (!allowed.is_none()) {
               allowed_array = i64_vector::ensure(allowed);
               if (!allowed_array) throw TypeError("allowed: expected an integer array");
               check_ids(allowed_array, "allowed", -1);
             }
             const std::int64_t* ap = allowed.is_none() ? nullptr : allowed_array.data();
             const std::int64_t na = allowed.is_none() ? 0 : allowed_array.shape(0);
             // Rows may be added or reset meanwhile: the search fills slots past
             // the rows it finds with -1 / inf.
             KnnResult r = knn_result(queries.shape(0), k, f.size());
             k = r.first.shape(1);
             float* d = r.first.mutable_data();
             std::int64_t* i = r.second.mutable_data();
             {
               py::gil_scoped_release release;
               f.search(queries.data(), queries.shape(0), k, d, i, ap, na);
             }
             return r;
           },
           py::arg("queries"), py::arg("k"), py::arg("allowed") = py::none())
      .def("range_search",
           [](const search::FlatIndex& f, const f32_matrix& queries, float radius) {
             check_matrix(queries, "queries", f.dim());
             search::RangeSearchResult r;
             {
               py::gil_scoped_release release;
               r = f.range_search(queries.data(), queries.shape(0), radius);
             }
             return py::make_tuple(to_array(r.lims), to_array(r.distances), to_array(r.ids));
           },
           py::arg("queries"), py::arg("radius"))
      .def("remove",
           [](search::FlatIndex& f, const i64_vector& ids) {
             check_ids(ids, "ids", -1);
             py::gil_scoped_release release;
             return f.remove(ids.data(), ids.shape(0));
           },
           py::arg("ids"))
      .def("get_items",
           [](const search::FlatIndex& f, const i64_vector& ids) {
             check_ids(ids, "ids", -1);
             py::array_t<float> out({static_cast<std::int64_t>(ids.shape(0)), f.dim()});
             float* o = out.mutable_data();
             {
               py::gil_scoped_release release;
               f.get_items(ids.data(), ids.shape(0), o);
             }
             return out;
           },
           py::arg("ids"))
      .def("ids",
           [](const search::FlatIndex& f) {
             std::vector<std::int64_t> ids;
             {
               py::gil_scoped_release release;
               ids = f.ids();
             }
             return to_array(ids);
           })
      .def("rows",
           [](const search::FlatIndex& f) {
             py::array_t<float> out({f.size(), f.dim()});
             std::int64_t copied;
             {
               py::gil_scoped_release release;
               copied = f.copy_rows(out.mutable_data(), out.shape(0));
             }
             if (copied < out.shape(0)) out.resize({copied, f.dim()}, false);  // reset meanwhile
             return out;
           })
      .def("reset", &search::FlatIndex::reset, py::call_guard<py::gil_scoped_release>())
      .def("save", &search::FlatIndex::save, py::arg("path"), py::call_guard<py::gil_scoped_release>())
      .def_static("load", &search::FlatIndex::load, py::arg("path"), py::call_guard<py::gil_scoped_release>())
      .def("to_bytes", &index_to_bytes<search::FlatIndex>)
      .def_static("from_bytes", &index_from_bytes<search::FlatIndex>, py::arg("data"));

  m.def("pca_transform",
        [](const f32_matrix& x, const f32_matrix& mean, const f32_matrix& components, py::object scale) {
          check_matrix(x, "x");
          const std::int64_t dim = x.shape(1);
          check_matrix(components, "components", dim);
          check_vector(mean, "mean", dim);
          const std::int64_t nc = components.shape(0);
          f32_matrix s;
          if (!scale.is_none()) {
            s = f32_matrix::ensure(scale);
            if (!s) throw TypeError("scale: expected a float array or None");
            check_vector(s, "scale", nc);
          }
          py::array_t<float> out({x.shape(0), nc});
          float* o = out.mutable_data();
          const float* sp = scale.is_none() ? nullptr : s.data();
          {
            py::gil_scoped_release release;
            search::pca_transform(x.data(), x.shape(0), dim, mean.data(), components.data(), nc, sp, o);
          }
          return out;
        },
        py::arg("x"), py::arg("mean"), py::arg("components"), py::arg("scale") = py::none());
}

}  // namespace keensight::bindings
