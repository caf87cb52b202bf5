// AVX512-VNNI u8 x s8 -> s32 GEMM tile (compiled with the AVX-512 flags and
// -mavx512vnni; selected at run time only on CPUs that report AVX512_VNNI,
// e.g. Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4). vpdpbusd multiplies
// four u8 x s8 pairs of each 32-bit lane and adds them to the int32 lane
// without intermediate saturation: exact.
#include <immintrin.h>

#include <cstdint>

#include "core/gemm.hpp"

namespace keensight::detail {
namespace {

constexpr int kMR = 12, kNR = 32;

// 12 x 32 tile: 24 zmm accumulators + 2 B vectors + 1 broadcast of 32 zmm
// (the register budget of BLIS's SkylakeX sgemm tile, transposed). Per packed
// word: 2 B loads, 12 broadcasts, 24 vpdpbusd (2 ports on server cores).
void gemm_u8s8_12x32(std::int64_t kc, const std::uint32_t* a, const std::uint32_t* b, std::int32_t* c,
                     std::int64_t ldc, bool accumulate) {
  __m512i acc[kMR][2];
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
  for (std::int64_t p = 0; p < kc; ++p, a += kMR, b += kNR) {
    const __m512i b0 = _mm512_loadu_si512(b);
    const __m512i b1 = _mm512_loadu_si512(b + 16);
    for (int i = 0; i < kMR; ++i) {
      const __m512i av = _mm512_set1_epi32(static_cast<int>(a[i]));  // unsigned operand first
      acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], av, b0);
      acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], av, b1);
    }
  }
  for (int i = 0; i < kMR; ++i)
    for (int h = 0; h < 2; ++h) {
      std::int32_t* ci = c + i * ldc + 16 * h;
      const __m512i v = accumulate ? _mm512_add_epi32(acc[i][h], _mm512_loadu_si512(ci)) : acc[i][h];
      _mm512_storeu_si512(ci, v);
    }
}

// Filled by member name (see core/dispatch.hpp).
const GemmKernels<GemmU8S8> kTable = [] {
  GemmKernels<GemmU8S8> t{};
  t.name = "u8s8_12x32_avx512_vnni";
  t.mr = kMR;
  t.nr = kNR;
  t.k_group = 4;
  t.tile = gemm_u8s8_12x32;
  return t;
}();

}  // namespace

const GemmKernels<GemmU8S8>& gemm_u8s8_12x32_avx512_vnni() { return kTable; }

}  // namespace keensight::detail
