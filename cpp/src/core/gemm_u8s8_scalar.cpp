// Portable reference u8 x s8 -> s32 GEMM tile (the reference in tests): four
// coordinates a packed word (byte t = coordinate 4p + t, A unsigned, B
// signed), as vpdpbusd reads them. Exact: int32 sums of products of at most
// 255 * 128 (core/gemm.hpp bounds k).
#include <cstdint>

#include "core/gemm.hpp"

namespace keensight::detail {
namespace {

constexpr int kMR = 6, kNR = 16;

void gemm_u8s8_6x16(std::int64_t kc, const std::uint32_t* a, const std::uint32_t* b, std::int32_t* c,
                    std::int64_t ldc, bool accumulate) {
  std::int32_t acc[kMR][kNR] = {};
  for (std::int64_t p = 0; p < kc; ++p, a += kMR, b += kNR)
    for (int i = 0; i < kMR; ++i)
      for (int t = 0; t < 4; ++t) {
        const std::int32_t av = static_cast<std::uint8_t>(a[i] >> (8 * t));
        for (int j = 0; j < kNR; ++j) acc[i][j] += av * static_cast<std::int8_t>(static_cast<std::uint8_t>(b[j] >> (8 * t)));
      }
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNR; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

// Filled by member name (see core/dispatch.hpp).
const GemmKernels<GemmU8S8> kTable = [] {
  GemmKernels<GemmU8S8> t{};
  t.name = "u8s8_6x16_scalar";
  t.mr = kMR;
  t.nr = kNR;
  t.k_group = 4;
  t.tile = gemm_u8s8_6x16;
  return t;
}();

}  // namespace

const GemmKernels<GemmU8S8>& gemm_u8s8_6x16_scalar() { return kTable; }

}  // namespace keensight::detail
