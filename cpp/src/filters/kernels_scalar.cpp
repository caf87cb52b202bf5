// Portable reference kernels: plain loops, no intrinsics. The tests compare every
// SIMD variant against these.
#include <cmath>
#include <cstring>

#include "filters/kernels.hpp"

namespace keensight::filters_detail {
namespace {

template <class T>
void load_typed(const void* src, std::int64_t n, float* dst) {
  const T* s = static_cast<const T*>(src);
  for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
}

void load_row(const void* src, Depth depth, std::int64_t n, float* dst) {
  switch (depth) {
    case Depth::u8: load_typed<std::uint8_t>(src, n, dst); return;
    case Depth::u16: load_typed<std::uint16_t>(src, n, dst); return;
    case Depth::s16: load_typed<std::int16_t>(src, n, dst); return;
    case Depth::f32: std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float)); return;
  }
}

// Saturate in float, then round half to even (what cvRound / cvtps2dq do).
// NaN goes to the lower bound, as the SIMD max/min sequence does.
template <class T>
void store_typed(const float* src, std::int64_t n, float delta, Depth depth, void* dst) {
  float lo, hi;
  depth_bounds(depth, lo, hi);
  T* d = static_cast<T*>(dst);
  for (std::int64_t i = 0; i < n; ++i) {
    float v = src[i] + delta;
    v = (v >= lo) ? v : lo;  // NaN -> lo
    v = (v <= hi) ? v : hi;
    d[i] = static_cast<T>(std::nearbyint(v));
  }
}

void store_row(const float* src, std::int64_t n, float delta, Depth depth, void* dst) {
  switch (depth) {
    case Depth::u8: store_typed<std::uint8_t>(src, n, delta, depth, dst); return;
    case Depth::u16: store_typed<std::uint16_t>(src, n, delta, depth, dst); return;
    case Depth::s16: store_typed<std::int16_t>(src, n, delta, depth, dst); return;
    case Depth::f32: {
      float* d = static_cast<float*>(dst);
      for (std::int64_t i = 0; i < n; ++i) d[i] = src[i] + delta;
      return;
    }
  }
}

void accumulate_taps(const float* const* ptrs, const float* coeffs, int ntaps, std::int64_t n,
                     float* dst, bool accumulate) {
  for (std::int64_t x = 0; x < n; ++x) {
    float acc = accumulate ? dst[x] : 0.f;
    for (int t = 0; t < ntaps; ++t) acc += coeffs[t] * ptrs[t][x];
    dst[x] = acc;
  }
}

void magnitude(const float* a, const float* b, std::int64_t n, bool l1, float* dst) {
  if (l1) {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = std::fabs(a[i]) + std::fabs(b[i]);
  } else {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = std::sqrt(a[i] * a[i] + b[i] * b[i]);
  }
}

const FilterKernels kTable = {load_row, store_row, accumulate_taps, magnitude};

}  // namespace

const FilterKernels& filter_kernels_scalar() { return kTable; }

}  // namespace keensight::filters_detail
