// AVX2 + FMA kernels (compiled with -mavx2 -mfma; selected at run time only on
// CPUs that have both). Same results as kernels_scalar.cpp up to float rounding
// of the fused multiply-adds.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "filters/kernels.hpp"

namespace keensight::filters_detail {
namespace {

void load_row(const void* src, Depth depth, std::int64_t n, float* dst) {
  std::int64_t i = 0;
  switch (depth) {
    case Depth::u8: {
      const std::uint8_t* s = static_cast<const std::uint8_t*>(src);
      for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)));
        _mm256_storeu_ps(dst + i + 8,
                         _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8))));
      }
      for (; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case Depth::u16: {
      const std::uint16_t* s = static_cast<const std::uint16_t*>(src);
      for (; i + 8 <= n; i += 8) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(v)));
      }
      for (; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case Depth::s16: {
      const std::int16_t* s = static_cast<const std::int16_t*>(src);
      for (; i + 8 <= n; i += 8) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(v)));
      }
      for (; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case Depth::f32:
      std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float));
      return;
  }
}

// Saturate in float (max first, so NaN becomes the lower bound), round half to even.
inline __m256i round_clamped(__m256 v, __m256 lo, __m256 hi) {
  return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
}

template <class T>
void store_tail(const float* src, std::int64_t i, std::int64_t n, float delta, float lo, float hi,
                T* d) {
  for (; i < n; ++i) {
    float v = src[i] + delta;
    v = (v >= lo) ? v : lo;
    v = (v <= hi) ? v : hi;
    d[i] = static_cast<T>(std::nearbyint(v));
  }
}

void store_row(const float* src, std::int64_t n, float delta, Depth depth, void* dst) {
  float lo_s, hi_s;
  depth_bounds(depth, lo_s, hi_s);
  const __m256 vd = _mm256_set1_ps(delta), lo = _mm256_set1_ps(lo_s), hi = _mm256_set1_ps(hi_s);
  std::int64_t i = 0;
  switch (depth) {
    case Depth::u8: {
      std::uint8_t* d = static_cast<std::uint8_t*>(dst);
      const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
      for (; i + 32 <= n; i += 32) {
        __m256i a = round_clamped(_mm256_add_ps(_mm256_loadu_ps(src + i), vd), lo, hi);
        __m256i b = round_clamped(_mm256_add_ps(_mm256_loadu_ps(src + i + 8), vd), lo, hi);
        __m256i c = round_clamped(_mm256_add_ps(_mm256_loadu_ps(src + i + 16), vd), lo, hi);
        __m256i e = round_clamped(_mm256_add_ps(_mm256_loadu_ps(src + i + 24), vd), lo, hi);
        __m256i ab = _mm256_packs_epi32(a, b);   // lanes: a0 b0 | a1 b1
        __m256i ce = _mm256_packs_epi32(c, e);   // lanes: c0 e0 | c1 e1
        __m256i p = _mm256_packus_epi16(ab, ce);  // a0 b0 c0 e0 | a1 b1 c1 e1 (4-byte groups)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm256_permutevar8x32_epi32(p, perm));
      }
      store_tail(src, i, n, delta, lo_s, hi_s, d);
      return;
    }
    case Depth::u16: {
      std::uint16_t* d = static_cast<std::uint16_t*>(dst);
      for (; i + 16 <= n; i += 16) {
        __m256i a = round_clamped(_mm256_add_ps(_mm256_loadu_ps(src + i), vd), lo, hi);
        __m256i b = round_clamped(_mm256_add_ps(_mm256_loadu_ps(src + i + 8), vd), lo, hi);
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), p);
      }
      store_tail(src, i, n, delta, lo_s, hi_s, d);
      return;
    }
    case Depth::s16: {
      std::int16_t* d = static_cast<std::int16_t*>(dst);
      for (; i + 16 <= n; i += 16) {
        __m256i a = round_clamped(_mm256_add_ps(_mm256_loadu_ps(src + i), vd), lo, hi);
        __m256i b = round_clamped(_mm256_add_ps(_mm256_loadu_ps(src + i + 8), vd), lo, hi);
        __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), p);
      }
      store_tail(src, i, n, delta, lo_s, hi_s, d);
      return;
    }
    case Depth::f32: {
      float* d = static_cast<float*>(dst);
      for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_add_ps(_mm256_loadu_ps(src + i), vd));
      for (; i < n; ++i) d[i] = src[i] + delta;
      return;
    }
  }
}

// dst[x] (+)= sum_t c[t] * p[t][x]. Register-blocked over x: 8 accumulators of
// 8 floats stay in ymm registers across all taps, so each tap costs one
// broadcast and eight load+FMA pairs (the FMA ports, not memory, set the pace).
template <int V>
inline void taps_block(const float* const* ptrs, const float* coeffs, int ntaps, std::int64_t x,
                       float* dst, bool accumulate) {
  __m256 acc[V];
  for (int v = 0; v < V; ++v)
    acc[v] = accumulate ? _mm256_loadu_ps(dst + x + 8 * v) : _mm256_setzero_ps();
  for (int t = 0; t < ntaps; ++t) {
    const __m256 c = _mm256_broadcast_ss(coeffs + t);
    const float* p = ptrs[t] + x;
    for (int v = 0; v < V; ++v) acc[v] = _mm256_fmadd_ps(c, _mm256_loadu_ps(p + 8 * v), acc[v]);
  }
  for (int v = 0; v < V; ++v) _mm256_storeu_ps(dst + x + 8 * v, acc[v]);
}

void accumulate_taps(const float* const* ptrs, const float* coeffs, int ntaps, std::int64_t n,
                     float* dst, bool accumulate) {
  std::int64_t x = 0;
  for (; x + 64 <= n; x += 64) taps_block<8>(ptrs, coeffs, ntaps, x, dst, accumulate);
  for (; x + 8 <= n; x += 8) taps_block<1>(ptrs, coeffs, ntaps, x, dst, accumulate);
  if (x < n) {
    // Tail of fewer than 8: masked loads never touch memory past the row.
    const std::int64_t rem = n - x;
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 acc = accumulate ? _mm256_maskload_ps(dst + x, mask) : _mm256_setzero_ps();
    for (int t = 0; t < ntaps; ++t)
      acc = _mm256_fmadd_ps(_mm256_broadcast_ss(coeffs + t), _mm256_maskload_ps(ptrs[t] + x, mask),
                            acc);
    _mm256_maskstore_ps(dst + x, mask, acc);
  }
}

void magnitude(const float* a, const float* b, std::int64_t n, bool l1, float* dst) {
  std::int64_t i = 0;
  if (l1) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (; i + 8 <= n; i += 8) {
      __m256 va = _mm256_and_ps(_mm256_loadu_ps(a + i), abs_mask);
      __m256 vb = _mm256_and_ps(_mm256_loadu_ps(b + i), abs_mask);
      _mm256_storeu_ps(dst + i, _mm256_add_ps(va, vb));
    }
    for (; i < n; ++i) dst[i] = std::fabs(a[i]) + std::fabs(b[i]);
  } else {
    for (; i + 8 <= n; i += 8) {
      __m256 va = _mm256_loadu_ps(a + i), vb = _mm256_loadu_ps(b + i);
      _mm256_storeu_ps(dst + i, _mm256_sqrt_ps(_mm256_fmadd_ps(va, va, _mm256_mul_ps(vb, vb))));
    }
    for (; i < n; ++i) dst[i] = std::sqrt(a[i] * a[i] + b[i] * b[i]);
  }
}

const FilterKernels kTable = {load_row, store_row, accumulate_taps, magnitude};

}  // namespace

const FilterKernels& filter_kernels_avx2() { return kTable; }

}  // namespace keensight::filters_detail
