// AVX2 + FMA kernels of the preprocess area (compiled with -mavx2 -mfma; selected at run
// time only on CPUs that have both). Same results as kernels_scalar.cpp up to float
// rounding of the fused multiply-adds.
#include <immintrin.h>

#include <cmath>

#include "preprocess/kernels.hpp"

namespace keensight::preprocess::detail {
namespace {

inline __m256 load8_u8(const std::uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

void vertical_u8(const std::uint8_t* const* rows, const float* weights, int ntaps, std::int64_t n,
                 float* dst) {
  std::int64_t i = 0;
  // 32 pixels per step: four independent accumulators hide the FMA latency.
  for (; i + 32 <= n; i += 32) {
    __m256 w = _mm256_set1_ps(weights[0]);
    __m256 a0 = _mm256_mul_ps(w, load8_u8(rows[0] + i));
    __m256 a1 = _mm256_mul_ps(w, load8_u8(rows[0] + i + 8));
    __m256 a2 = _mm256_mul_ps(w, load8_u8(rows[0] + i + 16));
    __m256 a3 = _mm256_mul_ps(w, load8_u8(rows[0] + i + 24));
    for (int t = 1; t < ntaps; ++t) {
      const std::uint8_t* r = rows[t] + i;
      w = _mm256_set1_ps(weights[t]);
      a0 = _mm256_fmadd_ps(w, load8_u8(r), a0);
      a1 = _mm256_fmadd_ps(w, load8_u8(r + 8), a1);
      a2 = _mm256_fmadd_ps(w, load8_u8(r + 16), a2);
      a3 = _mm256_fmadd_ps(w, load8_u8(r + 24), a3);
    }
    _mm256_storeu_ps(dst + i, a0);
    _mm256_storeu_ps(dst + i + 8, a1);
    _mm256_storeu_ps(dst + i + 16, a2);
    _mm256_storeu_ps(dst + i + 24, a3);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_mul_ps(_mm256_set1_ps(weights[0]), load8_u8(rows[0] + i));
    for (int t = 1; t < ntaps; ++t) a = _mm256_fmadd_ps(_mm256_set1_ps(weights[t]), load8_u8(rows[t] + i), a);
    _mm256_storeu_ps(dst + i, a);
  }
  for (; i < n; ++i) {
    float v = weights[0] * static_cast<float>(rows[0][i]);
    for (int t = 1; t < ntaps; ++t) v = std::fma(weights[t], static_cast<float>(rows[t][i]), v);
    dst[i] = v;
  }
}

// Eight outputs per vector: each tap is one gather (the source pixels of neighbouring
// outputs are `scale` apart, not contiguous).
void horizontal_store(const float* row, int channels, const int* map, const std::int32_t* start,
                      const float* weights, int ntaps, std::int64_t n, const float* scale,
                      const float* bias, float* const* dst, std::int64_t step) {
  const __m256i vch = _mm256_set1_epi32(channels);
  for (int c = 0; c < 3; ++c) {
    const float* src = row + map[c];
    float* d = dst[c];
    const __m256 vs = _mm256_set1_ps(scale[c]), vb = _mm256_set1_ps(bias[c]);
    std::int64_t x = 0;
    for (; x + 8 <= n; x += 8) {
      __m256i idx = _mm256_mullo_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(start + x)), vch);
      __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(weights + x), _mm256_i32gather_ps(src, idx, 4));
      for (int t = 1; t < ntaps; ++t) {
        idx = _mm256_add_epi32(idx, vch);
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(weights + t * n + x), _mm256_i32gather_ps(src, idx, 4), acc);
      }
      const __m256 v = _mm256_fmadd_ps(acc, vs, vb);
      if (step == 1) {
        _mm256_storeu_ps(d + x, v);
      } else {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, v);
        for (int k = 0; k < 8; ++k) d[(x + k) * step] = tmp[k];
      }
    }
    for (; x < n; ++x) {
      const float* p = src + static_cast<std::int64_t>(start[x]) * channels;
      float v = weights[x] * p[0];
      for (int t = 1; t < ntaps; ++t) v = std::fma(weights[t * n + x], p[t * channels], v);
      d[x * step] = std::fma(v, scale[c], bias[c]);
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

const PreprocessKernels& preprocess_kernels_avx2() {
  static const PreprocessKernels table = make_table();
  return table;
}

}  // namespace keensight::preprocess::detail
