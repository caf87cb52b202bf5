// pybind11 glue helpers: NumPy array -> keensight::ImageView, with checks that
// name the argument, and the bytes form of every index.
// No algorithms here.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "keensight/core.hpp"

namespace keensight::bindings {

namespace py = pybind11;

inline Depth depth_of(const py::array& a, const char* name) {
  const py::dtype dt = a.dtype();
  if (dt.is(py::dtype::of<std::uint8_t>())) return Depth::u8;
  if (dt.is(py::dtype::of<std::uint16_t>())) return Depth::u16;
  if (dt.is(py::dtype::of<std::int16_t>())) return Depth::s16;
  if (dt.is(py::dtype::of<float>())) return Depth::f32;
  throw TypeError(std::string(name) + ": expected dtype uint8, uint16, int16 or float32, got " +
                  std::string(py::str(dt)));
}

// An HxW or HxWxC array whose pixels are contiguous within each row and whose
// row stride is positive (the Python layer copies anything else first).
inline ImageView image_view(const py::array& a, const char* name, bool writable) {
  if (a.ndim() != 2 && a.ndim() != 3)
    throw ValueError(std::string(name) + ": expected a 2-D (HxW) or 3-D (HxWxC) array, got " +
                     std::to_string(a.ndim()) + " dimensions");
  ImageView v;
  v.depth = depth_of(a, name);
  v.rows = a.shape(0);
  v.cols = a.shape(1);
  v.channels = a.ndim() == 3 ? a.shape(2) : 1;
  const py::ssize_t item = a.itemsize();
  const bool inner_ok = (a.ndim() == 2 ? (v.cols == 1 || a.strides(1) == item)
                                       : ((v.channels == 1 || a.strides(2) == item) &&
                                          (v.cols == 1 || a.strides(1) == item * v.channels)));
  if (!inner_ok || (v.rows > 1 && a.strides(0) <= 0))
    throw ValueError(std::string(name) + ": expected pixels contiguous within rows and a positive row stride");
  v.row_stride = v.rows > 1 ? a.strides(0) : item * v.cols * v.channels;
  if (writable) {
    if (!a.writeable()) throw ValueError(std::string(name) + ": array is read-only");
    v.data = const_cast<void*>(a.data());
  } else {
    v.data = const_cast<void*>(a.data());
  }
  check_image(v, name);
  return v;
}

// The bytes form of an index (Index::to_bytes / T::from_bytes), one way for every
// index class: the C++ work runs without the GIL.
template <class T>
py::bytes index_to_bytes(const T& index) {
  std::vector<unsigned char> bytes;
  {
    py::gil_scoped_release release;
    bytes = index.to_bytes();
  }
  return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

template <class T>
T index_from_bytes(const py::bytes& data) {
  char* p = nullptr;
  py::ssize_t size = 0;
  if (PYBIND11_BYTES_AS_STRING_AND_SIZE(data.ptr(), &p, &size) != 0) throw py::error_already_set();
  py::gil_scoped_release release;  // `data` is immutable and held by the caller
  return T::from_bytes(p, static_cast<std::size_t>(size));
}

}  // namespace keensight::bindings
