// pybind11 glue of the HNSW index: array checks, GIL release, no algorithms.
// keensight.search.HNSWIndex (Python) validates arguments first and wraps this.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <utility>

#include "arrays.hpp"
#include "keensight/search.hpp"

namespace py = pybind11;

namespace keensight::bindings {

namespace {

using search::HNSWIndex;
using f32_array = py::array_t<float, py::array::c_style | py::array::forcecast>;
using i64_array = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

void check_rows(const f32_array& a, const char* name, std::int64_t dim) {
  if (a.ndim() != 2 || a.shape(1) != dim)
    throw ValueError(std::string(name) + ": expected a 2-D array with " + std::to_string(dim) +
                     " columns");
}

void check_ids(const i64_array& ids, const char* name, std::int64_t n) {
  if (ids.ndim() != 1 || (n >= 0 && ids.shape(0) != n))
    throw ValueError(std::string(name) + ": expected a 1-D array" +
                     (n >= 0 ? " of " + std::to_string(n) + " ids" : std::string()));
}

search::HNSWOptions options(const std::string& metric, int M, int ef_construction, int ef_search,
                            int granule, bool early_termination, std::uint64_t seed, bool pca, bool pca_auto) {
  search::HNSWOptions o;
  o.metric = search::metric_from_name(metric);
  o.M = M;
  o.ef_construction = ef_construction;
  o.ef_search = ef_search;
  o.granule = granule;
  o.early_termination = early_termination;
  o.seed = seed;
  o.pca = pca;
  o.pca_auto = pca_auto;
  return o;
}

template <class T>
py::array_t<T> to_array(const std::vector<T>& v) {
  py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

}  // namespace

void bind_hnsw(py::module_& m) {
  py::class_<HNSWIndex> cls(m, "HNSWIndex");
  cls.attr("MAX_EF") = search::kHNSWMaxEf;
  cls
      .def(py::init([](std::int64_t dim, const std::string& metric, int M, int ef_construction,
                       int ef_search, int granule, bool early_termination, std::uint64_t seed, bool pca,
                       bool pca_auto) {
             return HNSWIndex(dim, options(metric, M, ef_construction, ef_search, granule,
                                           early_termination, seed, pca, pca_auto));
           }),
           py::arg("dim"), py::arg("metric") = "l2", py::arg("M") = 16,
           py::arg("ef_construction") = 200, py::arg("ef_search") = 64, py::arg("granule") = 32,
           py::arg("early_termination") = true, py::arg("seed") = 100, py::arg("pca") = false,
           py::arg("pca_auto") = false)
      .def("set_rotation",
           [](HNSWIndex& self, const f32_array& r) {
             if (r.ndim() != 2 || r.shape(0) != self.dim() || r.shape(1) != self.dim())
               throw ValueError("rotation: expected a dim x dim array");
             py::gil_scoped_release release;
             self.set_rotation(r.data());
           },
           py::arg("rotation"))
      .def("set_pca_axes",
           [](HNSWIndex& self, const f32_array& axes) {
             if (axes.ndim() != 2 || axes.shape(1) != self.dim() || axes.shape(0) < 1 || axes.shape(0) > self.dim())
               throw ValueError("axes: expected a k x dim array, 1 <= k <= dim");
             py::gil_scoped_release release;
             self.set_pca_axes(axes.data(), axes.shape(0));
           },
           py::arg("axes"))
      .def("rotation",
           [](const HNSWIndex& self) -> py::object {
             std::vector<float> r;
             {
               py::gil_scoped_release release;
               r = self.rotation();
             }
             if (r.empty()) return py::none();
             py::array_t<float> out({self.dim(), self.dim()});
             std::copy(r.begin(), r.end(), out.mutable_data());
             return std::move(out);
           })
      .def("add",
           [](HNSWIndex& self, const f32_array& vectors, const py::object& ids, int num_threads,
              bool replace_deleted) {
             check_rows(vectors, "vectors", self.dim());
             const std::int64_t n = vectors.shape(0);
             i64_array id_array;
             const std::int64_t* id_ptr = nullptr;
             if (!ids.is_none()) {
               id_array = i64_array::ensure(ids);
               if (!id_array) throw TypeError("ids: expected an integer array");
               check_ids(id_array, "ids", n);
               id_ptr = id_array.data();
             }
             py::gil_scoped_release release;
             self.add(vectors.data(), n, id_ptr, num_threads, replace_deleted);
           },
           py::arg("vectors"), py::arg("ids") = py::none(), py::arg("num_threads") = 0,
           py::arg("replace_deleted") = false)
      .def("range_search",
           [](const HNSWIndex& self, const f32_array& queries, float radius, int num_threads) {
             check_rows(queries, "queries", self.dim());
             search::RangeSearchResult r;
             {
               py::gil_scoped_release release;
               r = self.range_search(queries.data(), queries.shape(0), radius, num_threads);
             }
             return py::make_tuple(to_array(r.lims), to_array(r.distances), to_array(r.ids));
           },
           py::arg("queries"), py::arg("radius"), py::arg("num_threads") = 0)
      .def("remove",
           [](HNSWIndex& self, const i64_array& ids) {
             check_ids(ids, "ids", -1);
             py::gil_scoped_release release;
             return self.remove(ids.data(), ids.shape(0));
           },
           py::arg("ids"))
      .def("reset", [](HNSWIndex& self) {
        py::gil_scoped_release release;
        self.reset();
      })
      .def("get_items",
           [](const HNSWIndex& self, const i64_array& ids) {
             check_ids(ids, "ids", -1);
             py::array_t<float> out({static_cast<std::int64_t>(ids.shape(0)), self.dim()});
             float* o = out.mutable_data();
             {
               py::gil_scoped_release release;
               self.get_items(ids.data(), ids.shape(0), o);
             }
             return out;
           },
           py::arg("ids"))
      .def("to_bytes", &index_to_bytes<HNSWIndex>)
      .def_static("from_bytes", &index_from_bytes<HNSWIndex>, py::arg("data"))
      .def("search",
           [](const HNSWIndex& self, const f32_array& queries, std::int64_t k, std::int64_t ef,
              const py::object& allowed, int num_threads) {
             check_rows(queries, "queries", self.dim());
             if (k < 1) throw ValueError("k: expected a positive int, got " + std::to_string(k));
             // Never wider than the index: more columns could only hold -1 (and a
             // huge k must not allocate). An index that grows meanwhile only adds rows.
             k = std::max<std::int64_t>(1, std::min(k, self.size()));
             const std::int64_t nq = queries.shape(0);
             i64_array allowed_array;
             const std::int64_t* allowed_ptr = nullptr;
             std::int64_t n_allowed = 0;
             if (!allowed.is_none()) {
               allowed_array = i64_array::ensure(allowed);
               if (!allowed_array) throw TypeError("allowed: expected an integer array");
               check_ids(allowed_array, "allowed", -1);
               allowed_ptr = allowed_array.data();
               n_allowed = allowed_array.shape(0);
               static const std::int64_t kNone = -1;
               if (!allowed_ptr) allowed_ptr = &kNone;  // an empty allow-list still filters
             }
             py::array_t<float> distances({nq, k});
             py::array_t<std::int64_t> ids({nq, k});
             search::HNSWSearchStats stats;
             {
               float* d = distances.mutable_data();
               std::int64_t* i = ids.mutable_data();
               py::gil_scoped_release release;
               self.search(queries.data(), nq, k, ef, d, i, allowed_ptr, n_allowed, num_threads, &stats);
             }
             py::dict s;
             s["distances"] = stats.distances;
             s["rejected"] = stats.rejected;
             s["head_only"] = stats.head_only;
             return py::make_tuple(distances, ids, s);
           },
           py::arg("queries"), py::arg("k"), py::arg("ef") = 0, py::arg("allowed") = py::none(),
           py::arg("num_threads") = 0)
      .def("mark_deleted",
           [](HNSWIndex& self, const i64_array& ids) {
             check_ids(ids, "ids", -1);
             py::gil_scoped_release release;
             self.mark_deleted(ids.data(), ids.shape(0));
           },
           py::arg("ids"))
      .def("unmark_deleted",
           [](HNSWIndex& self, const i64_array& ids) {
             check_ids(ids, "ids", -1);
             py::gil_scoped_release release;
             self.unmark_deleted(ids.data(), ids.shape(0));
           },
           py::arg("ids"))
      .def("save",
           [](const HNSWIndex& self, const std::string& path) {
             py::gil_scoped_release release;
             self.save(path);
           },
           py::arg("path"))
      .def_static("load",
                  [](const std::string& path) {
                    py::gil_scoped_release release;
                    return HNSWIndex::load(path);
                  },
                  py::arg("path"))
      .def("ids",
           [](const HNSWIndex& self) {
             std::vector<std::int64_t> v;
             {
               py::gil_scoped_release release;
               v = self.ids();
             }
             py::array_t<std::int64_t> out(static_cast<py::ssize_t>(v.size()));
             std::copy(v.begin(), v.end(), out.mutable_data());
             return out;
           })
      .def("memory_usage",
           [](const HNSWIndex& self) {
             py::gil_scoped_release release;
             return self.memory_usage();
           })
      .def_property_readonly("dim", &HNSWIndex::dim)
      .def_property_readonly("size", [](const HNSWIndex& self) {
        py::gil_scoped_release release;
        return self.size();
      })
      .def_property_readonly("slots", [](const HNSWIndex& self) {
        py::gil_scoped_release release;
        return self.slots();
      })
      .def_property_readonly("n_deleted", [](const HNSWIndex& self) {
        py::gil_scoped_release release;
        return self.n_deleted();
      })
      .def_property_readonly("max_level", [](const HNSWIndex& self) {
        py::gil_scoped_release release;
        return self.max_level();
      })
      .def_property_readonly("metric",
                             [](const HNSWIndex& self) { return std::string(search::metric_name(self.options().metric)); })
      .def_property_readonly("M", [](const HNSWIndex& self) { return self.options().M; })
      .def_property_readonly("ef_construction", [](const HNSWIndex& self) { return self.options().ef_construction; })
      .def_property_readonly("granule", [](const HNSWIndex& self) { return self.options().granule; })
      .def_property_readonly("pca", [](const HNSWIndex& self) { return self.options().pca; })
      .def_property_readonly("pca_auto", [](const HNSWIndex& self) { return self.options().pca_auto; })
      .def_property_readonly("seed", [](const HNSWIndex& self) { return self.options().seed; })
      .def_property(
          "ef_search", [](const HNSWIndex& self) { return self.options().ef_search; },
          [](HNSWIndex& self, int ef) {
            py::gil_scoped_release release;
            self.set_ef_search(ef);
          })
      .def_property(
          "early_termination", [](const HNSWIndex& self) { return self.options().early_termination; },
          [](HNSWIndex& self, bool on) {
            py::gil_scoped_release release;
            self.set_early_termination(on);
          });
}

}  // namespace keensight::bindings
