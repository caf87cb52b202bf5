#include "keensight/core.hpp"

namespace keensight {

const char* depth_name(Depth d) {
  switch (d) {
    case Depth::u8: return "uint8";
    case Depth::u16: return "uint16";
    case Depth::s16: return "int16";
    case Depth::f32: return "float32";
  }
  return "unknown";
}

std::size_t depth_size(Depth d) {
  switch (d) {
    case Depth::u8: return 1;
    case Depth::u16: return 2;
    case Depth::s16: return 2;
    case Depth::f32: return 4;
  }
  return 0;
}

void check_image(const ImageView& v, const char* what) {
  const std::string name(what);
  if (v.data == nullptr) throw ValueError(name + ": image data is null");
  if (v.rows <= 0 || v.cols <= 0 || v.channels <= 0)
    throw ValueError(name + ": expected a non-empty image, got " + std::to_string(v.rows) + "x" +
                     std::to_string(v.cols) + "x" + std::to_string(v.channels));
  const std::int64_t row_bytes = v.cols * v.channels * static_cast<std::int64_t>(depth_size(v.depth));
  if (v.rows > 1 && v.row_stride < row_bytes)
    throw ValueError(name + ": row stride " + std::to_string(v.row_stride) +
                     " bytes is smaller than a row (" + std::to_string(row_bytes) + " bytes)");
}

}  // namespace keensight
