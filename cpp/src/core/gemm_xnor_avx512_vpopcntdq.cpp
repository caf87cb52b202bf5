// AVX-512 VPOPCNTDQ XNOR GEMM tile (compiled with the AVX-512 flags and
// -mavx512vpopcntdq; selected at run time only on CPUs that report it, e.g.
// Ice Lake, Sapphire Rapids, Zen 4): vpopcntq counts the differing bits of 8
// word pairs at once. The driver turns counts into ±1 dot products.
#include <immintrin.h>

#include <cstdint>

#include "core/gemm.hpp"

namespace keensight::detail {
namespace {

constexpr int kMR = 8, kNR = 16;

// 8 x 16 tile: 16 zmm accumulators (64-bit lanes, one per column) + 2 B
// vectors + broadcast and XOR temporaries. Per packed word: 2 B loads, 8
// broadcasts, 16 vpxorq + 16 vpopcntq + 16 vpaddq.
void gemm_xnor_8x16(std::int64_t kc, const std::uint64_t* a, const std::uint64_t* b, std::int32_t* c,
                    std::int64_t ldc, bool accumulate) {
  __m512i acc[kMR][2];
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
  for (std::int64_t p = 0; p < kc; ++p, a += kMR, b += kNR) {
    const __m512i b0 = _mm512_loadu_si512(b);
    const __m512i b1 = _mm512_loadu_si512(b + 8);
    for (int i = 0; i < kMR; ++i) {
      const __m512i av = _mm512_set1_epi64(static_cast<long long>(a[i]));
      acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_popcnt_epi64(_mm512_xor_si512(av, b0)));
      acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_popcnt_epi64(_mm512_xor_si512(av, b1)));
    }
  }
  for (int i = 0; i < kMR; ++i)
    for (int h = 0; h < 2; ++h) {
      auto* ci = reinterpret_cast<__m256i*>(c + i * ldc + 8 * h);
      // counts < 2^31: narrowing is exact (the masked form: GCC 12 warns on the
      // unmasked one's undefined source register)
      __m256i v = _mm512_maskz_cvtepi64_epi32(0xFF, acc[i][h]);
      if (accumulate) v = _mm256_add_epi32(v, _mm256_loadu_si256(ci));
      _mm256_storeu_si256(ci, v);
    }
}

// Filled by member name (see core/dispatch.hpp).
const GemmKernels<GemmXnor> kTable = [] {
  GemmKernels<GemmXnor> t{};
  t.name = "xnor_8x16_avx512_vpopcntdq";
  t.mr = kMR;
  t.nr = kNR;
  t.k_group = 8;
  t.tile = gemm_xnor_8x16;
  return t;
}();

}  // namespace

const GemmKernels<GemmXnor>& gemm_xnor_8x16_avx512_vpopcntdq() { return kTable; }

}  // namespace keensight::detail
