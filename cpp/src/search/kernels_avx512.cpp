// AVX-512 kernels of the search area (compiled with -mavx512f/bw/dq/vl; selected
// at run time only on CPUs that have them). Sixteen lanes per register and
// masked loads for the tails: a row of any length is read with vector loads
// only (a masked-off lane loads nothing, so it never faults past the row's end,
// and contributes an exact zero to its accumulator).
//
// The many-rows kernels of the sequential classifier (l2_sq_rows, min_value)
// keep their AVX2 versions: their rows are short granules, AVX2 width suffices.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers build several intrinsics on an intentionally
// undefined register, which -O3 then reports as maybe-uninitialized at every
// use (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "search/kernels.hpp"

namespace keensight::search::detail {
namespace {

// A fixed tree of additions (monotone in each lane: l2_sq_bounded relies on it).
inline float hsum(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The first `left` lanes, left in [0, 16].
inline __mmask16 tail_mask(std::int64_t left) { return static_cast<__mmask16>((1u << left) - 1u); }

// Adds (a - b)^2 over [i, end) to the two lane accumulators: two registers
// per step (two accumulators hide the FMA latency), then one, then one masked
// step for the tail (masked lanes add exact zeros). l2_sq, l2_sq_bounded and
// l2_sq_bounded_many all accumulate through it, so a span gets the same
// operations in the same order in each of them (their values agree bit for bit).
inline void l2_span(const float* a, const float* b, std::int64_t i, std::int64_t end, __m512& s0, __m512& s1) {
  for (; i + 32 <= end; i += 32) {
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    s0 = _mm512_fmadd_ps(d0, d0, s0);
    s1 = _mm512_fmadd_ps(d1, d1, s1);
  }
  if (i + 16 <= end) {
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    s0 = _mm512_fmadd_ps(d0, d0, s0);
    i += 16;
  }
  if (i < end) {
    const __mmask16 m = tail_mask(end - i);
    const __m512 d1 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    s1 = _mm512_fmadd_ps(d1, d1, s1);
  }
}

float l2_sq(const float* a, const float* b, std::int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  l2_span(a, b, 0, n, s0, s1);
  return hsum(_mm512_add_ps(s0, s1));
}

float dot(const float* a, const float* b, std::int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  if (i + 16 <= n) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    i += 16;
  }
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return hsum(_mm512_add_ps(s0, s1));
}

float l1(const float* a, const float* b, std::int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_add_ps(s0, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i))));
    s1 = _mm512_add_ps(s1, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16))));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
    s0 = _mm512_add_ps(s0, _mm512_abs_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i),
                                                       _mm512_maskz_loadu_ps(m, b + i))));
  }
  return hsum(_mm512_add_ps(s0, s1));
}

// Lanes with a + b == 0 (and the masked-off tail lanes, loaded as 0 + 0)
// contribute 0, not NaN: the division runs only on lanes with a + b > 0.
float chi2(const float* a, const float* b, std::int64_t n) {
  const __m512 zero = _mm512_setzero_ps();
  __m512 s0 = zero;
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
    const __m512 va = _mm512_maskz_loadu_ps(m, a + i), vb = _mm512_maskz_loadu_ps(m, b + i);
    const __m512 sum = _mm512_add_ps(va, vb), d = _mm512_sub_ps(va, vb);
    const __mmask16 positive = _mm512_cmp_ps_mask(sum, zero, _CMP_GT_OQ);
    s0 = _mm512_mask_add_ps(s0, positive, s0, _mm512_maskz_div_ps(positive, _mm512_mul_ps(d, d), sum));
  }
  return hsum(s0);
}

// Granule-by-granule L2 for HNSW early abandoning (see kernels.hpp). The value
// compared with the bound and the value returned are the same expression of the
// two lane accumulators, which only grow (masked tail lanes add exact zeros):
// hence exactness. A granule of 32 coordinates is two registers.
float l2_sq_bounded(const float* a, const float* b, std::int64_t n, std::int64_t granule,
                    float bound, float init) {
  if (granule <= 0) granule = n;
  const bool check = bound < std::numeric_limits<float>::infinity();
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (;;) {
    const std::int64_t end = std::min(n, i + granule);
    l2_span(a, b, i, end, s0, s1);
    i = end;
    if (i >= n) break;
    if (check) {
      const float partial = init + hsum(_mm512_add_ps(s0, s1));
      if (partial >= bound) return partial;
    }
  }
  return init + hsum(_mm512_add_ps(s0, s1));
}

// l2_sq_bounded on up to kBoundedLockstep rows at once: granule by granule,
// each still running row gets exactly the operations l2_sq_bounded would give
// it (same accumulators, same order, same reduction: bit-identical values),
// so the loads of all rows' granule are issued before any check is decided.
void l2_sq_bounded_many(const float* a, const float* const* rows, std::int64_t count, std::int64_t n,
                        std::int64_t granule, const float* bound, const float* init, float* out) {
  if (granule <= 0) granule = n;
  __m512 s0[kBoundedLockstep], s1[kBoundedLockstep];
  unsigned running = 0;
  for (std::int64_t r = 0; r < count; ++r) {
    s0[r] = _mm512_setzero_ps();
    s1[r] = _mm512_setzero_ps();
    running |= 1u << r;
  }
  std::int64_t i = 0;
  while (running) {
    const std::int64_t end = std::min(n, i + granule);
    for (std::int64_t r = 0; r < count; ++r)
      if ((running >> r) & 1u) l2_span(a, rows[r], i, end, s0[r], s1[r]);
    i = end;
    for (std::int64_t r = 0; r < count; ++r) {
      if (!((running >> r) & 1u)) continue;
      if (i >= n) {
        out[r] = init[r] + hsum(_mm512_add_ps(s0[r], s1[r]));
        running &= ~(1u << r);
      } else if (bound[r] < std::numeric_limits<float>::infinity()) {
        const float partial = init[r] + hsum(_mm512_add_ps(s0[r], s1[r]));
        if (partial >= bound[r]) {
          out[r] = partial;
          running &= ~(1u << r);
        }
      }
    }
  }
}

// Lane j of the result = the sum of the 16 lanes of v[j], each by the same
// fixed tree whatever the other vectors hold (a 16 x 16 transpose folded into
// the additions: 15 adds and 30 shuffles for 16 sums, instead of 16 separate
// horizontal sums of 4 dependent steps each).
inline __m512 transpose_sum16(const __m512* v) {
  __m512 w[8], x[4], y[2];
  for (int k = 0; k < 8; ++k)  // per 128-bit block: a0+a2, b0+b2, a1+a3, b1+b3
    w[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]),
                         _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
  for (int k = 0; k < 4; ++k) {  // per 128-bit block: the block's sums of v[4k .. 4k+3]
    const __m512d c = _mm512_castps_pd(w[2 * k]), d = _mm512_castps_pd(w[2 * k + 1]);
    x[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(c, d)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(c, d)));
  }
  for (int k = 0; k < 2; ++k)  // blocks: x[2k] 0+1, x[2k] 2+3, x[2k+1] 0+1, x[2k+1] 2+3
    y[k] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * k], x[2 * k + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(x[2 * k], x[2 * k + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// Sixteen rows per pass: their loads are independent (cache misses overlap),
// one accumulator each, one transpose_sum16 for the sixteen sums. Unused
// accumulators of the last pass stay zero.
void l2_sq_many(const float* q, const float* const* rows, std::int64_t n, std::int64_t dim, float* out) {
  for (std::int64_t j0 = 0; j0 < n; j0 += 16) {
    const std::int64_t nb = std::min<std::int64_t>(16, n - j0);
    __m512 acc[16];
    for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
    for (std::int64_t i = 0; i < dim; i += 16) {
      const __mmask16 m = dim - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(dim - i);
      const __m512 x = _mm512_maskz_loadu_ps(m, q + i);
      for (std::int64_t r = 0; r < nb; ++r) {
        const __m512 d = _mm512_sub_ps(x, _mm512_maskz_loadu_ps(m, rows[j0 + r] + i));
        acc[r] = _mm512_fmadd_ps(d, d, acc[r]);
      }
    }
    const __m512 sums = transpose_sum16(acc);
    _mm512_mask_storeu_ps(out + j0, tail_mask(nb), sums);
  }
}

}  // namespace

// The AVX2 table with the AVX-512 pair kernels in place of its own.
const SearchKernels& search_kernels_avx512() {
  static const SearchKernels table = [] {
    SearchKernels k = search_kernels_avx2();
    k.l2_sq = l2_sq;
    k.dot = dot;
    k.l1 = l1;
    k.chi2 = chi2;
    k.l2_sq_bounded = l2_sq_bounded;
    k.l2_sq_many = l2_sq_many;
    k.l2_sq_bounded_many = l2_sq_bounded_many;
    return k;
  }();
  return table;
}

}  // namespace keensight::search::detail
