// Scalar reference kernels of the preprocess area (see kernels.hpp).
#include "preprocess/kernels.hpp"

namespace keensight::preprocess::detail {
namespace {

void vertical_u8(const std::uint8_t* const* rows, const float* weights, int ntaps, std::int64_t n,
                 float* dst) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = weights[0] * static_cast<float>(rows[0][i]);
  for (int t = 1; t < ntaps; ++t) {
    const std::uint8_t* r = rows[t];
    const float w = weights[t];
    for (std::int64_t i = 0; i < n; ++i) dst[i] += w * static_cast<float>(r[i]);
  }
}

void horizontal_store(const float* row, int channels, const int* map, const std::int32_t* start,
                      const float* weights, int ntaps, std::int64_t n, const float* scale,
                      const float* bias, float* const* dst, std::int64_t step) {
  for (int c = 0; c < 3; ++c) {
    const float* src = row + map[c];
    float* d = dst[c];
    for (std::int64_t x = 0; x < n; ++x) {
      const float* p = src + static_cast<std::int64_t>(start[x]) * channels;
      float v = 0.f;
      for (int t = 0; t < ntaps; ++t) v += weights[t * n + x] * p[t * channels];
      d[x * step] = v * scale[c] + bias[c];
    }
  }
}

PreprocessKernels make_table() {
  PreprocessKernels t{};  // by member name: see core/dispatch.hpp
  t.vertical_u8 = vertical_u8;
  t.horizontal_store = horizontal_store;
  return t;
}

}  // namespace

const PreprocessKernels& preprocess_kernels_scalar() {
  static const PreprocessKernels table = make_table();
  return table;
}

}  // namespace keensight::preprocess::detail
