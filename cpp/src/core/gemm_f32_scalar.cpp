// Portable reference f32 GEMM kernels (the reference in tests): the 6x16 tile
// and the k-NN helpers of core/gemm.hpp's GemmF32Kernels.
#include <algorithm>
#include <limits>

#include "core/gemm.hpp"

namespace keensight::detail {
namespace {

constexpr int kMR = 6, kNR = 16;

// The same 6x16 tile as the AVX2 kernel, one coordinate at a time: each of the
// 96 sums accumulates in coordinate order, as the SIMD lanes do. A(i, p) is
// a[p * kMR + i] (packed) or a[i * lda + p] (rows).
template <bool kPacked>
void tile_6x16_impl(std::int64_t kc, const float* a, std::int64_t lda, const float* b, float* c, std::int64_t ldc,
                    bool accumulate) {
  float acc[kMR][kNR] = {};
  for (std::int64_t p = 0; p < kc; ++p) {
    const float* bp = b + p * kNR;
    for (int i = 0; i < kMR; ++i) {
      const float ai = kPacked ? a[p * kMR + i] : a[i * lda + p];
      for (int j = 0; j < kNR; ++j) acc[i][j] += ai * bp[j];
    }
  }
  for (int i = 0; i < kMR; ++i) {
    float* ci = c + i * ldc;
    for (int j = 0; j < kNR; ++j) ci[j] = accumulate ? ci[j] + acc[i][j] : acc[i][j];
  }
}

void gemm_f32_6x16(std::int64_t kc, const float* a, const float* b, float* c, std::int64_t ldc, bool accumulate) {
  tile_6x16_impl<true>(kc, a, 0, b, c, ldc, accumulate);
}

void tile_rows_6x16(std::int64_t kc, const float* a, std::int64_t lda, const float* b, float* c, std::int64_t ldc,
                    bool accumulate) {
  tile_6x16_impl<false>(kc, a, lda, b, c, ldc, accumulate);
}

// The 6x16 tile at the edges with the epilogue: the same sums (coordinate
// order, one product and one addition each), then bias, residual and clamp.
void tile_rows_fused_6x16(std::int64_t kc, const float* a, std::int64_t lda, int rows, const float* b, float* c,
                          std::int64_t ldc, int cols, bool accumulate, const TileEpilogue* ep) {
  float acc[kMR][kNR] = {};
  for (std::int64_t p = 0; p < kc; ++p) {
    const float* bp = b + p * kNR;
    for (int i = 0; i < rows; ++i) {
      const float ai = a[i * lda + p];
      for (int j = 0; j < kNR; ++j) acc[i][j] += ai * bp[j];
    }
  }
  for (int i = 0; i < rows; ++i) {
    float* ci = c + i * ldc;
    for (int j = 0; j < cols; ++j) {
      float v = accumulate ? ci[j] + acc[i][j] : acc[i][j];
      if (ep) {
        if (ep->bias) v += ep->bias[j];
        if (ep->residual) v += ep->residual[i * ep->ld_residual + j];
        v = v < ep->lo ? ep->lo : (v > ep->hi ? ep->hi : v);  // NaN stays NaN
      }
      ci[j] = v;
    }
  }
}

float bias_scale_min(const float* dots, const float* bias, float scale, std::int64_t n, float* out) {
  float best = std::numeric_limits<float>::infinity();
  for (std::int64_t j = 0; j < n; ++j) {
    const float v = bias[j] + scale * dots[j];
    out[j] = v;
    best = std::min(best, v);
  }
  return best;
}

void pack_panel_b(const float* const* rows, std::int64_t k, const float* offset, float* dst, float* sq_norms) {
  for (int i = 0; i < kNR; ++i) {
    const float* row = rows[i];
    float sum[8] = {};  // eight partial sums, as the SIMD tables: the error bound of k-NN assumes it
    for (std::int64_t j = 0; j < k; ++j) {
      const float v = row ? (offset ? row[j] - offset[j] : row[j]) : 0.f;
      dst[j * kNR + i] = v;
      sum[j % 8] += v * v;
    }
    if (sq_norms) sq_norms[i] = ((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7]));
  }
}

float bias_scale_argmin(const float* dots, const float* bias, float scale, std::int64_t n, float bound,
                        std::int64_t* index) {
  float best = std::numeric_limits<float>::infinity();
  std::int64_t at = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    const float v = bias[j] + scale * dots[j];
    if (v < best) {
      best = v;
      at = j;
    }
  }
  if (best < bound) *index = at;
  return best;
}

// Filled by member name (see core/dispatch.hpp).
const GemmF32Kernels kTable = [] {
  GemmF32Kernels t{};
  t.name = "f32_6x16_scalar";
  t.mr = kMR;
  t.nr = kNR;
  t.k_group = 1;
  t.tile = gemm_f32_6x16;
  t.tile_rows = tile_rows_6x16;
  t.bias_scale_min = bias_scale_min;
  t.bias_scale_argmin = bias_scale_argmin;
  t.pack_panel_b = pack_panel_b;
  t.tile_rows_fused = tile_rows_fused_6x16;
  return t;
}();

}  // namespace

const GemmF32Kernels& gemm_f32_6x16_scalar() { return kTable; }

}  // namespace keensight::detail
