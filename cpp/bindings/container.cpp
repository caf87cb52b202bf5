// pybind11 glue of the core file container (core/container.hpp) for the Python
// layer's own formats (keensight.nn networks): one payload of bytes behind the
// shared magic / version / checksum / atomic write. No algorithms.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/container.hpp"
#include "keensight/core.hpp"

namespace py = pybind11;

namespace keensight::bindings {

void bind_container(py::module_& m) {
  m.def(
      "_container_write",
      [](const py::object& path, const std::string& magic, std::uint32_t version, const py::bytes& payload) -> py::object {
        const std::string data = payload;  // a copy: the GIL is released below
        if (path.is_none()) {
          std::vector<unsigned char> sink;
          {
            py::gil_scoped_release release;
            detail::ContainerWriter w(sink, magic, version);
            w.write_value(static_cast<std::uint64_t>(data.size()));
            w.write(data.data(), data.size());
            w.commit();
          }
          return py::bytes(reinterpret_cast<const char*>(sink.data()), sink.size());
        }
        const std::string target = path.cast<std::string>();
        py::gil_scoped_release release;
        detail::ContainerWriter w(target, magic, version);
        w.write_value(static_cast<std::uint64_t>(data.size()));
        w.write(data.data(), data.size());
        w.commit();
        return py::none();
      },
      py::arg("path"), py::arg("magic"), py::arg("version"), py::arg("payload"),
      "Writes payload in the core container (path None: returns the bytes).");
  m.def(
      "_container_read",
      [](const py::object& source, const std::string& magic, const std::string& what, std::uint32_t newest) {
        std::string payload;
        std::uint32_t version = 0;
        const auto read = [&](detail::ContainerReader& r) {
          r.require_version(newest);
          version = r.version();
          const auto size = r.read_value<std::uint64_t>();
          if (size != r.remaining()) throw ValueError(what + ": payload size does not match the container");
          payload.resize(static_cast<std::size_t>(size));
          r.read(payload.data(), payload.size());
          r.finish();
        };
        if (py::isinstance<py::bytes>(source)) {
          const std::string data = source.cast<std::string>();
          py::gil_scoped_release release;
          detail::ContainerReader r(data.data(), data.size(), magic, what.c_str());
          read(r);
        } else {
          const std::string path = source.cast<std::string>();
          py::gil_scoped_release release;
          detail::ContainerReader r(path, magic, what.c_str());
          read(r);
        }
        return py::make_tuple(version, py::bytes(payload));
      },
      py::arg("source"), py::arg("magic"), py::arg("what"), py::arg("newest"),
      "Reads and verifies a core container: (version, payload).");
}

}  // namespace keensight::bindings
