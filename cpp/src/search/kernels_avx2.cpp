// AVX2 + FMA kernels of the search area (compiled with -mavx2 -mfma; selected at
// run time only on CPUs that have both).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "search/kernels.hpp"

namespace keensight::search::detail {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Two accumulators hide the FMA latency; the tail is masked-free scalar.
float l2_sq(const float* a, const float* b, std::int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    s1 = _mm256_fmadd_ps(d1, d1, s1);
  }
  if (i + 8 <= n) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    i += 8;
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) {
    const float d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

float dot(const float* a, const float* b, std::int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  if (i + 8 <= n) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    i += 8;
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float l1(const float* a, const float* b, std::int64_t n) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 s0 = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_add_ps(s0, _mm256_and_ps(abs_mask, _mm256_sub_ps(_mm256_loadu_ps(a + i),
                                                                 _mm256_loadu_ps(b + i))));
  float s = hsum(s0);
  for (; i < n; ++i) s += std::fabs(a[i] - b[i]);
  return s;
}

// Lanes with a + b == 0 contribute 0 (masked), not NaN.
float chi2(const float* a, const float* b, std::int64_t n) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 s0 = zero;
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 va = _mm256_loadu_ps(a + i), vb = _mm256_loadu_ps(b + i);
    const __m256 sum = _mm256_add_ps(va, vb), d = _mm256_sub_ps(va, vb);
    const __m256 positive = _mm256_cmp_ps(sum, zero, _CMP_GT_OQ);
    const __m256 q = _mm256_div_ps(_mm256_mul_ps(d, d), _mm256_blendv_ps(_mm256_set1_ps(1.f), sum, positive));
    s0 = _mm256_add_ps(s0, _mm256_and_ps(q, positive));
  }
  float s = hsum(s0);
  for (; i < n; ++i) {
    const float sum = a[i] + b[i];
    if (sum > 0.f) {
      const float d = a[i] - b[i];
      s += d * d / sum;
    }
  }
  return s;
}

// Granule-by-granule L2 for HNSW early abandoning (see kernels.hpp). The value
// compared with the bound and the value returned are the same function of the
// lane accumulators and the scalar tail, which only grow: hence exactness.
float l2_sq_bounded(const float* a, const float* b, std::int64_t n, std::int64_t granule,
                    float bound, float init) {
  if (granule <= 0) granule = n;
  const bool check = bound < std::numeric_limits<float>::infinity();
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  float tail = 0.f;
  std::int64_t i = 0;
  for (;;) {
    const std::int64_t end = std::min(n, i + granule);
    for (; i + 16 <= end; i += 16) {
      const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
      const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
      s0 = _mm256_fmadd_ps(d0, d0, s0);
      s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    if (i + 8 <= end) {
      const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
      s0 = _mm256_fmadd_ps(d0, d0, s0);
      i += 8;
    }
    for (; i < end; ++i) {
      const float d = a[i] - b[i];
      tail += d * d;
    }
    if (i >= n) break;
    if (check) {
      const float partial = init + (hsum(_mm256_add_ps(s0, s1)) + tail);
      if (partial >= bound) return partial;
    }
  }
  return init + (hsum(_mm256_add_ps(s0, s1)) + tail);
}

// Four rows at a time: four accumulators, then one hadd tree gives the four sums.
void l2_sq_rows(const float* q, const float* rows, std::int64_t nrows, std::int64_t width, float* acc) {
  std::int64_t i = 0;
  if (width % 8 == 0) {
    for (; i + 4 <= nrows; i += 4) {
      const float* r0 = rows + i * width;
      __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      for (std::int64_t j = 0; j < width; j += 8) {
        const __m256 x = _mm256_loadu_ps(q + j);
        const __m256 d0 = _mm256_sub_ps(x, _mm256_loadu_ps(r0 + j));
        const __m256 d1 = _mm256_sub_ps(x, _mm256_loadu_ps(r0 + width + j));
        const __m256 d2 = _mm256_sub_ps(x, _mm256_loadu_ps(r0 + 2 * width + j));
        const __m256 d3 = _mm256_sub_ps(x, _mm256_loadu_ps(r0 + 3 * width + j));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
      }
      const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
      const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
      _mm_storeu_ps(acc + i, _mm_add_ps(_mm_loadu_ps(acc + i), sums));
    }
  }
  for (; i < nrows; ++i) acc[i] += l2_sq(q, rows + i * width, width);
}

float min_value(const float* v, std::int64_t n) {
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 m0 = inf, m1 = inf, m2 = inf, m3 = inf;
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm256_min_ps(m0, _mm256_loadu_ps(v + i));
    m1 = _mm256_min_ps(m1, _mm256_loadu_ps(v + i + 8));
    m2 = _mm256_min_ps(m2, _mm256_loadu_ps(v + i + 16));
    m3 = _mm256_min_ps(m3, _mm256_loadu_ps(v + i + 24));
  }
  for (; i + 8 <= n; i += 8) m0 = _mm256_min_ps(m0, _mm256_loadu_ps(v + i));
  m0 = _mm256_min_ps(_mm256_min_ps(m0, m1), _mm256_min_ps(m2, m3));
  __m128 h = _mm_min_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
  h = _mm_min_ps(h, _mm_movehl_ps(h, h));
  h = _mm_min_ss(h, _mm_movehdup_ps(h));
  float m = _mm_cvtss_f32(h);
  for (; i < n; ++i) m = v[i] < m ? v[i] : m;
  return m;
}

SearchKernels make_table() {
  SearchKernels t{};  // by member name: see core/dispatch.hpp
  t.l2_sq = l2_sq;
  t.dot = dot;
  t.l1 = l1;
  t.chi2 = chi2;
  t.l2_sq_bounded = l2_sq_bounded;
  t.l2_sq_rows = l2_sq_rows;
  t.min_value = min_value;
  t.l2_sq_many = l2_sq_many_by_rows<l2_sq>;
  t.l2_sq_bounded_many = l2_sq_bounded_many_by_rows<l2_sq_bounded>;
  return t;
}

}  // namespace

const SearchKernels& search_kernels_avx2() {
  static const SearchKernels table = make_table();
  return table;
}

}  // namespace keensight::search::detail
