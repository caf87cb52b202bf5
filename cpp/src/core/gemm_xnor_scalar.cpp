// Portable reference XNOR GEMM tile (the reference in tests): C counts the
// differing bits of each pair of rows, 64 a packed word; the driver turns the
// count into the ±1 dot product k - 2 popcount(a XOR b) (core/gemm.hpp).
#include <cstdint>

#include "core/gemm.hpp"

namespace keensight::detail {
namespace {

constexpr int kMR = 6, kNR = 16;

// Bit count by the SWAR reduction of "Hacker's Delight" (H. S. Warren, 2nd
// ed., §5-1), portable to any compiler; the SIMD tiles count with vpshufb or
// vpopcntq.
inline std::int32_t popcount64(std::uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ULL);
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  return static_cast<std::int32_t>((x * 0x0101010101010101ULL) >> 56);
}

void gemm_xnor_6x16(std::int64_t kc, const std::uint64_t* a, const std::uint64_t* b, std::int32_t* c,
                    std::int64_t ldc, bool accumulate) {
  std::int32_t acc[kMR][kNR] = {};
  for (std::int64_t p = 0; p < kc; ++p, a += kMR, b += kNR)
    for (int i = 0; i < kMR; ++i)
      for (int j = 0; j < kNR; ++j) acc[i][j] += popcount64(a[i] ^ b[j]);
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNR; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

// Filled by member name (see core/dispatch.hpp).
const GemmKernels<GemmXnor> kTable = [] {
  GemmKernels<GemmXnor> t{};
  t.name = "xnor_6x16_scalar";
  t.mr = kMR;
  t.nr = kNR;
  t.k_group = 8;
  t.tile = gemm_xnor_6x16;
  return t;
}();

}  // namespace

const GemmKernels<GemmXnor>& gemm_xnor_6x16_scalar() { return kTable; }

}  // namespace keensight::detail
