// The batched NCHW tensor view: element types and the one validation of a view.
#include <algorithm>
#include <array>
#include <limits>

#include "keensight/core.hpp"

namespace keensight {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::u8: return "uint8";
    case DType::s8: return "int8";
    case DType::s32: return "int32";
  }
  return "unknown";
}

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::u8: return 1;
    case DType::s8: return 1;
    case DType::s32: return 4;
  }
  return 0;
}

bool TensorView::is_contiguous() const {
  // Expected stride of each axis in a dense NCHW tensor; extent-1 axes are never stepped.
  const std::array<std::int64_t, 4> extent{n, c, h, w}, stride{stride_n, stride_c, stride_h, stride_w};
  std::int64_t expected = 1;
  for (int axis = 3; axis >= 0; --axis) {
    if (extent[axis] != 1 && stride[axis] != expected) return false;
    expected *= extent[axis];
  }
  return true;
}

void check_tensor(const TensorView& v, const char* what) {
  const std::string name(what);
  const std::string shape = std::to_string(v.n) + "x" + std::to_string(v.c) + "x" + std::to_string(v.h) +
                            "x" + std::to_string(v.w);
  if (v.data == nullptr) throw ValueError(name + ": tensor data is null");
  if (v.n <= 0 || v.c <= 0 || v.h <= 0 || v.w <= 0)
    throw ValueError(name + ": expected a non-empty N x C x H x W tensor, got " + shape);
  const std::size_t esize = dtype_size(v.dtype);
  if (esize == 0) throw ValueError(name + ": unknown element type");
  struct Axis {
    std::int64_t extent, stride;
  };
  std::array<Axis, 4> axes{{{v.n, v.stride_n}, {v.c, v.stride_c}, {v.h, v.stride_h}, {v.w, v.stride_w}}};
  for (const Axis& a : axes)
    if (a.stride < 0)
      throw ValueError(name + ": expected non-negative strides, got (" + std::to_string(v.stride_n) + ", " +
                       std::to_string(v.stride_c) + ", " + std::to_string(v.stride_h) + ", " +
                       std::to_string(v.stride_w) + ") elements");
  // The span in elements, sum (extent - 1) * stride, must fit in bytes: every offset a
  // kernel computes (in std::int64_t, times the element size) is then exact.
  const std::int64_t limit = std::numeric_limits<std::int64_t>::max() / static_cast<std::int64_t>(esize);
  std::int64_t span = 0;
  for (const Axis& a : axes) {
    if (a.extent == 1) continue;
    if (a.stride != 0 && a.extent - 1 > (limit - span) / a.stride)
      throw ValueError(name + ": tensor " + shape + " with these strides spans more than 2^63 bytes");
    span += (a.extent - 1) * a.stride;
  }
  // No two elements at one address: with the stepped axes sorted by stride, each axis
  // must step past everything the smaller axes cover (the usual sufficient rule; it
  // also refuses interleaved axes, which no NCHW or NHWC array has).
  std::sort(axes.begin(), axes.end(), [](const Axis& a, const Axis& b) { return a.stride < b.stride; });
  std::int64_t covered = 0;  // largest offset the smaller axes reach
  for (const Axis& a : axes) {
    if (a.extent == 1) continue;
    if (a.stride <= covered)
      throw ValueError(name + ": strides (" + std::to_string(v.stride_n) + ", " + std::to_string(v.stride_c) +
                       ", " + std::to_string(v.stride_h) + ", " + std::to_string(v.stride_w) +
                       ") elements overlap for a " + shape + " tensor");
    covered += (a.extent - 1) * a.stride;
  }
}

}  // namespace keensight
