// AVX2 + FMA f32 GEMM kernels (compiled with -mavx2 -mfma; selected at run
// time only on CPUs that have both): the 6x16 tile and the k-NN helpers.
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "core/gemm.hpp"

namespace keensight::detail {
namespace {

constexpr int kMR = 6, kNR = 16;

// 6 x 16 register tile: 12 accumulators + 2 B vectors + 1 broadcast = 15 of the
// 16 ymm registers. Per coordinate: 2 aligned loads of B, 6 broadcasts of A and
// 12 FMAs, so the two FMA pipes stay busy (6 cycles of FMAs against 8 loads;
// Zen and Haswell and later issue 2-3 loads a cycle), and the 12 independent
// chains cover the FMA latency (4-5 cycles x 2 pipes). The shape of BLIS's
// Haswell/Zen sgemm kernel; measured here at ~100% of peak in L1, where a
// 4 x 24 tile (all 16 registers) reached ~90%: the compiler has no spare
// register to schedule with. The B slice (kc x 16 floats, 16 KiB at kc = 256)
// stays in L1 across the A panels (core/gemm.hpp).
// A(i, p) is a[p * kMR + i] (packed panel) or a[i * lda + p] (plain rows).
template <bool kPacked>
inline void tile_6x16_impl(std::int64_t kc, const float* a, std::int64_t lda, const float* b, float* c,
                           std::int64_t ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#define KS_ROW(I, C0, C1)                                  \
  av = _mm256_broadcast_ss(kPacked ? a + (I) : a + (I) * lda + p); \
  C0 = _mm256_fmadd_ps(av, b0, C0);                        \
  C1 = _mm256_fmadd_ps(av, b1, C1);
  for (std::int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 av;
    KS_ROW(0, c00, c01)
    KS_ROW(1, c10, c11)
    KS_ROW(2, c20, c21)
    KS_ROW(3, c30, c31)
    KS_ROW(4, c40, c41)
    KS_ROW(5, c50, c51)
    if (kPacked) a += kMR;
    b += kNR;
  }
#undef KS_ROW
  const auto store = [&](int i, __m256 lo, __m256 hi) {
    float* ci = c + i * ldc;
    if (accumulate) {
      lo = _mm256_add_ps(lo, _mm256_loadu_ps(ci));
      hi = _mm256_add_ps(hi, _mm256_loadu_ps(ci + 8));
    }
    _mm256_storeu_ps(ci, lo);
    _mm256_storeu_ps(ci + 8, hi);
  };
  store(0, c00, c01);
  store(1, c10, c11);
  store(2, c20, c21);
  store(3, c30, c31);
  store(4, c40, c41);
  store(5, c50, c51);
}

void gemm_f32_6x16(std::int64_t kc, const float* a, const float* b, float* c, std::int64_t ldc, bool accumulate) {
  tile_6x16_impl<true>(kc, a, 0, b, c, ldc, accumulate);
}

void tile_rows_6x16(std::int64_t kc, const float* a, std::int64_t lda, const float* b, float* c, std::int64_t ldc,
                    bool accumulate) {
  tile_6x16_impl<false>(kc, a, lda, b, c, ldc, accumulate);
}

// The tail uses a scalar FMA too, so a value never depends on its position in the row.
float bias_scale_min(const float* dots, const float* bias, float scale, std::int64_t n, float* out) {
  const __m256 vs = _mm256_set1_ps(scale);
  __m256 vmin = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  std::int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_fmadd_ps(vs, _mm256_loadu_ps(dots + j), _mm256_loadu_ps(bias + j));
    _mm256_storeu_ps(out + j, v);
    vmin = _mm256_min_ps(vmin, v);
  }
  __m128 m = _mm_min_ps(_mm256_castps256_ps128(vmin), _mm256_extractf128_ps(vmin, 1));
  m = _mm_min_ps(m, _mm_movehl_ps(m, m));
  m = _mm_min_ss(m, _mm_movehdup_ps(m));
  float best = _mm_cvtss_f32(m);
  const __m128 ss = _mm_set_ss(scale);
  for (; j < n; ++j) {
    const float v = _mm_cvtss_f32(_mm_fmadd_ss(ss, _mm_set_ss(dots[j]), _mm_set_ss(bias[j])));
    out[j] = v;
    best = std::min(best, v);
  }
  return best;
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 8 x 8 transpose in registers (the usual unpack / shuffle / permute2f128 ladder).
inline void transpose8(__m256& r0, __m256& r1, __m256& r2, __m256& r3, __m256& r4, __m256& r5, __m256& r6,
                       __m256& r7) {
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r0 = _mm256_permute2f128_ps(u0, u4, 0x20), r1 = _mm256_permute2f128_ps(u1, u5, 0x20);
  r2 = _mm256_permute2f128_ps(u2, u6, 0x20), r3 = _mm256_permute2f128_ps(u3, u7, 0x20);
  r4 = _mm256_permute2f128_ps(u0, u4, 0x31), r5 = _mm256_permute2f128_ps(u1, u5, 0x31);
  r6 = _mm256_permute2f128_ps(u2, u6, 0x31), r7 = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// NR / 8 8 x 8 transposes per 8 coordinates (rows 0-7 into lanes 0-7 of the
// panel, rows 8-15 into lanes 8-15, ...); a row's squared norm accumulates in
// its own register lanes in coordinate blocks of 8, then a scalar tail, the
// same whatever the row's slot and whatever NR (the AVX-512 table packs 32-row
// panels with it: its norms, and so k-NN's results, equal the AVX2 table's).
template <int kNR>
void pack_panel_b_nr(const float* const* rows, std::int64_t k, const float* offset, float* dst, float* sq_norms) {
  static_assert(kNR % 8 == 0, "8-row groups");
  const __m256 zero = _mm256_setzero_ps();
  __m256 norm[kNR];
  for (int i = 0; i < kNR; ++i) norm[i] = zero;
  std::int64_t j = 0;
  for (; j + 8 <= k; j += 8) {
    for (int half = 0; half < kNR / 8; ++half) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) {
        const float* row = rows[half * 8 + i];
        r[i] = !row ? zero : offset ? _mm256_sub_ps(_mm256_loadu_ps(row + j), _mm256_loadu_ps(offset + j))
                                    : _mm256_loadu_ps(row + j);
        norm[half * 8 + i] = _mm256_fmadd_ps(r[i], r[i], norm[half * 8 + i]);
      }
      transpose8(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
      for (int c = 0; c < 8; ++c) _mm256_store_ps(dst + (j + c) * kNR + half * 8, r[c]);
    }
  }
  float tail[kNR];
  for (int i = 0; i < kNR; ++i) tail[i] = hsum(norm[i]);
  for (; j < k; ++j)
    for (int i = 0; i < kNR; ++i) {
      const float v = !rows[i] ? 0.f : offset ? rows[i][j] - offset[j] : rows[i][j];
      dst[j * kNR + i] = v;
      tail[i] = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(v), _mm_set_ss(v), _mm_set_ss(tail[i])));
    }
  if (sq_norms)
    for (int i = 0; i < kNR; ++i) sq_norms[i] = tail[i];
}

void pack_panel_b(const float* const* rows, std::int64_t k, const float* offset, float* dst, float* sq_norms) {
  pack_panel_b_nr<kNR>(rows, k, offset, dst, sq_norms);
}

// Two passes: a vector minimum, then (only when it beats `bound`) the first
// position holding it (found early on average; the block is in L1/L2). Same
// FMA as bias_scale_min.
float bias_scale_argmin(const float* dots, const float* bias, float scale, std::int64_t n, float bound,
                        std::int64_t* index) {
  const __m256 vs = _mm256_set1_ps(scale);
  __m256 m0 = _mm256_set1_ps(std::numeric_limits<float>::infinity()), m1 = m0;
  std::int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    m0 = _mm256_min_ps(m0, _mm256_fmadd_ps(vs, _mm256_loadu_ps(dots + j), _mm256_loadu_ps(bias + j)));
    m1 = _mm256_min_ps(m1, _mm256_fmadd_ps(vs, _mm256_loadu_ps(dots + j + 8), _mm256_loadu_ps(bias + j + 8)));
  }
  for (; j + 8 <= n; j += 8)
    m0 = _mm256_min_ps(m0, _mm256_fmadd_ps(vs, _mm256_loadu_ps(dots + j), _mm256_loadu_ps(bias + j)));
  m0 = _mm256_min_ps(m0, m1);
  __m128 m = _mm_min_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
  m = _mm_min_ps(m, _mm_movehl_ps(m, m));
  m = _mm_min_ss(m, _mm_movehdup_ps(m));
  float best = _mm_cvtss_f32(m);
  const __m128 ss = _mm_set_ss(scale);
  const auto value = [&](std::int64_t i) {
    return _mm_cvtss_f32(_mm_fmadd_ss(ss, _mm_set_ss(dots[i]), _mm_set_ss(bias[i])));
  };
  for (std::int64_t i = j; i < n; ++i) best = std::min(best, value(i));
  if (!(best < bound)) return best;
  const __m256 vbest = _mm256_set1_ps(best);
  for (std::int64_t i = 0; i + 8 <= j; i += 8) {
    const __m256 v = _mm256_fmadd_ps(vs, _mm256_loadu_ps(dots + i), _mm256_loadu_ps(bias + i));
    const int hit = _mm256_movemask_ps(_mm256_cmp_ps(v, vbest, _CMP_EQ_OQ));
    if (hit) {
      *index = i + __builtin_ctz(static_cast<unsigned>(hit));
      return best;
    }
  }
  for (std::int64_t i = j; i < n; ++i)
    if (value(i) == best) {
      *index = i;
      return best;
    }
  *index = 0;  // n == 0 (or NaN input): no position holds the minimum
  return best;
}

// The 6 x 16 tile at the edges of C with the epilogue in registers: rows past
// `rows` read row 0 again (their sums are dropped), columns past `cols` are
// masked off the loads of C / bias / residual and the stores.
void tile_rows_fused_6x16(std::int64_t kc, const float* a, std::int64_t lda, int rows, const float* b, float* c,
                          std::int64_t ldc, int cols, bool accumulate, const TileEpilogue* ep) {
  const float* r0 = a;
  const float* r1 = a + (rows > 1 ? 1 : 0) * lda;
  const float* r2 = a + (rows > 2 ? 2 : 0) * lda;
  const float* r3 = a + (rows > 3 ? 3 : 0) * lda;
  const float* r4 = a + (rows > 4 ? 4 : 0) * lda;
  const float* r5 = a + (rows > 5 ? 5 : 0) * lda;
  __m256 acc[kMR][2];
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#define KS_ROW(I, R)                              \
  av = _mm256_broadcast_ss(R + p);                \
  acc[I][0] = _mm256_fmadd_ps(av, b0, acc[I][0]); \
  acc[I][1] = _mm256_fmadd_ps(av, b1, acc[I][1]);
  for (std::int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 av;
    KS_ROW(0, r0)
    KS_ROW(1, r1)
    KS_ROW(2, r2)
    KS_ROW(3, r3)
    KS_ROW(4, r4)
    KS_ROW(5, r5)
    b += kNR;
  }
#undef KS_ROW
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
  __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps(), lo = _mm256_setzero_ps(), hi = lo;
  if (ep) {
    if (ep->bias) {
      bias0 = _mm256_maskload_ps(ep->bias, m0);
      bias1 = _mm256_maskload_ps(ep->bias + 8, m1);
    }
    lo = _mm256_set1_ps(ep->lo);
    hi = _mm256_set1_ps(ep->hi);
  }
  for (int i = 0; i < rows; ++i) {
    float* ci = c + i * ldc;
    __m256 v0 = acc[i][0], v1 = acc[i][1];
    if (accumulate) {
      v0 = _mm256_add_ps(_mm256_maskload_ps(ci, m0), v0);
      v1 = _mm256_add_ps(_mm256_maskload_ps(ci + 8, m1), v1);
    }
    if (ep) {
      if (ep->bias) {
        v0 = _mm256_add_ps(v0, bias0);
        v1 = _mm256_add_ps(v1, bias1);
      }
      if (ep->residual) {
        const float* r = ep->residual + i * ep->ld_residual;
        v0 = _mm256_add_ps(v0, _mm256_maskload_ps(r, m0));
        v1 = _mm256_add_ps(v1, _mm256_maskload_ps(r + 8, m1));
      }
      v0 = _mm256_min_ps(hi, _mm256_max_ps(lo, v0));
      v1 = _mm256_min_ps(hi, _mm256_max_ps(lo, v1));
    }
    _mm256_maskstore_ps(ci, m0, v0);
    _mm256_maskstore_ps(ci + 8, m1, v1);
  }
}

// Filled by member name (see core/dispatch.hpp).
const GemmF32Kernels kTable = [] {
  GemmF32Kernels t{};
  t.name = "f32_6x16_avx2";
  t.mr = kMR;
  t.nr = kNR;
  t.k_group = 1;
  t.tile = gemm_f32_6x16;
  t.tile_rows = tile_rows_6x16;
  t.tile_rows_fused = tile_rows_fused_6x16;
  t.bias_scale_min = bias_scale_min;
  t.bias_scale_argmin = bias_scale_argmin;
  t.pack_panel_b = pack_panel_b;
  return t;
}();

}  // namespace

const GemmF32Kernels& gemm_f32_6x16_avx2() { return kTable; }

void gemm_f32_pack_panel_b32_avx2(const float* const* rows, std::int64_t k, const float* offset, float* dst,
                                  float* sq_norms) {
  pack_panel_b_nr<32>(rows, k, offset, dst, sq_norms);
}

}  // namespace keensight::detail
