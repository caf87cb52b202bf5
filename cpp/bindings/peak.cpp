// Private pybind11 glue of the FMA peak measurement (core/fma_peak.hpp), for the
// benchmarks' "% of FMA peak": _fma_peak_gflops. Argument checks, GIL release.
#include <pybind11/pybind11.h>

#include <string>

#include "core/fma_peak.hpp"

namespace py = pybind11;

namespace keensight::bindings {

void bind_peak(py::module_& m) {
  m.def("_fma_peak_gflops",
        [](const py::object& level, double seconds) {
          if (!level.is_none() && !py::isinstance<py::str>(level))
            throw TypeError("level: expected an ISA level name (str) or None");
          if (level.is_none()) {
            py::gil_scoped_release release;
            return detail::fma_peak_gflops(seconds);
          }
          const Isa isa = isa_from_name(level.cast<std::string>());
          py::gil_scoped_release release;
          return detail::fma_peak_gflops(isa, seconds);
        },
        py::arg("level") = py::none(), py::arg("seconds") = 0.2,
        "Single-thread peak GFLOP/s of independent FMA chains at `level` (None: the active level; a "
        "level falls back along its chain to the kernel registered for it), the best of ~1 ms runs over "
        "about `seconds` (private: the benchmarks' % of peak).");
  m.def("_fma_peak_kernel",
        [](const py::object& level) {
          if (level.is_none()) return std::string(detail::fma_peak_kernel_name(active_isa()));
          if (!py::isinstance<py::str>(level)) throw TypeError("level: expected an ISA level name (str) or None");
          return std::string(detail::fma_peak_kernel_name(isa_from_name(level.cast<std::string>())));
        },
        py::arg("level") = py::none(), "The name of the kernel _fma_peak_gflops(level) runs (private).");
}

}  // namespace keensight::bindings
