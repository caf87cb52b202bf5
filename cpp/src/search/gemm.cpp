#include "search/gemm.hpp"

#include <vector>

namespace keensight::search::detail {

// Reads the panel's rows side by side and writes the panel sequentially: each
// destination line is written once (row by row, every line would be touched r
// times at a stride of r floats).
void pack_panels(const float* src, std::int64_t ld, std::int64_t rows, std::int64_t k, int r,
                 const float* scale, const float* offset, float* dst) {
  constexpr int kMaxR = 64;
  if (r > kMaxR) throw ValueError("pack_panels: panel height above 64");
  const std::int64_t panels = (rows + r - 1) / r;
  const float* row[kMaxR];
  float factor[kMaxR];
  for (std::int64_t p = 0; p < panels; ++p) {
    float* panel = dst + p * r * k;
    const int valid = static_cast<int>(std::min<std::int64_t>(r, rows - p * r));
    for (int i = 0; i < valid; ++i) {
      row[i] = src + (p * r + i) * ld;
      factor[i] = scale ? scale[p * r + i] : 1.f;
    }
    if (valid == r && !scale && !offset) {
      for (std::int64_t j = 0; j < k; ++j, panel += r)
        for (int i = 0; i < r; ++i) panel[i] = row[i][j];
      continue;
    }
    for (std::int64_t j = 0; j < k; ++j, panel += r) {
      const float off = offset ? offset[j] : 0.f;
      for (int i = 0; i < valid; ++i) panel[i] = (row[i][j] - off) * factor[i];
      for (int i = valid; i < r; ++i) panel[i] = 0.f;
    }
  }
}

// Equal coordinate slices of at most kGemmKC (784 = 4 x 196, not 3 x 256 + 16:
// a short last slice would pay the tile's fixed cost for few FMAs).
std::int64_t gemm_slice_length(std::int64_t k) {
  const std::int64_t slices = (k + kGemmKC - 1) / kGemmKC;
  return (k + slices - 1) / slices;
}

// Loop order (outer to inner): coordinate slice, B panel, A panel. One B panel
// slice is reused from L1 by all A panels of the block; the A block's slice is
// reused from L2 by all B panels.
void gemm_packed(const GemmKernels& kern, const float* a, std::int64_t m, const float* b, std::int64_t n,
                 std::int64_t k, float* c, std::int64_t ldc) {
  const int mr = kern.mr, nr = kern.nr;
  const std::int64_t a_panels = (m + mr - 1) / mr, b_panels = (n + nr - 1) / nr;
  const std::int64_t slice = gemm_slice_length(k);
  for (std::int64_t pc = 0; pc < k; pc += slice) {
    const std::int64_t kc = std::min(slice, k - pc);
    for (std::int64_t jr = 0; jr < b_panels; ++jr) {
      const float* bp = b + jr * nr * k + pc * nr;
      for (std::int64_t ir = 0; ir < a_panels; ++ir)
        kern.tile(kc, a + ir * mr * k + pc * mr, bp, c + ir * mr * ldc + jr * nr, ldc, pc > 0);
    }
  }
}

void gemm_rows(const GemmKernels& kern, const float* a, std::int64_t lda, std::int64_t m, const float* b,
               std::int64_t n, std::int64_t k, float* c, std::int64_t ldc) {
  const int mr = kern.mr, nr = kern.nr;
  const std::int64_t whole = m / mr, rest = m - whole * mr;
  const std::int64_t b_panels = (n + nr - 1) / nr;
  std::vector<float> tail;  // the last m % mr rows, zero-padded to a whole tile
  if (rest > 0) {
    tail.assign(static_cast<std::size_t>(mr * k), 0.f);
    for (std::int64_t i = 0; i < rest; ++i)
      std::copy(a + (whole * mr + i) * lda, a + (whole * mr + i) * lda + k, tail.begin() + i * k);
  }
  const std::int64_t slice = gemm_slice_length(k);
  for (std::int64_t pc = 0; pc < k; pc += slice) {
    const std::int64_t kc = std::min(slice, k - pc);
    for (std::int64_t jr = 0; jr < b_panels; ++jr) {
      const float* bp = b + jr * nr * k + pc * nr;
      for (std::int64_t ir = 0; ir < whole; ++ir)
        kern.tile_rows(kc, a + ir * mr * lda + pc, lda, bp, c + ir * mr * ldc + jr * nr, ldc, pc > 0);
      if (rest > 0) kern.tile_rows(kc, tail.data() + pc, k, bp, c + whole * mr * ldc + jr * nr, ldc, pc > 0);
    }
  }
}

}  // namespace keensight::search::detail
