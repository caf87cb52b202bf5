// AVX2 XNOR GEMM tile (compiled with -mavx2; selected at run time only on
// CPUs that have it): counts the differing bits of each pair of rows, 64 a
// packed word; the driver turns counts into ±1 dot products.
//
// Bits are counted with the vpshufb nibble lookup (W. Muła, N. Kurz, D.
// Lemire, "Faster population counts using AVX2 instructions", Computer
// Journal 61(1), 2018, §2.3): each byte's count is the sum of two 16-entry
// table lookups. The counts accumulate in byte lanes (at most 8 a word, so 31
// words fit in a byte) and are widened by vpsadbw into 64-bit lanes only once
// per 31 words, the accumulation scheme of that paper's vpshufb method. Its
// Harley-Seal carry-save tree is not used: it sums one long stream, while a
// tile keeps one count per (row, column) pair, and a carry-save state per
// pair would not fit in the 16 ymm registers.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "core/gemm.hpp"

namespace keensight::detail {
namespace {

constexpr int kMR = 4, kNR = 8;
constexpr std::int64_t kByteRun = 31;  // words per byte-lane run: 31 * 8 = 248 <= 255

// 4 x 8 tile: 8 byte accumulators (4 rows x 2 vectors of 4 words) + 2 B
// vectors + the lookup table, the nibble mask and a broadcast; the 64-bit
// totals live in memory and are touched once per run.
void gemm_xnor_4x8(std::int64_t kc, const std::uint64_t* a, const std::uint64_t* b, std::int32_t* c,
                   std::int64_t ldc, bool accumulate) {
  const __m256i lookup = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                          0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  __m256i total[kMR][2];
  for (int i = 0; i < kMR; ++i) total[i][0] = total[i][1] = zero;
  for (std::int64_t p0 = 0; p0 < kc; p0 += kByteRun) {
    const std::int64_t p1 = std::min(kc, p0 + kByteRun);
    __m256i bytes[kMR][2];
    for (int i = 0; i < kMR; ++i) bytes[i][0] = bytes[i][1] = zero;
    for (std::int64_t p = p0; p < p1; ++p) {
      const std::uint64_t* ap = a + p * kMR;
      const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + p * kNR));
      const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + p * kNR + 4));
      for (int i = 0; i < kMR; ++i) {
        const __m256i av = _mm256_set1_epi64x(static_cast<long long>(ap[i]));
        const __m256i x0 = _mm256_xor_si256(av, b0), x1 = _mm256_xor_si256(av, b1);
        const __m256i n0 = _mm256_add_epi8(_mm256_shuffle_epi8(lookup, _mm256_and_si256(x0, low)),
                                           _mm256_shuffle_epi8(lookup, _mm256_and_si256(_mm256_srli_epi16(x0, 4), low)));
        const __m256i n1 = _mm256_add_epi8(_mm256_shuffle_epi8(lookup, _mm256_and_si256(x1, low)),
                                           _mm256_shuffle_epi8(lookup, _mm256_and_si256(_mm256_srli_epi16(x1, 4), low)));
        bytes[i][0] = _mm256_add_epi8(bytes[i][0], n0);
        bytes[i][1] = _mm256_add_epi8(bytes[i][1], n1);
      }
    }
    for (int i = 0; i < kMR; ++i)
      for (int h = 0; h < 2; ++h) total[i][h] = _mm256_add_epi64(total[i][h], _mm256_sad_epu8(bytes[i][h], zero));
  }
  for (int i = 0; i < kMR; ++i) {
    alignas(32) std::int64_t lanes[kNR];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), total[i][0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 4), total[i][1]);
    std::int32_t* ci = c + i * ldc;
    for (int j = 0; j < kNR; ++j) {
      const auto v = static_cast<std::int32_t>(lanes[j]);
      ci[j] = accumulate ? ci[j] + v : v;
    }
  }
}

// Filled by member name (see core/dispatch.hpp).
const GemmKernels<GemmXnor> kTable = [] {
  GemmKernels<GemmXnor> t{};
  t.name = "xnor_4x8_avx2";
  t.mr = kMR;
  t.nr = kNR;
  t.k_group = 8;
  t.tile = gemm_xnor_4x8;
  return t;
}();

}  // namespace

const GemmKernels<GemmXnor>& gemm_xnor_4x8_avx2() { return kTable; }

}  // namespace keensight::detail
