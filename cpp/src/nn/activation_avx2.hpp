// Internal: keensight.nn's activations (nn/kernels.hpp ActKind) on AVX2 vectors of
// 8 floats, for the AVX2 kernel files of the nn area (include it only from
// *_avx2.cpp: every function here compiles to AVX2 + FMA instructions).
//
// clip / hardsigmoid / hardswish are bit-exact with the scalar reference
// nn::activate (the same min / max, and x * alpha + beta as a multiply then an add,
// two roundings); sigmoid and swish use exp_avx2, within a few ulp of std::exp.
//
//   const ActivationAvx2 va(act);            // once per call: broadcast constants
//   y = activate_avx2(va, x);                // per vector (a predictable switch)
//   y = apply_activation_avx2(act, x);       // standalone, one vector
//   y = apply_activation_avx2(act, x, mask); // lanes whose mask sign bit is clear keep x
//   activate_array_avx2(act, x, y, n);       // a whole array, masked tail
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "nn/kernels.hpp"

namespace keensight::nn::detail {

// exp(x) on 8 lanes: the method of activation_avx512.hpp's exp_avx512 (Cody & Waite
// range reduction, degree-7 Taylor polynomial), with the final scaling by 2^n done
// as two exact power-of-two factors 2^(n/2) * 2^(n - n/2) built in the exponent
// field (AVX2 has no vscalefps): the first product is exact, the second rounds once,
// so overflow to +inf and gradual underflow come out as exp's. NaN propagates.
inline __m256 exp_avx2(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(89.f), _mm256_max_ps(_mm256_set1_ps(-104.f), x));
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // x - n ln2_hi, exact
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440054690583e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 5040.f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i ni = _mm256_cvtps_epi32(n);  // in [-150, 129]
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// An Activation with its parameters broadcast once (a kernel builds one per call).
struct ActivationAvx2 {
  ActKind kind;
  __m256 lo, hi, alpha, beta;
  explicit ActivationAvx2(const Activation& act)
      : kind(act.kind),
        lo(_mm256_set1_ps(act.lo)),
        hi(_mm256_set1_ps(act.hi)),
        alpha(_mm256_set1_ps(act.alpha)),
        beta(_mm256_set1_ps(act.beta)) {}
};

// The vector form of nn::activate; min / max operand order as activation_avx512.hpp.
inline __m256 hardsigmoid_avx2(const ActivationAvx2& a, __m256 x) {
  const __m256 t = _mm256_add_ps(_mm256_mul_ps(x, a.alpha), a.beta);  // two roundings, as the reference
  return _mm256_min_ps(_mm256_set1_ps(1.f), _mm256_max_ps(_mm256_setzero_ps(), t));  // bound first: NaN propagates
}

inline __m256 activate_avx2(const ActivationAvx2& a, __m256 x) {
  switch (a.kind) {
    case ActKind::none: return x;
    case ActKind::clip: return _mm256_min_ps(a.hi, _mm256_max_ps(a.lo, x));
    case ActKind::hardsigmoid: return hardsigmoid_avx2(a, x);
    case ActKind::hardswish: return _mm256_mul_ps(x, hardsigmoid_avx2(a, x));
    case ActKind::sigmoid: {
      const __m256 e = exp_avx2(_mm256_xor_ps(x, _mm256_set1_ps(-0.f)));
      return _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_add_ps(_mm256_set1_ps(1.f), e));
    }
    case ActKind::swish: {
      const __m256 e = exp_avx2(_mm256_xor_ps(x, _mm256_set1_ps(-0.f)));
      return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.f), e));
    }
  }
  return x;
}

inline __m256 apply_activation_avx2(const Activation& act, __m256 x) { return activate_avx2(ActivationAvx2(act), x); }

// Lanes whose `mask` element has its sign bit clear are returned unchanged.
inline __m256 apply_activation_avx2(const Activation& act, __m256 x, __m256i mask) {
  return _mm256_blendv_ps(x, activate_avx2(ActivationAvx2(act), x), _mm256_castsi256_ps(mask));
}

// The vmaskmovps mask of the first n lanes (0 <= n <= 8).
inline __m256i first_lanes_mask_avx2(std::int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// y[i] = activate(act, x[i]) for i < n (x == y allowed); the tail is masked, so no
// access past x + n or y + n.
inline void activate_array_avx2(const Activation& act, const float* x, float* y, std::int64_t n) {
  const ActivationAvx2 a(act);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, activate_avx2(a, _mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = first_lanes_mask_avx2(n - i);
    _mm256_maskstore_ps(y + i, m, activate_avx2(a, _mm256_maskload_ps(x + i, m)));
  }
}

}  // namespace keensight::nn::detail
