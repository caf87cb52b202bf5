// AVX2 u8 x s8 -> s32 GEMM tile (compiled with -mavx2; selected at run time
// only on CPUs that have it) for CPUs without VNNI.
//
// vpmaddubsw (u8 x s8, adjacent pairs summed into int16) would saturate:
// 255 * (-128) * 2 = -65280 is outside int16, so it is exact only for weights
// restricted to [-64, 63]. This tile takes every int8 weight instead: the
// packing widens both operands to int16 (A zero-extended, B sign-extended),
// two coordinates a 32-bit word, and vpmaddwd multiplies int16 pairs into
// int32 sums, which cannot overflow (|a0 b0 + a1 b1| <= 2 * 255 * 128). The
// price is twice the packed bytes and one vpmaddwd + vpaddd per two
// coordinates where VNNI needs one vpdpbusd per four.
#include <immintrin.h>

#include <cstdint>

#include "core/gemm.hpp"

namespace keensight::detail {
namespace {

constexpr int kMR = 6, kNR = 16;

// 6 x 16 tile: 12 int32 accumulators + 2 B vectors + 1 broadcast (15 of 16
// ymm), the shape of the f32 tile (core/gemm_f32_avx2.cpp).
void gemm_u8s8_6x16(std::int64_t kc, const std::uint32_t* a, const std::uint32_t* b, std::int32_t* c,
                    std::int64_t ldc, bool accumulate) {
  __m256i acc[kMR][2];
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  for (std::int64_t p = 0; p < kc; ++p, a += kMR, b += kNR) {
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 8));
    for (int i = 0; i < kMR; ++i) {
      const __m256i av = _mm256_set1_epi32(static_cast<int>(a[i]));
      acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(av, b0));
      acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(av, b1));
    }
  }
  for (int i = 0; i < kMR; ++i)
    for (int h = 0; h < 2; ++h) {
      auto* ci = reinterpret_cast<__m256i*>(c + i * ldc + 8 * h);
      const __m256i v = accumulate ? _mm256_add_epi32(acc[i][h], _mm256_loadu_si256(ci)) : acc[i][h];
      _mm256_storeu_si256(ci, v);
    }
}

// Filled by member name (see core/dispatch.hpp).
const GemmKernels<GemmU8S8> kTable = [] {
  GemmKernels<GemmU8S8> t{};
  t.name = "u8s8_6x16_avx2";
  t.mr = kMR;
  t.nr = kNR;
  t.k_group = 2;
  t.tile = gemm_u8s8_6x16;
  return t;
}();

}  // namespace

const GemmKernels<GemmU8S8>& gemm_u8s8_6x16_avx2() { return kTable; }

}  // namespace keensight::detail
