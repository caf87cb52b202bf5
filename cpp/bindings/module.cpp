// keensight._core: module definition, exception mapping and the core functions.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "keensight/core.hpp"

namespace py = pybind11;

namespace keensight::bindings {
void bind_filters(py::module_& m);
void bind_search(py::module_& m);  // search.cpp: metrics, k-NN, FlatIndex, PCA, sequential
void bind_hnsw(py::module_& m);    // hnsw.cpp: the HNSW index
void bind_sequential(py::module_& m);  // sequential.cpp: sequential three-way decisions
void bind_preprocess(py::module_& m);  // preprocess.cpp: fused resize/crop/normalise for CNN inputs
void bind_gemm(py::module_& m);        // gemm.cpp: private test bindings of the core GEMM driver
void bind_nn(py::module_& m);          // nn.cpp: the CNN engine's network builder
void bind_container(py::module_& m);   // container.cpp: the core file container for Python formats
void bind_nn_ops(py::module_& m);      // nn_ops.cpp: private test bindings of the nn ops, pools and stem
void bind_nn_depthwise(py::module_& m);  // nn_depthwise.cpp: private test binding of the depthwise operator
void bind_peak(py::module_& m);        // peak.cpp: private FMA peak measurement (benchmarks)
}

PYBIND11_MODULE(_core, m) {
  using namespace keensight;
  m.doc() = "keensight C++ core (internal; use the keensight package)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const keensight::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const keensight::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const keensight::FileError& e) {
      // OSError(errno, strerror, filename) becomes the matching subclass
      // (FileNotFoundError, PermissionError, ...).
      py::object error = py::reinterpret_steal<py::object>(
          PyObject_CallFunction(PyExc_OSError, "iss", e.errno_value, e.what(), e.path.c_str()));
      if (error) PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
    }
  });

  m.def("cpu_info", []() {
    const CpuInfo info = keensight::cpu_info();
    py::dict features;
    for (const auto& [name, present] : info.features()) features[name] = present;
    const auto names = [](IsaSet set) {
      py::list out;  // best order, lowest first
      for (int i = 0; i < kIsaCount; ++i)
        if (set.contains(static_cast<Isa>(i))) out.append(isa_name(static_cast<Isa>(i)));
      return out;
    };
    IsaSet all;
    for (int i = 0; i < kIsaCount; ++i) all = all.with(static_cast<Isa>(i));
    py::dict d;
    d["arch"] = info.arch;
    d["features"] = features;
    d["levels"] = names(info.levels);
    d["compiled_levels"] = names(info.compiled_levels);
    d["enabled_levels"] = names(info.enabled);
    d["all_levels"] = names(all);
    d["detected"] = isa_name(info.detected);
    d["compiled"] = isa_name(info.compiled);
    d["active"] = isa_name(info.active);
    d["forced"] = info.forced.empty() ? py::object(py::none()) : py::object(py::str(info.forced));
    d["forced_valid"] = info.forced_valid;
    d["openmp"] = has_openmp();
    d["num_threads"] = get_num_threads();
    return d;
  });
  m.def("set_isa", [](const std::string& name) { return std::string(isa_name(set_isa(isa_from_name(name)))); },
        py::arg("isa"));
  m.def("active_isa", []() { return std::string(isa_name(active_isa())); });
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &get_num_threads);

  keensight::bindings::bind_filters(m);
  keensight::bindings::bind_search(m);
  keensight::bindings::bind_hnsw(m);
  keensight::bindings::bind_sequential(m);
  keensight::bindings::bind_preprocess(m);
  keensight::bindings::bind_gemm(m);
  keensight::bindings::bind_nn(m);
  keensight::bindings::bind_container(m);
  keensight::bindings::bind_nn_ops(m);
  keensight::bindings::bind_nn_depthwise(m);
  keensight::bindings::bind_peak(m);
}
