// pybind11 glue of the sequential three-way classifier: array checks, GIL release.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <memory>
#include <string>

#include "keensight/search.hpp"

namespace py = pybind11;

namespace keensight::bindings {
namespace {

using f32_matrix = py::array_t<float, py::array::c_style | py::array::forcecast>;
using i64_vector = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

void check_matrix(const f32_matrix& a, const char* name) {
  if (a.ndim() != 2) throw ValueError(std::string(name) + ": expected a 2-D array");
}

}  // namespace

void bind_sequential(py::module_& m) {
  using search::SequentialIndex;
  py::class_<SequentialIndex, std::shared_ptr<SequentialIndex>>(m, "SequentialIndex")
      .def(py::init([](const f32_matrix& refs, const i64_vector& labels, std::int64_t n_classes,
                       std::int64_t granule, const std::string& metric, const py::object& mean,
                       const py::object& components, const py::object& scale) {
             check_matrix(refs, "refs");
             if (labels.ndim() != 1 || labels.shape(0) != refs.shape(0))
               throw ValueError("labels: expected one label per reference row");
             const search::Metric mt = search::metric_from_name(metric);
             const std::int64_t dim = refs.shape(1);
             // The optional PCA the queries go through (pca_transform's arguments).
             if (mean.is_none() != components.is_none())
               throw ValueError("mean, components: expected both or neither");
             if (components.is_none() && !scale.is_none())
               throw ValueError("scale: needs mean and components");
             f32_matrix mn, comp, sc;
             std::int64_t input_dim = 0;
             if (!components.is_none()) {
               comp = f32_matrix::ensure(components);
               mn = f32_matrix::ensure(mean);
               if (!comp || !mn) throw TypeError("mean, components: expected float arrays");
               if (comp.ndim() != 2 || comp.shape(0) != dim)
                 throw ValueError("components: expected a 2-D array with one row per reference column (" +
                                  std::to_string(dim) + ")");
               input_dim = comp.shape(1);
               if (mn.ndim() != 1 || mn.shape(0) != input_dim)
                 throw ValueError("mean: expected a vector of " + std::to_string(input_dim) + " values");
               if (!scale.is_none()) {
                 sc = f32_matrix::ensure(scale);
                 if (!sc) throw TypeError("scale: expected a float array or None");
                 if (sc.ndim() != 1 || sc.shape(0) != dim)
                   throw ValueError("scale: expected a vector of " + std::to_string(dim) + " values");
               }
             }
             const float* mp = components.is_none() ? nullptr : mn.data();
             const float* cp = components.is_none() ? nullptr : comp.data();
             const float* sp = scale.is_none() ? nullptr : sc.data();
             py::gil_scoped_release release;
             return std::make_shared<SequentialIndex>(refs.data(), refs.shape(0), dim, labels.data(), n_classes,
                                                      granule, mt, mp, cp, input_dim, sp);
           }),
           py::arg("refs"), py::arg("labels"), py::arg("n_classes"), py::arg("granule"),
           py::arg("metric") = "l2", py::arg("mean") = py::none(), py::arg("components") = py::none(),
           py::arg("scale") = py::none())
      .def_property_readonly("n_levels", &SequentialIndex::n_levels)
      .def("references",
           [](const SequentialIndex& self) {
             py::array_t<float> out({self.size(), self.dim()});
             float* o = out.mutable_data();
             py::gil_scoped_release release;
             self.copy_references(o);
             return out;
           })
      .def_property_readonly("dim", &SequentialIndex::dim)
      .def_property_readonly("input_dim", &SequentialIndex::input_dim)
      .def("predict",
           [](const SequentialIndex& self, const f32_matrix& queries, double delta, std::int64_t k) {
             check_matrix(queries, "queries");
             if (queries.shape(1) != self.input_dim())
               throw ValueError("queries: expected " + std::to_string(self.input_dim()) + " columns, got " +
                                std::to_string(queries.shape(1)));
             if (k <= 0) throw ValueError("k: expected a positive number of neighbours");
             k = std::min(k, self.size());  // never wider than the references
             const std::int64_t nq = queries.shape(0), C = self.n_classes();
             py::array_t<float> class_d({nq, C}), nn_d({nq, k});
             py::array_t<std::int64_t> nn_i({nq, k}), levels(nq), comps(nq), evals(nq), terms(nq);
             {
               py::gil_scoped_release release;
               self.predict(queries.data(), nq, delta, k, class_d.mutable_data(), nn_d.mutable_data(),
                            nn_i.mutable_data(), levels.mutable_data(), comps.mutable_data(),
                            evals.mutable_data(), terms.mutable_data());
             }
             return py::make_tuple(class_d, nn_d, nn_i, levels, comps, evals, terms);
           },
           py::arg("queries"), py::arg("delta"), py::arg("k") = 1);
}

}  // namespace keensight::bindings
