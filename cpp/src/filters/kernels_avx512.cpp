// AVX-512 (F/BW/DQ/VL) variants of the float32 row kernels (compiled with
// -mavx512f -mavx512bw -mavx512dq -mavx512vl; selected at run time only on CPUs
// that have them). Each output element is computed with the same operations in
// the same order as the AVX2 kernels, so the two levels agree bit for bit. The
// table starts as a copy of the AVX2 one: the integer uint8 path, the FFT pieces
// and the depth conversions keep their AVX2 versions.
//
// Alignment matters more than width here: a 64-byte load that is not aligned
// always spans two cache lines. So the tap passes align what they can with a
// masked head: the loads when all input rows share one alignment (a vertical
// pass), else the stores (which may then be non-temporal); the 3x3 kernel builds
// its +-1 neighbours from aligned loads with register shifts. Measured on Zen 4
// (1080p float32, 1 thread, interleaved with OpenCV, AVX2 -> AVX-512): 11x11
// Gaussian 0.89-0.93 -> 1.18-1.25, 3x3 filter2D 1.68-1.73 -> 2.49-2.72, 7x7
// filter2D 3.0-3.1 -> 3.9-4.0, Laplacian 3x3 1.0 -> 1.2.
#include <immintrin.h>

// GCC 12 warns that _mm512_alignr_epi32's internal _mm512_undefined_epi32() "may
// be used uninitialized" (a false positive in the intrinsic's own header).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "filters/kernels.hpp"

namespace keensight::filters::detail {
namespace {

inline __mmask16 tail_mask(std::int64_t rem) {
  return static_cast<__mmask16>((1u << static_cast<unsigned>(rem)) - 1u);
}

// Elements before dst reaches 64-byte alignment (streaming stores need it).
inline std::int64_t dst_head(const float* dst) {
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(dst);
  return a % sizeof(float) != 0 ? 0 : static_cast<std::int64_t>(((64 - (a & 63)) & 63) / sizeof(float));
}

// Single-channel rows (step 1): the +-1 neighbours come from register shifts
// (valignd) of one load per row and vector (aligned when the source rows share
// the destination's alignment) instead of two more unaligned loads, each of
// which would span two cache lines. prev/cur/next hold 16 pixels each; lane 15 of prev
// is pixel x - 1 and lane 0 of next is pixel x + 16.
struct Shifted {
  __m512 left, centre, right;
};

inline __m512 load_next(const float* row, std::int64_t x, std::int64_t n) {
  // Pixels x + 16 .. x + 31, of which only index <= n (the right neighbour of
  // the last pixel) is guaranteed readable.
  const std::int64_t avail = n + 1 - (x + 16);
  return avail >= 16 ? _mm512_loadu_ps(row + x + 16) : _mm512_maskz_loadu_ps(tail_mask(avail), row + x + 16);
}

inline Shifted shift3(__m512 prev, __m512 cur, __m512 next) {
  const __m512i p = _mm512_castps_si512(prev), c = _mm512_castps_si512(cur), nx = _mm512_castps_si512(next);
  return {_mm512_castsi512_ps(_mm512_alignr_epi32(c, p, 15)), cur,
          _mm512_castsi512_ps(_mm512_alignr_epi32(nx, c, 1))};
}

template <bool Edge, bool Corner>
void symmetric3x3_c1(const float* up, const float* mid, const float* down, std::int64_t n,
                     float corner, float edge, float center, float* dst, bool stream) {
  const __m512 vc = _mm512_set1_ps(corner), ve = _mm512_set1_ps(edge), vm = _mm512_set1_ps(center);
  // Same operations in the same order as the AVX2 kernel (and its scalar tail).
  const auto combine3 = [&](const Shifted& u, const Shifted& m, const Shifted& d) {
    __m512 r = _mm512_mul_ps(vm, m.centre);
    if (Edge)
      r = _mm512_fmadd_ps(ve, _mm512_add_ps(_mm512_add_ps(u.centre, d.centre), _mm512_add_ps(m.left, m.right)), r);
    if (Corner)
      r = _mm512_fmadd_ps(vc, _mm512_add_ps(_mm512_add_ps(u.left, u.right), _mm512_add_ps(d.left, d.right)), r);
    return r;
  };
  const __mmask16 last_lane = 0x8000;
  std::int64_t x = 0;
  // Masked head up to 64-byte alignment of dst, so the main loop's stores are aligned.
  const std::int64_t head = std::min(dst_head(dst), n);
  // Pixels at .. at + 15, reading every lane up to index n (the last pixel's right neighbour).
  const auto chunk = [&](std::int64_t at, __m512& pu, __m512& pm, __m512& pd) {
    const __mmask16 m = n - at >= 15 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n - at + 1);
    const __m512 cu = _mm512_maskz_loadu_ps(m, up + at), cm = _mm512_maskz_loadu_ps(m, mid + at),
                 cd = _mm512_maskz_loadu_ps(m, down + at);
    const __m512 nu = load_next(up, at, n), nm = load_next(mid, at, n), nd = load_next(down, at, n);
    const __m512 r = combine3(shift3(pu, cu, nu), shift3(pm, cm, nm), shift3(pd, cd, nd));
    pu = cu;
    pm = cm;
    pd = cd;
    return r;
  };
  // prev: lane 15 = pixel x - 1 (always readable).
  __m512 pu = _mm512_maskz_loadu_ps(last_lane, up - 16), pm = _mm512_maskz_loadu_ps(last_lane, mid - 16),
         pd = _mm512_maskz_loadu_ps(last_lane, down - 16);
  if (head > 0) {
    // prev again: lane 15 = pixel head - 1.
    _mm512_mask_storeu_ps(dst, tail_mask(head), chunk(0, pu, pm, pd));
    x = head;
    pu = _mm512_maskz_loadu_ps(last_lane, up + x - 16);
    pm = _mm512_maskz_loadu_ps(last_lane, mid + x - 16);
    pd = _mm512_maskz_loadu_ps(last_lane, down + x - 16);
  }
  constexpr std::int64_t kPrefetch = 512;  // floats ahead on the `down` row (read first here)
  stream = stream && (reinterpret_cast<std::uintptr_t>(dst + x) & 63) == 0;
  if (x + 16 <= n) {
    // Whole vectors: each row's `next` becomes the following step's `cur`.
    __m512 cu = _mm512_loadu_ps(up + x), cm = _mm512_loadu_ps(mid + x), cd = _mm512_loadu_ps(down + x);
    for (; x + 16 <= n; x += 16) {
      _mm_prefetch(reinterpret_cast<const char*>(down + x + kPrefetch), _MM_HINT_T0);
      const __m512 nu = load_next(up, x, n), nm = load_next(mid, x, n), nd = load_next(down, x, n);
      const __m512 r = combine3(shift3(pu, cu, nu), shift3(pm, cm, nm), shift3(pd, cd, nd));
      if (stream)
        _mm512_stream_ps(dst + x, r);
      else
        _mm512_storeu_ps(dst + x, r);
      pu = cu, pm = cm, pd = cd;
      cu = nu, cm = nm, cd = nd;
    }
  }
  if (x < n) {
    _mm512_mask_storeu_ps(dst + x, tail_mask(n - x), chunk(x, pu, pm, pd));
  }
}

// See kernels.hpp. `down` is the row this output row reads first (the others
// were read by the previous output row), so it is prefetched a few cache lines
// ahead of use.
void symmetric3x3(const float* up, const float* mid, const float* down, std::int64_t n,
                  std::int64_t s, float corner, float edge, float center, float* dst, bool stream) {
  const bool use_edge = edge != 0.f, use_corner = corner != 0.f;
  if (s == 1) {
    if (use_edge && use_corner) return symmetric3x3_c1<true, true>(up, mid, down, n, corner, edge, center, dst, stream);
    if (use_edge) return symmetric3x3_c1<true, false>(up, mid, down, n, corner, edge, center, dst, stream);
    if (use_corner) return symmetric3x3_c1<false, true>(up, mid, down, n, corner, edge, center, dst, stream);
    return symmetric3x3_c1<false, false>(up, mid, down, n, corner, edge, center, dst, stream);
  }
  // Interleaved channels: the AVX2 kernel (its unaligned 32-byte loads span fewer lines).
  filter_kernels_avx2().symmetric3x3(up, mid, down, n, s, corner, edge, center, dst, stream);
}


// ---------------------------------------------------------------------------
// Tap passes. When all input rows share one alignment (a vertical pass over rows
// whose stride is a multiple of 64 bytes) a masked head makes every later load
// aligned; otherwise (a horizontal pass reads one row at shifted offsets) the
// head aligns the stores instead.

template <bool Subtract>
inline __m512 combine(__m512 a, __m512 b) {
  return Subtract ? _mm512_sub_ps(a, b) : _mm512_add_ps(a, b);
}

inline void store16(float* d, __m512 v, bool stream) {
  if (stream)
    _mm512_stream_ps(d, v);
  else
    _mm512_storeu_ps(d, v);
}

// Offset (in floats) after which all of a[0..na) and b[0..nb) are 64-byte
// aligned, or -1 if their alignments differ (or there are none).
inline std::int64_t common_head(const float* const* a, int na, const float* const* b, int nb) {
  if (na + nb == 0) return -1;
  const std::uintptr_t r = reinterpret_cast<std::uintptr_t>(na > 0 ? a[0] : b[0]) & 63;
  if (r % sizeof(float) != 0) return -1;
  for (int i = 0; i < na; ++i)
    if ((reinterpret_cast<std::uintptr_t>(a[i]) & 63) != r) return -1;
  for (int i = 0; i < nb; ++i)
    if ((reinterpret_cast<std::uintptr_t>(b[i]) & 63) != r) return -1;
  return static_cast<std::int64_t>(((64 - r) & 63) / sizeof(float));
}

// Pixels [x, x + count) (count <= 16) with masked loads: the head and the tail.
template <bool Paired, bool Subtract>
inline __m512 masked_sum(const float* const* p, const float* const* q, const float* coeffs, int m,
                         std::int64_t x, __mmask16 k, const float* dst, bool accumulate) {
  __m512 acc = accumulate ? _mm512_maskz_loadu_ps(k, dst + x) : _mm512_setzero_ps();
  for (int t = 0; t < m; ++t) {
    __m512 v = _mm512_maskz_loadu_ps(k, p[t] + x);
    if (Paired) v = combine<Subtract>(v, _mm512_maskz_loadu_ps(k, q[t] + x));
    acc = _mm512_fmadd_ps(_mm512_set1_ps(coeffs[t]), v, acc);
  }
  return acc;
}

template <int V, bool Paired, bool Subtract, bool Aligned>
inline void block16(const float* const* p, const float* const* q, const float* coeffs, int m,
                    std::int64_t x, float* dst, bool accumulate, bool stream) {
  __m512 acc[V];
  for (int v = 0; v < V; ++v) acc[v] = accumulate ? _mm512_loadu_ps(dst + x + 16 * v) : _mm512_setzero_ps();
  for (int t = 0; t < m; ++t) {
    const __m512 c = _mm512_set1_ps(coeffs[t]);
    const float* pp = p[t] + x;
    const float* qq = Paired ? q[t] + x : nullptr;
    for (int v = 0; v < V; ++v) {
      __m512 a = Aligned ? _mm512_load_ps(pp + 16 * v) : _mm512_loadu_ps(pp + 16 * v);
      if (Paired) a = combine<Subtract>(a, Aligned ? _mm512_load_ps(qq + 16 * v) : _mm512_loadu_ps(qq + 16 * v));
      acc[v] = _mm512_fmadd_ps(c, a, acc[v]);
    }
  }
  for (int v = 0; v < V; ++v) store16(dst + x + 16 * v, acc[v], stream);
}

// Pixels [0, head) masked, then whole registers (aligned loads if Aligned), then a masked tail.
template <bool Paired, bool Subtract, bool Aligned>
void pass_rows(const float* const* p, const float* const* q, const float* coeffs, int m,
                  std::int64_t n, float* dst, bool accumulate, bool stream, std::int64_t head) {
  std::int64_t x = std::min(head, n);
  if (x > 0) _mm512_mask_storeu_ps(dst, tail_mask(x), masked_sum<Paired, Subtract>(p, q, coeffs, m, 0, tail_mask(x), dst, accumulate));
  stream = stream && !accumulate && (reinterpret_cast<std::uintptr_t>(dst + x) & 63) == 0;
  for (; x + 64 <= n; x += 64) block16<4, Paired, Subtract, Aligned>(p, q, coeffs, m, x, dst, accumulate, stream);
  for (; x + 16 <= n; x += 16) block16<1, Paired, Subtract, Aligned>(p, q, coeffs, m, x, dst, accumulate, stream);
  if (x < n) {
    const __mmask16 k = tail_mask(n - x);
    _mm512_mask_storeu_ps(dst + x, k, masked_sum<Paired, Subtract>(p, q, coeffs, m, x, k, dst, accumulate));
  }
}

template <bool Paired, bool Subtract>
void tap_pass(const float* const* p, const float* const* q, const float* coeffs, int m, std::int64_t n,
              float* dst, bool accumulate, bool stream) {
  const std::int64_t head = common_head(p, m, q, Paired ? m : 0);
  if (head >= 0)
    pass_rows<Paired, Subtract, true>(p, q, coeffs, m, n, dst, accumulate, stream, head);
  else
    pass_rows<Paired, Subtract, false>(p, q, coeffs, m, n, dst, accumulate, stream, dst_head(dst));
}

void accumulate_taps(const float* const* ptrs, const float* coeffs, int ntaps, std::int64_t n,
                     float* dst, bool accumulate, bool stream) {
  tap_pass<false, false>(ptrs, nullptr, coeffs, ntaps, n, dst, accumulate, stream);
}

void accumulate_pairs(const float* const* p, const float* const* q, const float* coeffs,
                      int npairs, bool subtract, std::int64_t n, float* dst, bool accumulate,
                      bool stream) {
  if (subtract)
    tap_pass<true, true>(p, q, coeffs, npairs, n, dst, accumulate, stream);
  else
    tap_pass<true, false>(p, q, coeffs, npairs, n, dst, accumulate, stream);
}


// Two output rows of a mirrored column pass (see kernels.hpp): the ksize + 1 input
// vectors of a 16-pixel column are loaded once and feed both rows' pair sums,
// nearly halving the loads of a vertical pass, its bottleneck.
template <int K, bool Subtract, class Load>
inline void column_x2_at(const float* const* rows, const float* c, std::int64_t x, Load load,
                         __m512& o0, __m512& o1) {
  constexpr int P = (K + 1) / 2;
  __m512 v[K + 1];
  for (int i = 0; i <= K; ++i) v[i] = load(rows[i] + x);
  o0 = _mm512_setzero_ps();
  o1 = _mm512_setzero_ps();
  for (int t = 0; t < P; ++t) {
    const __m512 ct = _mm512_set1_ps(c[t]);
    o0 = _mm512_fmadd_ps(ct, combine<Subtract>(v[t], v[K - 1 - t]), o0);
    o1 = _mm512_fmadd_ps(ct, combine<Subtract>(v[t + 1], v[K - t]), o1);
  }
}

template <int K, bool Subtract>
void column_x2(const float* const* rows, const float* c, std::int64_t n, float* d0, float* d1) {
  const std::int64_t common = common_head(rows, K + 1, nullptr, 0);
  const bool aligned = common >= 0;
  const std::int64_t head = aligned ? std::min(n, common) : 0;
  __m512 o0, o1;
  std::int64_t x = 0;
  if (head > 0) {
    const __mmask16 m = tail_mask(head);
    column_x2_at<K, Subtract>(rows, c, 0, [m](const float* a) { return _mm512_maskz_loadu_ps(m, a); }, o0, o1);
    _mm512_mask_storeu_ps(d0, m, o0);
    _mm512_mask_storeu_ps(d1, m, o1);
    x = head;
  }
  if (aligned) {
    for (; x + 16 <= n; x += 16) {
      column_x2_at<K, Subtract>(rows, c, x, [](const float* a) { return _mm512_load_ps(a); }, o0, o1);
      _mm512_storeu_ps(d0 + x, o0);
      _mm512_storeu_ps(d1 + x, o1);
    }
  } else {
    for (; x + 16 <= n; x += 16) {
      column_x2_at<K, Subtract>(rows, c, x, [](const float* a) { return _mm512_loadu_ps(a); }, o0, o1);
      _mm512_storeu_ps(d0 + x, o0);
      _mm512_storeu_ps(d1 + x, o1);
    }
  }
  if (x < n) {
    const __mmask16 m = tail_mask(n - x);
    column_x2_at<K, Subtract>(rows, c, x, [m](const float* a) { return _mm512_maskz_loadu_ps(m, a); }, o0, o1);
    _mm512_mask_storeu_ps(d0 + x, m, o0);
    _mm512_mask_storeu_ps(d1 + x, m, o1);
  }
}

template <int K>
bool column_x2_k(const float* const* rows, int ksize, const float* c, bool subtract, std::int64_t n,
                 float* d0, float* d1) {
  if (ksize != K) return false;
  if (subtract)
    column_x2<K, true>(rows, c, n, d0, d1);
  else
    column_x2<K, false>(rows, c, n, d0, d1);
  return true;
}

void column_pairs_x2(const float* const* rows, int ksize, const float* coeffs, bool subtract,
                     std::int64_t n, float* dst0, float* dst1) {
  if (column_x2_k<3>(rows, ksize, coeffs, subtract, n, dst0, dst1) ||
      column_x2_k<5>(rows, ksize, coeffs, subtract, n, dst0, dst1) ||
      column_x2_k<7>(rows, ksize, coeffs, subtract, n, dst0, dst1) ||
      column_x2_k<9>(rows, ksize, coeffs, subtract, n, dst0, dst1) ||
      column_x2_k<11>(rows, ksize, coeffs, subtract, n, dst0, dst1) ||
      column_x2_k<13>(rows, ksize, coeffs, subtract, n, dst0, dst1) ||
      column_x2_k<15>(rows, ksize, coeffs, subtract, n, dst0, dst1))
    return;
  column_pairs_x2_by_rows(filter_kernels_avx512(), rows, ksize, coeffs, subtract, n, dst0, dst1);
}


// Integer source rows -> float32, 16 pixels per conversion (64 for uint8 per step);
// float32 and int16 rows keep the AVX2 version.
void load_row(const void* src, Depth depth, std::int64_t n, float* dst) {
  std::int64_t i = 0;
  if (depth == Depth::u8) {
    const auto* s = static_cast<const std::uint8_t*>(src);
    for (; i + 64 <= n; i += 64) {
      const __m512i v = _mm512_loadu_si512(s + i);
      const auto quarter = [&](__m128i b, int q) {
        _mm512_storeu_ps(dst + i + 16 * q, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)));
      };
      quarter(_mm512_extracti32x4_epi32(v, 0), 0);
      quarter(_mm512_extracti32x4_epi32(v, 1), 1);
      quarter(_mm512_extracti32x4_epi32(v, 2), 2);
      quarter(_mm512_extracti32x4_epi32(v, 3), 3);
    }
    for (; i + 16 <= n; i += 16)
      _mm512_storeu_ps(dst + i, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                    _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)))));
    if (i < n) {
      const __mmask16 m = tail_mask(n - i);
      _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, s + i))));
    }
    return;
  }
  if (depth == Depth::u16) {
    const auto* s = static_cast<const std::uint16_t*>(src);
    for (; i + 16 <= n; i += 16)
      _mm512_storeu_ps(dst + i, _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)))));
    if (i < n) {
      const __mmask16 m = tail_mask(n - i);
      _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s + i))));
    }
    return;
  }
  filter_kernels_avx2().load_row(src, depth, n, dst);
}

// ---------------------------------------------------------------------------
// OpenCV's bit-exact uint16 Gaussian (kernels.hpp: gauss_column_u16, gauss_row_u16);
// masked tails instead of scalar ones. Exact sums, so the same bits as AVX2.

// 16 pixels per register of uint32 lanes, two registers per step.
inline __m512i load_u16_as_u32(const std::uint16_t* p, __mmask16 m) {
  return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
}

inline void store_u32_as_f64(__m512i v, double* d, __mmask16 m) {
  _mm512_mask_storeu_pd(d, static_cast<__mmask8>(m), _mm512_cvtepu32_pd(_mm512_castsi512_si256(v)));
  _mm512_mask_storeu_pd(d + 8, static_cast<__mmask8>(m >> 8), _mm512_cvtepu32_pd(_mm512_extracti64x4_epi64(v, 1)));
}

inline __m512i column_u16_16(const std::uint16_t* const* rows, int ksize, const std::uint32_t* coeffs,
                             std::int64_t x, __mmask16 m) {
  const int half = ksize / 2;
  __m512i a = _mm512_mullo_epi32(load_u16_as_u32(rows[half] + x, m),
                                 _mm512_set1_epi32(static_cast<int>(coeffs[half])));
  for (int i = 0; i < half; ++i) {
    const __m512i pq = _mm512_add_epi32(load_u16_as_u32(rows[i] + x, m), load_u16_as_u32(rows[ksize - 1 - i] + x, m));
    a = _mm512_add_epi32(a, _mm512_mullo_epi32(pq, _mm512_set1_epi32(static_cast<int>(coeffs[i]))));
  }
  return a;
}

void gauss_column_u16(const std::uint16_t* const* rows, int ksize, const std::uint32_t* coeffs,
                      std::int64_t n, double* dst) {
  const int half = ksize / 2;
  const __mmask16 all = 0xFFFF;
  std::int64_t x = 0;
  for (; x + 32 <= n; x += 32) {  // two independent chains
    const __m512i kc = _mm512_set1_epi32(static_cast<int>(coeffs[half]));
    __m512i a = _mm512_mullo_epi32(load_u16_as_u32(rows[half] + x, all), kc);
    __m512i b = _mm512_mullo_epi32(load_u16_as_u32(rows[half] + x + 16, all), kc);
    for (int i = 0; i < half; ++i) {
      const __m512i k = _mm512_set1_epi32(static_cast<int>(coeffs[i]));
      const std::uint16_t* p = rows[i] + x;
      const std::uint16_t* q = rows[ksize - 1 - i] + x;
      a = _mm512_add_epi32(a, _mm512_mullo_epi32(_mm512_add_epi32(load_u16_as_u32(p, all), load_u16_as_u32(q, all)), k));
      b = _mm512_add_epi32(b, _mm512_mullo_epi32(_mm512_add_epi32(load_u16_as_u32(p + 16, all), load_u16_as_u32(q + 16, all)), k));
    }
    store_u32_as_f64(a, dst + x, all);
    store_u32_as_f64(b, dst + x + 16, all);
  }
  for (; x < n; x += 16) {
    const __mmask16 m = n - x >= 16 ? all : tail_mask(n - x);
    store_u32_as_f64(column_u16_16(rows, ksize, coeffs, x, m), dst + x, m);
  }
}

// 8 outputs per register of doubles; floor(sum / 2^32 + 1/2), clamped, to uint16.
inline __m128i round_fixed_u16(__m512d v) {
  const __m512d r = _mm512_floor_pd(_mm512_fmadd_pd(v, _mm512_set1_pd(0x1p-32), _mm512_set1_pd(0.5)));
  return _mm256_cvtusepi32_epi16(_mm512_cvttpd_epu32(_mm512_min_pd(r, _mm512_set1_pd(65535.0))));
}

inline __m512d row_u16_8(const double* src, int ksize, std::int64_t step, const double* coeffs,
                         std::int64_t x, __mmask8 m) {
  const int half = ksize / 2;
  __m512d a = _mm512_mul_pd(_mm512_maskz_loadu_pd(m, src + x + half * step), _mm512_set1_pd(coeffs[half]));
  for (int j = 0; j < half; ++j) {
    const __m512d pq = _mm512_add_pd(_mm512_maskz_loadu_pd(m, src + x + j * step),
                                     _mm512_maskz_loadu_pd(m, src + x + (ksize - 1 - j) * step));
    a = _mm512_fmadd_pd(pq, _mm512_set1_pd(coeffs[j]), a);
  }
  return a;
}

void gauss_row_u16(const double* src, int ksize, std::int64_t step, const double* coeffs,
                   std::int64_t n, std::uint16_t* dst) {
  const int half = ksize / 2;
  std::int64_t x = 0;
  for (; x + 32 <= n; x += 32) {  // four independent FMA chains
    const double* c = src + x + half * step;
    const __m512d kc = _mm512_set1_pd(coeffs[half]);
    __m512d a0 = _mm512_mul_pd(_mm512_loadu_pd(c), kc), a1 = _mm512_mul_pd(_mm512_loadu_pd(c + 8), kc);
    __m512d a2 = _mm512_mul_pd(_mm512_loadu_pd(c + 16), kc), a3 = _mm512_mul_pd(_mm512_loadu_pd(c + 24), kc);
    for (int j = 0; j < half; ++j) {
      const __m512d k = _mm512_set1_pd(coeffs[j]);
      const double* p = src + x + j * step;
      const double* q = src + x + (ksize - 1 - j) * step;
      a0 = _mm512_fmadd_pd(_mm512_add_pd(_mm512_loadu_pd(p), _mm512_loadu_pd(q)), k, a0);
      a1 = _mm512_fmadd_pd(_mm512_add_pd(_mm512_loadu_pd(p + 8), _mm512_loadu_pd(q + 8)), k, a1);
      a2 = _mm512_fmadd_pd(_mm512_add_pd(_mm512_loadu_pd(p + 16), _mm512_loadu_pd(q + 16)), k, a2);
      a3 = _mm512_fmadd_pd(_mm512_add_pd(_mm512_loadu_pd(p + 24), _mm512_loadu_pd(q + 24)), k, a3);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x), round_fixed_u16(a0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x + 8), round_fixed_u16(a1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x + 16), round_fixed_u16(a2));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x + 24), round_fixed_u16(a3));
  }
  for (; x < n; x += 8) {
    const __mmask8 m = n - x >= 8 ? 0xFF : static_cast<__mmask8>(tail_mask(n - x));
    _mm_mask_storeu_epi16(dst + x, m, round_fixed_u16(row_u16_8(src, ksize, step, coeffs, x, m)));
  }
}

FilterKernels make_table() {
  FilterKernels t = filter_kernels_avx2();
  t.load_row = load_row;
  t.accumulate_taps = accumulate_taps;
  t.accumulate_pairs = accumulate_pairs;
  t.column_pairs_x2 = column_pairs_x2;
  t.symmetric3x3 = symmetric3x3;
  t.gauss_column_u16 = gauss_column_u16;
  t.gauss_row_u16 = gauss_row_u16;
  return t;
}

}  // namespace

const FilterKernels& filter_kernels_avx512() {
  static const FilterKernels table = make_table();
  return table;
}

}  // namespace keensight::filters::detail
