// Internal: keensight.nn's activations (nn/kernels.hpp ActKind) on AVX-512 vectors
// of 16 floats, for the AVX-512 kernel files of the nn area (include it only from
// *_avx512.cpp: every function here compiles to AVX-512 instructions).
//
// clip / hardsigmoid / hardswish are bit-exact with the scalar reference
// nn::activate (the same min / max, and x * alpha + beta as a multiply then an add,
// two roundings); sigmoid and swish use exp_avx512, within a few ulp of std::exp.
//
//   const ActivationAvx512 va(act);            // once per call: broadcast constants
//   y = activate_avx512(va, x);                // per vector (a predictable switch)
//   y = apply_activation_avx512(act, x);       // standalone, one vector
//   y = apply_activation_avx512(act, x, mask); // lanes outside `mask` keep x
//   activate_array_avx512(act, x, y, n);       // a whole array, masked tail
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers build several intrinsics on an intentionally undefined
// register, which -O2 and up report as maybe-uninitialized at every use (GCC bug
// 105593, fixed in GCC 13); as search/kernels_avx512.cpp.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "nn/kernels.hpp"

namespace keensight::nn::detail {

// exp(x) on 16 lanes. Cody & Waite range reduction (W. J. Cody, W. Waite, "Software
// Manual for the Elementary Functions", 1980, ch. 6): x = n ln2 + r with
// n = round(x / ln2) and |r| <= ln2 / 2, where ln2 is split into ln2_hi (9
// significant bits, so that n * ln2_hi is exact for |n| < 2^15) and ln2_lo = ln2 -
// ln2_hi; e^r by its Taylor polynomial of degree 7 in Horner form (truncation error
// |r|^8 / 8! < 6e-9 relative, below half an ulp); then e^x = e^r * 2^n with vscalefps,
// which rounds once and overflows to +inf / underflows gradually to 0 as exp does.
// NaN propagates. Measured (tests/cpp/kernel_test.cpp): within 2 ulp of std::exp.
inline __m512 exp_avx512(__m512 x) {
  // exp(89) > FLT_MAX and exp(-104) < FLT_TRUE_MIN / 2: clamping there changes no
  // result and keeps n in [-150, 129]. max/min(const, x) return x when x is NaN.
  x = _mm512_min_ps(_mm512_set1_ps(89.f), _mm512_max_ps(_mm512_set1_ps(-104.f), x));
  const __m512 n =
      _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // x - n ln2_hi, exact
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440054690583e-4f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040.f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

// An Activation with its parameters broadcast once (a kernel builds one per call).
struct ActivationAvx512 {
  ActKind kind;
  __m512 lo, hi, alpha, beta;
  explicit ActivationAvx512(const Activation& act)
      : kind(act.kind),
        lo(_mm512_set1_ps(act.lo)),
        hi(_mm512_set1_ps(act.hi)),
        alpha(_mm512_set1_ps(act.alpha)),
        beta(_mm512_set1_ps(act.beta)) {}
};

// The vector form of nn::activate. The operand order of min / max follows the
// scalar reference's fmin / fmax on NaN: vmaxps(x, lo) returns lo for a NaN x, as
// fmax(x, lo) does; hardswish keeps x * 0 = NaN.
inline __m512 hardsigmoid_avx512(const ActivationAvx512& a, __m512 x) {
  const __m512 t = _mm512_add_ps(_mm512_mul_ps(x, a.alpha), a.beta);  // two roundings, as the reference
  return _mm512_min_ps(_mm512_set1_ps(1.f), _mm512_max_ps(_mm512_setzero_ps(), t));  // bound first: NaN propagates
}

inline __m512 activate_avx512(const ActivationAvx512& a, __m512 x) {
  switch (a.kind) {
    case ActKind::none: return x;
    case ActKind::clip: return _mm512_min_ps(a.hi, _mm512_max_ps(a.lo, x));
    case ActKind::hardsigmoid: return hardsigmoid_avx512(a, x);
    case ActKind::hardswish: return _mm512_mul_ps(x, hardsigmoid_avx512(a, x));
    case ActKind::sigmoid: {
      const __m512 e = exp_avx512(_mm512_xor_ps(x, _mm512_set1_ps(-0.f)));
      return _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_add_ps(_mm512_set1_ps(1.f), e));
    }
    case ActKind::swish: {
      const __m512 e = exp_avx512(_mm512_xor_ps(x, _mm512_set1_ps(-0.f)));
      return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.f), e));
    }
  }
  return x;
}

inline __m512 apply_activation_avx512(const Activation& act, __m512 x) {
  return activate_avx512(ActivationAvx512(act), x);
}

// Lanes outside `mask` are returned unchanged.
inline __m512 apply_activation_avx512(const Activation& act, __m512 x, __mmask16 mask) {
  return _mm512_mask_blend_ps(mask, x, activate_avx512(ActivationAvx512(act), x));
}

// y[i] = activate(act, x[i]) for i < n (x == y allowed); the tail is masked, so no
// access past x + n or y + n.
inline void activate_array_avx512(const Activation& act, const float* x, float* y, std::int64_t n) {
  const ActivationAvx512 a(act);
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, activate_avx512(a, _mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, m, activate_avx512(a, _mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace keensight::nn::detail
