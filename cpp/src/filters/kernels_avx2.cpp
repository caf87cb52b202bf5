// AVX2 + FMA kernels (compiled with -mavx2 -mfma; selected at run time only on
// CPUs that have both). Same results as kernels_scalar.cpp up to float rounding
// of the fused multiply-adds.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "filters/kernels.hpp"

namespace keensight::filters::detail {
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

// x * scale + delta (two roundings, as the scalar reference), x + delta for scale 1.
inline float scaled(float x, float scale, float delta) { return scale == 1.f ? x + delta : x * scale + delta; }

template <class T>
void store_tail(const float* src, std::int64_t i, std::int64_t n, float scale, float delta, float lo,
                float hi, T* d) {
  for (; i < n; ++i) {
    float v = scaled(src[i], scale, delta);
    v = (v >= lo) ? v : lo;
    v = (v <= hi) ? v : hi;
    d[i] = static_cast<T>(std::nearbyint(v));
  }
}

void store_row(const float* src, std::int64_t n, float scale, float delta, Depth depth, void* dst) {
  float lo_s, hi_s;
  depth_bounds(depth, lo_s, hi_s);
  const __m256 vd = _mm256_set1_ps(delta), lo = _mm256_set1_ps(lo_s), hi = _mm256_set1_ps(hi_s);
  const __m256 vs = _mm256_set1_ps(scale);
  const bool unit = scale == 1.f;
  // The value to store from the 8 floats at p.
  const auto value = [&](const float* p) {
    const __m256 v = _mm256_loadu_ps(p);
    return _mm256_add_ps(unit ? v : _mm256_mul_ps(v, vs), vd);
  };
  std::int64_t i = 0;
  switch (depth) {
    case Depth::u8: {
      std::uint8_t* d = static_cast<std::uint8_t*>(dst);
      const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
      for (; i + 32 <= n; i += 32) {
        __m256i a = round_clamped(value(src + i), lo, hi);
        __m256i b = round_clamped(value(src + i + 8), lo, hi);
        __m256i c = round_clamped(value(src + i + 16), lo, hi);
        __m256i e = round_clamped(value(src + i + 24), lo, hi);
        __m256i ab = _mm256_packs_epi32(a, b);   // lanes: a0 b0 | a1 b1
        __m256i ce = _mm256_packs_epi32(c, e);   // lanes: c0 e0 | c1 e1
        __m256i p = _mm256_packus_epi16(ab, ce);  // a0 b0 c0 e0 | a1 b1 c1 e1 (4-byte groups)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm256_permutevar8x32_epi32(p, perm));
      }
      store_tail(src, i, n, scale, delta, lo_s, hi_s, d);
      return;
    }
    case Depth::u16: {
      std::uint16_t* d = static_cast<std::uint16_t*>(dst);
      for (; i + 16 <= n; i += 16) {
        __m256i a = round_clamped(value(src + i), lo, hi);
        __m256i b = round_clamped(value(src + i + 8), lo, hi);
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), p);
      }
      store_tail(src, i, n, scale, delta, lo_s, hi_s, d);
      return;
    }
    case Depth::s16: {
      std::int16_t* d = static_cast<std::int16_t*>(dst);
      for (; i + 16 <= n; i += 16) {
        __m256i a = round_clamped(value(src + i), lo, hi);
        __m256i b = round_clamped(value(src + i + 8), lo, hi);
        __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), p);
      }
      store_tail(src, i, n, scale, delta, lo_s, hi_s, d);
      return;
    }
    case Depth::f32: {
      float* d = static_cast<float*>(dst);
      for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, value(src + i));
      for (; i < n; ++i) d[i] = scaled(src[i], scale, delta);
      return;
    }
  }
}

// dst[x] (+)= sum_t c[t] * p[t][x]. Register-blocked over x: 8 accumulators of
// 8 floats stay in ymm registers across all taps, so each tap costs one
// broadcast and eight load+FMA pairs (the FMA ports, not memory, set the pace).
// Aligned non-temporal or ordinary unaligned store of one register.
inline void store8(float* d, __m256 v, bool stream) {
  if (stream)
    _mm256_stream_ps(d, v);
  else
    _mm256_storeu_ps(d, v);
}

// Elements before dst reaches 32-byte alignment (streaming stores need it).
inline std::int64_t align_head(const float* dst, std::int64_t n) {
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(dst);
  if (a % sizeof(float) != 0) return -1;
  return std::min<std::int64_t>(n, static_cast<std::int64_t>(((32 - (a & 31)) & 31) / sizeof(float)));
}

inline __m256i tail_mask8(std::int64_t rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int V>
inline void taps_block(const float* const* ptrs, const float* coeffs, int ntaps, std::int64_t x,
                       float* dst, bool accumulate, bool stream) {
  __m256 acc[V];
  for (int v = 0; v < V; ++v)
    acc[v] = accumulate ? _mm256_loadu_ps(dst + x + 8 * v) : _mm256_setzero_ps();
  for (int t = 0; t < ntaps; ++t) {
    const __m256 c = _mm256_broadcast_ss(coeffs + t);
    const float* p = ptrs[t] + x;
    for (int v = 0; v < V; ++v) acc[v] = _mm256_fmadd_ps(c, _mm256_loadu_ps(p + 8 * v), acc[v]);
  }
  for (int v = 0; v < V; ++v) store8(dst + x + 8 * v, acc[v], stream);
}

// Fewer than 8 elements at x: masked loads never touch memory past the row.
inline void taps_masked(const float* const* ptrs, const float* coeffs, int ntaps, std::int64_t x,
                        std::int64_t rem, float* dst, bool accumulate) {
  const __m256i mask = tail_mask8(rem);
  __m256 acc = accumulate ? _mm256_maskload_ps(dst + x, mask) : _mm256_setzero_ps();
  for (int t = 0; t < ntaps; ++t)
    acc = _mm256_fmadd_ps(_mm256_broadcast_ss(coeffs + t), _mm256_maskload_ps(ptrs[t] + x, mask), acc);
  _mm256_maskstore_ps(dst + x, mask, acc);
}

void accumulate_taps(const float* const* ptrs, const float* coeffs, int ntaps, std::int64_t n,
                     float* dst, bool accumulate, bool stream) {
  std::int64_t x = 0;
  const std::int64_t head = stream && !accumulate ? align_head(dst, n) : -1;
  stream = head >= 0;
  if (head > 0) {
    taps_masked(ptrs, coeffs, ntaps, 0, head, dst, accumulate);
    x = head;
  }
  for (; x + 64 <= n; x += 64) taps_block<8>(ptrs, coeffs, ntaps, x, dst, accumulate, stream);
  for (; x + 8 <= n; x += 8) taps_block<1>(ptrs, coeffs, ntaps, x, dst, accumulate, stream);
  if (x < n) taps_masked(ptrs, coeffs, ntaps, x, n - x, dst, accumulate);
}

template <bool Subtract>
inline __m256 combine(__m256 a, __m256 b) {
  return Subtract ? _mm256_sub_ps(a, b) : _mm256_add_ps(a, b);
}

template <int V, bool Subtract>
inline void pairs_block(const float* const* p, const float* const* q, const float* coeffs,
                        int npairs, std::int64_t x, float* dst, bool accumulate, bool stream) {
  __m256 acc[V];
  for (int v = 0; v < V; ++v)
    acc[v] = accumulate ? _mm256_loadu_ps(dst + x + 8 * v) : _mm256_setzero_ps();
  for (int t = 0; t < npairs; ++t) {
    const __m256 c = _mm256_broadcast_ss(coeffs + t);
    const float* pp = p[t] + x;
    const float* qq = q[t] + x;
    for (int v = 0; v < V; ++v)
      acc[v] = _mm256_fmadd_ps(
          c, combine<Subtract>(_mm256_loadu_ps(pp + 8 * v), _mm256_loadu_ps(qq + 8 * v)), acc[v]);
  }
  for (int v = 0; v < V; ++v) store8(dst + x + 8 * v, acc[v], stream);
}

template <bool Subtract>
inline void pairs_masked(const float* const* p, const float* const* q, const float* coeffs,
                         int npairs, std::int64_t x, std::int64_t rem, float* dst, bool accumulate) {
  const __m256i mask = tail_mask8(rem);
  __m256 acc = accumulate ? _mm256_maskload_ps(dst + x, mask) : _mm256_setzero_ps();
  for (int t = 0; t < npairs; ++t)
    acc = _mm256_fmadd_ps(_mm256_broadcast_ss(coeffs + t),
                          combine<Subtract>(_mm256_maskload_ps(p[t] + x, mask),
                                            _mm256_maskload_ps(q[t] + x, mask)),
                          acc);
  _mm256_maskstore_ps(dst + x, mask, acc);
}

template <bool Subtract>
void pairs_row(const float* const* p, const float* const* q, const float* coeffs, int npairs,
               std::int64_t n, float* dst, bool accumulate, bool stream) {
  std::int64_t x = 0;
  const std::int64_t head = stream && !accumulate ? align_head(dst, n) : -1;
  stream = head >= 0;
  if (head > 0) {
    pairs_masked<Subtract>(p, q, coeffs, npairs, 0, head, dst, accumulate);
    x = head;
  }
  for (; x + 64 <= n; x += 64) pairs_block<8, Subtract>(p, q, coeffs, npairs, x, dst, accumulate, stream);
  for (; x + 8 <= n; x += 8) pairs_block<1, Subtract>(p, q, coeffs, npairs, x, dst, accumulate, stream);
  if (x < n) pairs_masked<Subtract>(p, q, coeffs, npairs, x, n - x, dst, accumulate);
}

void accumulate_pairs(const float* const* p, const float* const* q, const float* coeffs,
                      int npairs, bool subtract, std::int64_t n, float* dst, bool accumulate,
                      bool stream) {
  if (subtract)
    pairs_row<true>(p, q, coeffs, npairs, n, dst, accumulate, stream);
  else
    pairs_row<false>(p, q, coeffs, npairs, n, dst, accumulate, stream);
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

// ---------------------------------------------------------------------------
// Integer path for uint8 sources: 16 pixels per register.

// Taps are copied into locals first: stores through uint8_t* may alias
// anything, which would otherwise make the compiler reload them every pixel.
constexpr int kMaxLocalTaps = 64;

// NT > 0: the tap count known at compile time, so the tap loop unrolls and the
// pointers and coefficients stay in registers; NT == 0: any count.
template <bool FixedPoint, int NT>
void hpass_u8_impl(const std::uint8_t* src, const std::int64_t* offsets,
                   const std::int16_t* coeffs, int ntaps_rt, std::int64_t n, std::int16_t* dst) {
  const int ntaps = NT > 0 ? NT : ntaps_rt;
  const std::uint8_t* ptr[kMaxLocalTaps];
  __m256i kv[kMaxLocalTaps];
  for (int t = 0; t < ntaps; ++t) {
    ptr[t] = src + offsets[t];
    kv[t] = _mm256_set1_epi16(coeffs[t]);
  }
  const __m256i bias = _mm256_set1_epi16(static_cast<short>(0x8000));
  std::int64_t x = 0;
  for (; x + 32 <= n; x += 32) {
    __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
    for (int t = 0; t < ntaps; ++t) {
      const __m256i va = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ptr[t] + x)));
      const __m256i vb = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ptr[t] + x + 16)));
      if (FixedPoint) {
        a = _mm256_adds_epu16(a, _mm256_mullo_epi16(va, kv[t]));
        b = _mm256_adds_epu16(b, _mm256_mullo_epi16(vb, kv[t]));
      } else {
        a = _mm256_add_epi16(a, _mm256_mullo_epi16(va, kv[t]));
        b = _mm256_add_epi16(b, _mm256_mullo_epi16(vb, kv[t]));
      }
    }
    if (FixedPoint) {  // u16 -> s16 biased by -32768
      a = _mm256_xor_si256(a, bias);
      b = _mm256_xor_si256(b, bias);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + x), a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + x + 16), b);
  }
  for (; x < n; ++x) {
    std::int32_t acc = 0;
    for (int t = 0; t < ntaps; ++t) acc += coeffs[t] * ptr[t][x];
    if (FixedPoint) acc = (acc > 65535 ? 65535 : acc) - 32768;
    dst[x] = static_cast<std::int16_t>(acc);
  }
}

template <bool FixedPoint>
void hpass_u8_dispatch(const std::uint8_t* src, const std::int64_t* offsets,
                       const std::int16_t* coeffs, int ntaps, std::int64_t n, std::int16_t* dst) {
  switch (ntaps) {
    case 1: return hpass_u8_impl<FixedPoint, 1>(src, offsets, coeffs, ntaps, n, dst);
    case 2: return hpass_u8_impl<FixedPoint, 2>(src, offsets, coeffs, ntaps, n, dst);
    case 3: return hpass_u8_impl<FixedPoint, 3>(src, offsets, coeffs, ntaps, n, dst);
    case 4: return hpass_u8_impl<FixedPoint, 4>(src, offsets, coeffs, ntaps, n, dst);
    case 5: return hpass_u8_impl<FixedPoint, 5>(src, offsets, coeffs, ntaps, n, dst);
    case 7: return hpass_u8_impl<FixedPoint, 7>(src, offsets, coeffs, ntaps, n, dst);
    default: return hpass_u8_impl<FixedPoint, 0>(src, offsets, coeffs, ntaps, n, dst);
  }
}

void hpass_u8(const std::uint8_t* src, const std::int64_t* offsets, const std::int16_t* coeffs,
              int ntaps, std::int64_t n, bool fixed_point, std::int16_t* dst) {
  if (ntaps > kMaxLocalTaps) {
    filter_kernels_scalar().hpass_u8(src, offsets, coeffs, ntaps, n, fixed_point, dst);
    return;
  }
  if (fixed_point)
    hpass_u8_dispatch<true>(src, offsets, coeffs, ntaps, n, dst);
  else
    hpass_u8_dispatch<false>(src, offsets, coeffs, ntaps, n, dst);
}

// Column taps grouped in pairs for vpmaddwd (an odd last tap pairs with a zero
// coefficient on the same row). NP > 0: pair count known at compile time.
template <int NP>
struct ColumnPairs {
  int npairs = 0;
  const std::int16_t* r0[kMaxLocalTaps / 2 + 1];
  const std::int16_t* r1[kMaxLocalTaps / 2 + 1];
  __m256i k[kMaxLocalTaps / 2 + 1];

  ColumnPairs(const std::int16_t* const* rows, const std::int16_t* coeffs, int ntaps) {
    for (int i = 0; i < ntaps; i += 2, ++npairs) {
      const bool last = i + 1 >= ntaps;
      r0[npairs] = rows[i];
      r1[npairs] = last ? rows[i] : rows[i + 1];
      const std::uint16_t c0 = static_cast<std::uint16_t>(coeffs[i]);
      const std::uint16_t c1 = last ? 0 : static_cast<std::uint16_t>(coeffs[i + 1]);
      k[npairs] = _mm256_set1_epi32(static_cast<int>((static_cast<std::uint32_t>(c1) << 16) | c0));
    }
  }

  // 32-bit sums for pixels x..x+15: pixels 0-7 in lo, 8-15 in hi.
  void sum16(std::int64_t x, __m256i& lo, __m256i& hi) const {
    const int np = NP > 0 ? NP : npairs;
    __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
    for (int p = 0; p < np; ++p) {
      const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0[p] + x));
      const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1[p] + x));
      a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_unpacklo_epi16(v0, v1), k[p]));
      b = _mm256_add_epi32(b, _mm256_madd_epi16(_mm256_unpackhi_epi16(v0, v1), k[p]));
    }
    // unpack works within 128-bit lanes: a holds pixels 0-3 and 8-11, b 4-7 and 12-15.
    lo = _mm256_permute2x128_si256(a, b, 0x20);
    hi = _mm256_permute2x128_si256(a, b, 0x31);
  }
};

template <int NP>
void vpass_s16_u8_impl(const std::int16_t* const* rows, const std::int16_t* coeffs, int ntaps,
                       std::int64_t n, std::int32_t bias, std::uint8_t* dst) {
  const ColumnPairs<NP> cp(rows, coeffs, ntaps);
  const __m256i vb = _mm256_set1_epi32(bias);
  std::int64_t x = 0;
  for (; x + 16 <= n; x += 16) {
    __m256i lo, hi;
    cp.sum16(x, lo, hi);
    lo = _mm256_srai_epi32(_mm256_add_epi32(lo, vb), 16);
    hi = _mm256_srai_epi32(_mm256_add_epi32(hi, vb), 16);
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);  // 16 x s16
    const __m128i u = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x), u);
  }
  for (; x < n; ++x) {
    std::int32_t acc = bias;
    for (int i = 0; i < ntaps; ++i) acc += coeffs[i] * rows[i][x];
    acc >>= 16;
    dst[x] = static_cast<std::uint8_t>(acc < 0 ? 0 : (acc > 255 ? 255 : acc));
  }
}

template <int NP>
void vpass_s16_f32_impl(const std::int16_t* const* rows, const std::int16_t* coeffs, int ntaps,
                        std::int64_t n, float scale, float delta, float* dst) {
  const ColumnPairs<NP> cp(rows, coeffs, ntaps);
  const __m256 vs = _mm256_set1_ps(scale), vd = _mm256_set1_ps(delta);
  std::int64_t x = 0;
  for (; x + 16 <= n; x += 16) {
    __m256i lo, hi;
    cp.sum16(x, lo, hi);
    _mm256_storeu_ps(dst + x, _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo), vs, vd));
    _mm256_storeu_ps(dst + x + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi), vs, vd));
  }
  for (; x < n; ++x) {
    std::int32_t acc = 0;
    for (int i = 0; i < ntaps; ++i) acc += coeffs[i] * rows[i][x];
    dst[x] = static_cast<float>(acc) * scale + delta;
  }
}

// Instantiates Impl<NP> for the common small pair counts (kernels of 1 to 8 taps).
#define KS_DISPATCH_PAIRS(impl, ntaps, ...)              \
  switch (((ntaps) + 1) / 2) {                           \
    case 1: return impl<1>(__VA_ARGS__);                 \
    case 2: return impl<2>(__VA_ARGS__);                 \
    case 3: return impl<3>(__VA_ARGS__);                 \
    case 4: return impl<4>(__VA_ARGS__);                 \
    default: return impl<0>(__VA_ARGS__);                \
  }

void vpass_s16_u8(const std::int16_t* const* rows, const std::int16_t* coeffs, int ntaps,
                  std::int64_t n, std::int32_t bias, std::uint8_t* dst) {
  if (ntaps > kMaxLocalTaps) return filter_kernels_scalar().vpass_s16_u8(rows, coeffs, ntaps, n, bias, dst);
  KS_DISPATCH_PAIRS(vpass_s16_u8_impl, ntaps, rows, coeffs, ntaps, n, bias, dst)
}

void vpass_s16_f32(const std::int16_t* const* rows, const std::int16_t* coeffs, int ntaps,
                   std::int64_t n, float scale, float delta, float* dst) {
  if (ntaps > kMaxLocalTaps)
    return filter_kernels_scalar().vpass_s16_f32(rows, coeffs, ntaps, n, scale, delta, dst);
  KS_DISPATCH_PAIRS(vpass_s16_f32_impl, ntaps, rows, coeffs, ntaps, n, scale, delta, dst)
}

template <int NA, int NB>
void vpass_s16_magnitude_impl(const std::int16_t* const* rows_a, const std::int16_t* coeffs_a,
                              int ntaps_a, const std::int16_t* const* rows_b,
                              const std::int16_t* coeffs_b, int ntaps_b, std::int64_t n, bool l1,
                              float* dst) {
  const ColumnPairs<NA> ca(rows_a, coeffs_a, ntaps_a);
  const ColumnPairs<NB> cb(rows_b, coeffs_b, ntaps_b);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  std::int64_t x = 0;
  for (; x + 16 <= n; x += 16) {
    __m256i alo, ahi, blo, bhi;
    ca.sum16(x, alo, ahi);
    cb.sum16(x, blo, bhi);
    const __m256 a0 = _mm256_cvtepi32_ps(alo), a1 = _mm256_cvtepi32_ps(ahi);
    const __m256 b0 = _mm256_cvtepi32_ps(blo), b1 = _mm256_cvtepi32_ps(bhi);
    if (l1) {
      _mm256_storeu_ps(dst + x, _mm256_add_ps(_mm256_and_ps(a0, abs_mask), _mm256_and_ps(b0, abs_mask)));
      _mm256_storeu_ps(dst + x + 8, _mm256_add_ps(_mm256_and_ps(a1, abs_mask), _mm256_and_ps(b1, abs_mask)));
    } else {
      _mm256_storeu_ps(dst + x, _mm256_sqrt_ps(_mm256_fmadd_ps(a0, a0, _mm256_mul_ps(b0, b0))));
      _mm256_storeu_ps(dst + x + 8, _mm256_sqrt_ps(_mm256_fmadd_ps(a1, a1, _mm256_mul_ps(b1, b1))));
    }
  }
  for (; x < n; ++x) {
    std::int32_t a = 0, b = 0;
    for (int i = 0; i < ntaps_a; ++i) a += coeffs_a[i] * rows_a[i][x];
    for (int i = 0; i < ntaps_b; ++i) b += coeffs_b[i] * rows_b[i][x];
    const float fa = static_cast<float>(a), fb = static_cast<float>(b);
    dst[x] = l1 ? std::fabs(fa) + std::fabs(fb) : std::sqrt(fa * fa + fb * fb);
  }
}

void vpass_s16_magnitude(const std::int16_t* const* rows_a, const std::int16_t* coeffs_a,
                         int ntaps_a, const std::int16_t* const* rows_b,
                         const std::int16_t* coeffs_b, int ntaps_b, std::int64_t n, bool l1,
                         float* dst) {
  if (ntaps_a > kMaxLocalTaps || ntaps_b > kMaxLocalTaps)
    return filter_kernels_scalar().vpass_s16_magnitude(rows_a, coeffs_a, ntaps_a, rows_b, coeffs_b,
                                                      ntaps_b, n, l1, dst);
  // Sobel/Scharr/Prewitt 3x3: the derivative column has 2 taps (1 pair), the smoothing column 3 (2 pairs).
  const int pa = (ntaps_a + 1) / 2, pb = (ntaps_b + 1) / 2;
  if (pa == 2 && pb == 1)
    return vpass_s16_magnitude_impl<2, 1>(rows_a, coeffs_a, ntaps_a, rows_b, coeffs_b, ntaps_b, n, l1, dst);
  return vpass_s16_magnitude_impl<0, 0>(rows_a, coeffs_a, ntaps_a, rows_b, coeffs_b, ntaps_b, n, l1, dst);
}

#undef KS_DISPATCH_PAIRS

// ---------------------------------------------------------------------------
// FFT path: radix-2 butterflies on 8 columns per vector (see kernels_scalar.cpp).

void fft_columns(float* re, float* im, std::int64_t rows, std::int64_t cols,
                 const float* twiddle_re, const float* twiddle_im) {
  if (cols % 8 != 0) return filter_kernels_scalar().fft_columns(re, im, rows, cols, twiddle_re, twiddle_im);
  for (std::int64_t len = 2; len <= rows; len <<= 1) {
    const std::int64_t half = len >> 1, step = rows / len;
    for (std::int64_t start = 0; start < rows; start += len)
      for (std::int64_t j = 0; j < half; ++j) {
        const __m256 wr = _mm256_set1_ps(twiddle_re[j * step]), wi = _mm256_set1_ps(twiddle_im[j * step]);
        float* ar = re + (start + j) * cols;
        float* ai = im + (start + j) * cols;
        float* br = re + (start + j + half) * cols;
        float* bi = im + (start + j + half) * cols;
        for (std::int64_t c = 0; c < cols; c += 8) {
          const __m256 xr = _mm256_loadu_ps(br + c), xi = _mm256_loadu_ps(bi + c);
          const __m256 tr = _mm256_fmsub_ps(xr, wr, _mm256_mul_ps(xi, wi));
          const __m256 ti = _mm256_fmadd_ps(xr, wi, _mm256_mul_ps(xi, wr));
          const __m256 yr = _mm256_loadu_ps(ar + c), yi = _mm256_loadu_ps(ai + c);
          _mm256_storeu_ps(br + c, _mm256_sub_ps(yr, tr));
          _mm256_storeu_ps(bi + c, _mm256_sub_ps(yi, ti));
          _mm256_storeu_ps(ar + c, _mm256_add_ps(yr, tr));
          _mm256_storeu_ps(ai + c, _mm256_add_ps(yi, ti));
        }
      }
  }
}

void complex_multiply(const float* ar, const float* ai, const float* br, const float* bi,
                      std::int64_t n, float* out_re, float* out_im) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_loadu_ps(ar + i), b = _mm256_loadu_ps(ai + i);
    const __m256 c = _mm256_loadu_ps(br + i), d = _mm256_loadu_ps(bi + i);
    _mm256_storeu_ps(out_re + i, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, d)));
    _mm256_storeu_ps(out_im + i, _mm256_fmadd_ps(a, d, _mm256_mul_ps(b, c)));
  }
  for (; i < n; ++i) {
    const float r = ar[i] * br[i] - ai[i] * bi[i], m = ar[i] * bi[i] + ai[i] * br[i];
    out_re[i] = r;
    out_im[i] = m;
  }
}

// 8 x 8 block transpose in registers (unpack, shuffle, 128-bit lane permute).
inline void transpose8(const float* src, std::int64_t src_stride, float* const* dst_rows,
                       std::int64_t dst_offset) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_stride);
  t[0] = _mm256_unpacklo_ps(r[0], r[1]);
  t[1] = _mm256_unpackhi_ps(r[0], r[1]);
  t[2] = _mm256_unpacklo_ps(r[2], r[3]);
  t[3] = _mm256_unpackhi_ps(r[2], r[3]);
  t[4] = _mm256_unpacklo_ps(r[4], r[5]);
  t[5] = _mm256_unpackhi_ps(r[4], r[5]);
  t[6] = _mm256_unpacklo_ps(r[6], r[7]);
  t[7] = _mm256_unpackhi_ps(r[6], r[7]);
  r[0] = _mm256_shuffle_ps(t[0], t[2], _MM_SHUFFLE(1, 0, 1, 0));
  r[1] = _mm256_shuffle_ps(t[0], t[2], _MM_SHUFFLE(3, 2, 3, 2));
  r[2] = _mm256_shuffle_ps(t[1], t[3], _MM_SHUFFLE(1, 0, 1, 0));
  r[3] = _mm256_shuffle_ps(t[1], t[3], _MM_SHUFFLE(3, 2, 3, 2));
  r[4] = _mm256_shuffle_ps(t[4], t[6], _MM_SHUFFLE(1, 0, 1, 0));
  r[5] = _mm256_shuffle_ps(t[4], t[6], _MM_SHUFFLE(3, 2, 3, 2));
  r[6] = _mm256_shuffle_ps(t[5], t[7], _MM_SHUFFLE(1, 0, 1, 0));
  r[7] = _mm256_shuffle_ps(t[5], t[7], _MM_SHUFFLE(3, 2, 3, 2));
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst_rows[i] + dst_offset, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst_rows[i + 4] + dst_offset, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

void transpose_planes(const float* sr, const float* si, std::int64_t n, const int* row_order,
                      float* dr, float* di) {
  if (n % 8 != 0) return filter_kernels_scalar().transpose_planes(sr, si, n, row_order, dr, di);
  float* rows_re[8];
  float* rows_im[8];
  for (std::int64_t x0 = 0; x0 < n; x0 += 8) {
    for (int i = 0; i < 8; ++i) {
      rows_re[i] = dr + row_order[x0 + i] * n;
      rows_im[i] = di + row_order[x0 + i] * n;
    }
    for (std::int64_t y0 = 0; y0 < n; y0 += 8) {
      transpose8(sr + y0 * n + x0, n, rows_re, y0);
      transpose8(si + y0 * n + x0, n, rows_im, y0);
    }
  }
}

void symmetric3x3(const float* up, const float* mid, const float* down, std::int64_t n,
                  std::int64_t s, float corner, float edge, float center, float* dst, bool stream) {
  const __m256 vc = _mm256_set1_ps(corner), ve = _mm256_set1_ps(edge), vm = _mm256_set1_ps(center);
  const bool use_edge = edge != 0.f, use_corner = corner != 0.f;
  const auto at = [&](std::int64_t i) {
    __m256 r = _mm256_mul_ps(vm, _mm256_loadu_ps(mid + i));
    if (use_edge) {
      const __m256 e = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(up + i), _mm256_loadu_ps(down + i)),
                                     _mm256_add_ps(_mm256_loadu_ps(mid + i - s), _mm256_loadu_ps(mid + i + s)));
      r = _mm256_fmadd_ps(ve, e, r);
    }
    if (use_corner) {
      const __m256 c = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(up + i - s), _mm256_loadu_ps(up + i + s)),
                                     _mm256_add_ps(_mm256_loadu_ps(down + i - s), _mm256_loadu_ps(down + i + s)));
      r = _mm256_fmadd_ps(vc, c, r);
    }
    return r;
  };
  const auto scalar = [&](std::int64_t from, std::int64_t to) {
    for (std::int64_t x = from; x < to; ++x) {
      float r = center * mid[x];
      if (use_edge) r = std::fma(edge, (up[x] + down[x]) + (mid[x - s] + mid[x + s]), r);
      if (use_corner) r = std::fma(corner, (up[x - s] + up[x + s]) + (down[x - s] + down[x + s]), r);
      dst[x] = r;
    }
  };
  std::int64_t x = 0;
  const std::int64_t head = stream ? align_head(dst, n) : -1;
  stream = head >= 0;
  if (head > 0) {
    scalar(0, head);
    x = head;
  }
  // `down` is the row this output row reads first (the others were read by the
  // previous output row): prefetched a few cache lines ahead of use.
  constexpr std::int64_t kPrefetch = 512;  // floats
  for (; x + 16 <= n; x += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(down + x + kPrefetch), _MM_HINT_T0);
    const __m256 a = at(x), b = at(x + 8);
    store8(dst + x, a, stream);
    store8(dst + x + 8, b, stream);
  }
  for (; x + 8 <= n; x += 8) store8(dst + x, at(x), stream);
  scalar(x, n);
}

void column_pairs_x2(const float* const* rows, int ksize, const float* coeffs, bool subtract,
                     std::int64_t n, float* dst0, float* dst1) {
  column_pairs_x2_by_rows(filter_kernels_avx2(), rows, ksize, coeffs, subtract, n, dst0, dst1);
}

// ---------------------------------------------------------------------------
// OpenCV's bit-exact uint16 Gaussian (kernels.hpp: gauss_column_u16, gauss_row_u16).

// 8 uint32 -> 8 doubles at d. AVX2 converts only signed int32: flip the top bit
// (v - 2^31 as int32), convert, add 2^31 back (exact in a double).
inline void store_u32_as_f64(__m256i v, double* d) {
  const __m256i s = _mm256_xor_si256(v, _mm256_set1_epi32(INT32_MIN));
  const __m256d bias = _mm256_set1_pd(2147483648.0);
  _mm256_storeu_pd(d, _mm256_add_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(s)), bias));
  _mm256_storeu_pd(d + 4, _mm256_add_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(s, 1)), bias));
}

inline __m256i load_u16_as_u32(const std::uint16_t* p) {
  return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// 16 pixels per step in two registers of 8 uint32 lanes; each mirrored pair of
// rows costs one add and one 32-bit multiply per register.
void gauss_column_u16(const std::uint16_t* const* rows, int ksize, const std::uint32_t* coeffs,
                      std::int64_t n, double* dst) {
  const int half = ksize / 2;
  std::int64_t x = 0;
  for (; x + 16 <= n; x += 16) {
    const __m256i kc = _mm256_set1_epi32(static_cast<int>(coeffs[half]));
    __m256i a = _mm256_mullo_epi32(load_u16_as_u32(rows[half] + x), kc);
    __m256i b = _mm256_mullo_epi32(load_u16_as_u32(rows[half] + x + 8), kc);
    for (int i = 0; i < half; ++i) {
      const __m256i k = _mm256_set1_epi32(static_cast<int>(coeffs[i]));
      const std::uint16_t* p = rows[i] + x;
      const std::uint16_t* q = rows[ksize - 1 - i] + x;
      a = _mm256_add_epi32(a, _mm256_mullo_epi32(_mm256_add_epi32(load_u16_as_u32(p), load_u16_as_u32(q)), k));
      b = _mm256_add_epi32(b, _mm256_mullo_epi32(_mm256_add_epi32(load_u16_as_u32(p + 8), load_u16_as_u32(q + 8)), k));
    }
    store_u32_as_f64(a, dst + x);
    store_u32_as_f64(b, dst + x + 8);
  }
  for (; x < n; ++x) dst[x] = gauss_column_u16_at(rows, ksize, coeffs, x);
}

// 16 outputs per step in four registers of 4 doubles (four independent FMA
// chains keep both FMA ports busy); then floor(sum / 2^32 + 1/2), both steps exact.
void gauss_row_u16(const double* src, int ksize, std::int64_t step, const double* coeffs,
                   std::int64_t n, std::uint16_t* dst) {
  const int half = ksize / 2;
  const __m256d unit = _mm256_set1_pd(0x1p-32), round_half = _mm256_set1_pd(0.5);
  const __m256d top = _mm256_set1_pd(65535.0);
  const auto to_u32 = [&](__m256d v) {
    return _mm256_cvttpd_epi32(_mm256_min_pd(_mm256_floor_pd(_mm256_fmadd_pd(v, unit, round_half)), top));
  };
  std::int64_t x = 0;
  for (; x + 16 <= n; x += 16) {
    const double* c = src + x + half * step;
    const __m256d kc = _mm256_set1_pd(coeffs[half]);
    __m256d a0 = _mm256_mul_pd(_mm256_loadu_pd(c), kc), a1 = _mm256_mul_pd(_mm256_loadu_pd(c + 4), kc);
    __m256d a2 = _mm256_mul_pd(_mm256_loadu_pd(c + 8), kc), a3 = _mm256_mul_pd(_mm256_loadu_pd(c + 12), kc);
    for (int j = 0; j < half; ++j) {
      const __m256d k = _mm256_set1_pd(coeffs[j]);
      const double* p = src + x + j * step;
      const double* q = src + x + (ksize - 1 - j) * step;
      a0 = _mm256_fmadd_pd(_mm256_add_pd(_mm256_loadu_pd(p), _mm256_loadu_pd(q)), k, a0);
      a1 = _mm256_fmadd_pd(_mm256_add_pd(_mm256_loadu_pd(p + 4), _mm256_loadu_pd(q + 4)), k, a1);
      a2 = _mm256_fmadd_pd(_mm256_add_pd(_mm256_loadu_pd(p + 8), _mm256_loadu_pd(q + 8)), k, a2);
      a3 = _mm256_fmadd_pd(_mm256_add_pd(_mm256_loadu_pd(p + 12), _mm256_loadu_pd(q + 12)), k, a3);
    }
    const __m128i lo = _mm_packus_epi32(to_u32(a0), to_u32(a1));
    const __m128i hi = _mm_packus_epi32(to_u32(a2), to_u32(a3));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x), lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x + 8), hi);
  }
  for (; x < n; ++x) dst[x] = gauss_row_u16_at(src, ksize, step, coeffs, x);
}

FilterKernels make_table() {
  FilterKernels t{};
  KEENSIGHT_FILL_FILTER_KERNELS(t);
  return t;
}

}  // namespace

const FilterKernels& filter_kernels_avx2() {
  static const FilterKernels table = make_table();
  return table;
}

}  // namespace keensight::filters::detail
