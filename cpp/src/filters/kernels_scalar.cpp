// Portable reference kernels: plain loops, no intrinsics. The tests compare every
// SIMD variant against these.
#include <cmath>
#include <cstring>

#include "filters/kernels.hpp"

namespace keensight::filters::detail {
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
// The value stored for x: x * scale + delta (two roundings, as the SIMD kernels),
// x + delta when scale is 1.
inline float scaled(float x, float scale, float delta) { return scale == 1.f ? x + delta : x * scale + delta; }

template <class T>
void store_typed(const float* src, std::int64_t n, float scale, float delta, Depth depth, void* dst) {
  float lo, hi;
  depth_bounds(depth, lo, hi);
  T* d = static_cast<T*>(dst);
  for (std::int64_t i = 0; i < n; ++i) {
    float v = scaled(src[i], scale, delta);
    v = (v >= lo) ? v : lo;  // NaN -> lo
    v = (v <= hi) ? v : hi;
    d[i] = static_cast<T>(std::nearbyint(v));
  }
}

void store_row(const float* src, std::int64_t n, float scale, float delta, Depth depth, void* dst) {
  switch (depth) {
    case Depth::u8: store_typed<std::uint8_t>(src, n, scale, delta, depth, dst); return;
    case Depth::u16: store_typed<std::uint16_t>(src, n, scale, delta, depth, dst); return;
    case Depth::s16: store_typed<std::int16_t>(src, n, scale, delta, depth, dst); return;
    case Depth::f32: {
      float* d = static_cast<float*>(dst);
      for (std::int64_t i = 0; i < n; ++i) d[i] = scaled(src[i], scale, delta);
      return;
    }
  }
}

void accumulate_taps(const float* const* ptrs, const float* coeffs, int ntaps, std::int64_t n,
                     float* dst, bool accumulate, bool /*stream*/) {
  for (std::int64_t x = 0; x < n; ++x) {
    float acc = accumulate ? dst[x] : 0.f;
    for (int t = 0; t < ntaps; ++t) acc += coeffs[t] * ptrs[t][x];
    dst[x] = acc;
  }
}

void accumulate_pairs(const float* const* p, const float* const* q, const float* coeffs,
                      int npairs, bool subtract, std::int64_t n, float* dst, bool accumulate,
                      bool /*stream*/) {
  const float sign = subtract ? -1.f : 1.f;
  for (std::int64_t x = 0; x < n; ++x) {
    float acc = accumulate ? dst[x] : 0.f;
    for (int t = 0; t < npairs; ++t) acc += coeffs[t] * (p[t][x] + sign * q[t][x]);
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

void hpass_u8(const std::uint8_t* src, const std::int64_t* offsets, const std::int16_t* coeffs,
              int ntaps, std::int64_t n, bool fixed_point, std::int16_t* dst) {
  for (std::int64_t x = 0; x < n; ++x) {
    std::int32_t acc = 0;
    if (fixed_point) {
      // Saturating unsigned 16-bit adds of non-negative products: the same as
      // saturating the total.
      for (int t = 0; t < ntaps; ++t) acc += coeffs[t] * src[x + offsets[t]];
      acc = acc > 65535 ? 65535 : acc;
      dst[x] = static_cast<std::int16_t>(acc - 32768);
    } else {
      for (int t = 0; t < ntaps; ++t) acc += coeffs[t] * src[x + offsets[t]];
      dst[x] = static_cast<std::int16_t>(acc);
    }
  }
}

void vpass_s16_u8(const std::int16_t* const* rows, const std::int16_t* coeffs, int ntaps,
                  std::int64_t n, std::int32_t bias, std::uint8_t* dst) {
  for (std::int64_t x = 0; x < n; ++x) {
    std::int32_t acc = bias;
    for (int i = 0; i < ntaps; ++i) acc += coeffs[i] * rows[i][x];
    acc >>= 16;
    dst[x] = static_cast<std::uint8_t>(acc < 0 ? 0 : (acc > 255 ? 255 : acc));
  }
}

void vpass_s16_f32(const std::int16_t* const* rows, const std::int16_t* coeffs, int ntaps,
                   std::int64_t n, float scale, float delta, float* dst) {
  for (std::int64_t x = 0; x < n; ++x) {
    std::int32_t acc = 0;
    for (int i = 0; i < ntaps; ++i) acc += coeffs[i] * rows[i][x];
    dst[x] = static_cast<float>(acc) * scale + delta;
  }
}

void vpass_s16_magnitude(const std::int16_t* const* rows_a, const std::int16_t* coeffs_a,
                         int ntaps_a, const std::int16_t* const* rows_b,
                         const std::int16_t* coeffs_b, int ntaps_b, std::int64_t n, bool l1,
                         float* dst) {
  for (std::int64_t x = 0; x < n; ++x) {
    std::int32_t a = 0, b = 0;
    for (int i = 0; i < ntaps_a; ++i) a += coeffs_a[i] * rows_a[i][x];
    for (int i = 0; i < ntaps_b; ++i) b += coeffs_b[i] * rows_b[i][x];
    const float fa = static_cast<float>(a), fb = static_cast<float>(b);
    dst[x] = l1 ? std::fabs(fa) + std::fabs(fb) : std::sqrt(fa * fa + fb * fb);
  }
}

// Iterative radix-2 decimation-in-time (Cooley-Tukey) down the columns. The
// twiddles w_k = exp(-+2 pi i k / rows), k < rows / 2, carry the direction.
void fft_columns(float* re, float* im, std::int64_t rows, std::int64_t cols,
                 const float* twiddle_re, const float* twiddle_im) {
  for (std::int64_t len = 2; len <= rows; len <<= 1) {
    const std::int64_t half = len >> 1, step = rows / len;
    for (std::int64_t start = 0; start < rows; start += len)
      for (std::int64_t j = 0; j < half; ++j) {
        const float wr = twiddle_re[j * step], wi = twiddle_im[j * step];
        float* ar = re + (start + j) * cols;
        float* ai = im + (start + j) * cols;
        float* br = re + (start + j + half) * cols;
        float* bi = im + (start + j + half) * cols;
        for (std::int64_t c = 0; c < cols; ++c) {
          const float tr = br[c] * wr - bi[c] * wi, ti = br[c] * wi + bi[c] * wr;
          br[c] = ar[c] - tr;
          bi[c] = ai[c] - ti;
          ar[c] += tr;
          ai[c] += ti;
        }
      }
  }
}

void complex_multiply(const float* ar, const float* ai, const float* br, const float* bi,
                      std::int64_t n, float* out_re, float* out_im) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float r = ar[i] * br[i] - ai[i] * bi[i], m = ar[i] * bi[i] + ai[i] * br[i];
    out_re[i] = r;
    out_im[i] = m;
  }
}

void transpose_planes(const float* sr, const float* si, std::int64_t n, const int* row_order,
                      float* dr, float* di) {
  for (std::int64_t x0 = 0; x0 < n; x0 += 8)
    for (std::int64_t y0 = 0; y0 < n; y0 += 8)  // 8 x 8 blocks: both sides stay in cache
      for (std::int64_t x = x0; x < x0 + 8; ++x) {
        float* rr = dr + row_order[x] * n;
        float* ri = di + row_order[x] * n;
        for (std::int64_t y = y0; y < y0 + 8; ++y) {
          rr[y] = sr[y * n + x];
          ri[y] = si[y * n + x];
        }
      }
}

void symmetric3x3(const float* up, const float* mid, const float* down, std::int64_t n,
                  std::int64_t s, float corner, float edge, float center, float* dst,
                  bool /*stream*/) {
  for (std::int64_t x = 0; x < n; ++x) {
    float r = center * mid[x];
    if (edge != 0.f) r += edge * ((up[x] + down[x]) + (mid[x - s] + mid[x + s]));
    if (corner != 0.f) r += corner * ((up[x - s] + up[x + s]) + (down[x - s] + down[x + s]));
    dst[x] = r;
  }
}

void column_pairs_x2(const float* const* rows, int ksize, const float* coeffs, bool subtract,
                     std::int64_t n, float* dst0, float* dst1) {
  column_pairs_x2_by_rows(filter_kernels_scalar(), rows, ksize, coeffs, subtract, n, dst0, dst1);
}

void gauss_column_u16(const std::uint16_t* const* rows, int ksize, const std::uint32_t* coeffs,
                      std::int64_t n, double* dst) {
  for (std::int64_t x = 0; x < n; ++x) dst[x] = gauss_column_u16_at(rows, ksize, coeffs, x);
}

void gauss_row_u16(const double* src, int ksize, std::int64_t step, const double* coeffs,
                   std::int64_t n, std::uint16_t* dst) {
  for (std::int64_t x = 0; x < n; ++x) dst[x] = gauss_row_u16_at(src, ksize, step, coeffs, x);
}

FilterKernels make_table() {
  FilterKernels t{};
  KEENSIGHT_FILL_FILTER_KERNELS(t);
  return t;
}

}  // namespace

const FilterKernels& filter_kernels_scalar() {
  static const FilterKernels table = make_table();
  return table;
}

}  // namespace keensight::filters::detail
