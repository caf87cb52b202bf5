// AVX-512 f32 GEMM tile (compiled with the AVX-512 flags; selected at run time
// only on CPUs and OSes with AVX-512 F/BW/DQ/VL).
//
// Each product sums its slice's terms in coordinate order with one FMA each,
// as the AVX2 6x16 tile does, and the driver's slice is the same (kGemmKC):
// every value is bit-identical to the AVX2 table's, so k-NN, PCA, HNSW and the
// sequential classifier give the same results at both levels (and k-NN's
// error bound holds unchanged). The k-NN helpers are the AVX2 ones (the B
// panels of 32 rows are packed by the same code as the 16-row ones).
#include <immintrin.h>

#include "core/gemm.hpp"

namespace keensight::detail {
namespace {

constexpr int kMR = 12, kNR = 32;
constexpr int kPrefetchAhead = 64;  // coordinates of B ahead (tile_rows_fused)

// 12 x 32 register tile: 24 zmm accumulators + 2 B vectors + 1 broadcast of
// the 32 registers (BLIS's SkylakeX sgemm budget, transposed). Per
// coordinate: 2 B loads, 12 broadcasts, 24 FMAs: 12 cycles of the two FMA
// ports against 14 loads, and 24 independent chains cover the FMA latency.
// A(i, p) is a[p * kMR + i] (packed panel) or a[i * lda + p] (plain rows).
template <bool kPacked>
inline void tile_12x32_impl(std::int64_t kc, const float* a, std::int64_t lda, const float* b, float* c,
                            std::int64_t ldc, bool accumulate) {
  __m512 acc[kMR][2];
#pragma GCC unroll 12
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (std::int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
    for (int i = 0; i < kMR; ++i) {
      const __m512 av = _mm512_set1_ps(kPacked ? a[i] : a[i * lda + p]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
    if (kPacked) a += kMR;
    b += kNR;
  }
#pragma GCC unroll 12
  for (int i = 0; i < kMR; ++i) {
    float* ci = c + i * ldc;
    __m512 lo = acc[i][0], hi = acc[i][1];
    if (accumulate) {
      lo = _mm512_add_ps(lo, _mm512_loadu_ps(ci));
      hi = _mm512_add_ps(hi, _mm512_loadu_ps(ci + 16));
    }
    _mm512_storeu_ps(ci, lo);
    _mm512_storeu_ps(ci + 16, hi);
  }
}

void gemm_f32_12x32(std::int64_t kc, const float* a, const float* b, float* c, std::int64_t ldc, bool accumulate) {
  tile_12x32_impl<true>(kc, a, 0, b, c, ldc, accumulate);
}

void tile_rows_12x32(std::int64_t kc, const float* a, std::int64_t lda, const float* b, float* c, std::int64_t ldc,
                     bool accumulate) {
  tile_12x32_impl<false>(kc, a, lda, b, c, ldc, accumulate);
}

// The 12 x 32 tile at the edges of C with the epilogue in registers, as R x 32
// for the R = rows it has (a 1-row dense layer does 1/12 of the FMAs of a full
// tile); columns past `cols` are masked off the loads of C / bias / residual
// and the stores. Every kept value is the same sequence of FMAs as in the full
// tile, whatever R.
template <int R, bool kHalf>
void tile_rows_fused_r(std::int64_t kc, const float* a, std::int64_t lda, const float* b, float* c, std::int64_t ldc,
                       int cols, bool accumulate, const TileEpilogue* ep) {
  // kHalf: at most 16 columns (the last panel of a layer with 16, 40, 80 or 112
  // output channels): one vector of B per coordinate, half the FMAs.
  constexpr int V = kHalf ? 1 : 2;
  __m512 acc[R][V];
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < V; ++v) acc[i][v] = _mm512_setzero_ps();
  for (std::int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_loadu_ps(b);
    const __m512 b1 = kHalf ? b0 : _mm512_loadu_ps(b + 16);
    // Inside a network a layer's packed weights come from L3 or memory (Lite0 has
    // 19 MB of them): fetch the panel 64 coordinates (8 KiB) ahead. Measured on
    // Lite0 at 1 thread (Intel Xeon, AVX-512): ~5% less time end to end, the dense
    // layer 0.50 -> 0.42 ms; 32..128 ahead within noise of each other. (A prefetch
    // past the panel's end touches the next panel or nothing: it never faults.)
    _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchAhead * kNR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchAhead * kNR + 16), _MM_HINT_T0);
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + p]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      if (!kHalf) acc[i][V - 1] = _mm512_fmadd_ps(av, b1, acc[i][V - 1]);
    }
    b += kNR;
  }
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1);
  __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps(), lo = _mm512_setzero_ps(), hi = lo;
  if (ep) {
    if (ep->bias) {
      bias0 = _mm512_maskz_loadu_ps(m0, ep->bias);
      if (!kHalf) bias1 = _mm512_maskz_loadu_ps(m1, ep->bias + 16);
    }
    lo = _mm512_set1_ps(ep->lo);
    hi = _mm512_set1_ps(ep->hi);
  }
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i) {
    float* ci = c + i * ldc;
    __m512 v0 = acc[i][0];
    if (accumulate) v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), v0);
    if (ep) {
      if (ep->bias) v0 = _mm512_add_ps(v0, bias0);
      if (ep->residual) v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ep->residual + i * ep->ld_residual));
      v0 = _mm512_min_ps(hi, _mm512_max_ps(lo, v0));
    }
    _mm512_mask_storeu_ps(ci, m0, v0);
    if (!kHalf) {
      __m512 v1 = acc[i][V - 1];
      if (accumulate) v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), v1);
      if (ep) {
        if (ep->bias) v1 = _mm512_add_ps(v1, bias1);
        if (ep->residual) v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ep->residual + i * ep->ld_residual + 16));
        v1 = _mm512_min_ps(hi, _mm512_max_ps(lo, v1));
      }
      _mm512_mask_storeu_ps(ci + 16, m1, v1);
    }
  }
}

void tile_rows_fused_12x32(std::int64_t kc, const float* a, std::int64_t lda, int rows, const float* b, float* c,
                           std::int64_t ldc, int cols, bool accumulate, const TileEpilogue* ep) {
  switch (rows) {
#define KS_ROWS(R)                                                               \
  case R:                                                                        \
    return cols <= 16 ? tile_rows_fused_r<R, true>(kc, a, lda, b, c, ldc, cols, accumulate, ep) \
                      : tile_rows_fused_r<R, false>(kc, a, lda, b, c, ldc, cols, accumulate, ep);
    KS_ROWS(1) KS_ROWS(2) KS_ROWS(3) KS_ROWS(4) KS_ROWS(5) KS_ROWS(6)
    KS_ROWS(7) KS_ROWS(8) KS_ROWS(9) KS_ROWS(10) KS_ROWS(11) KS_ROWS(12)
#undef KS_ROWS
    default: return;
  }
}

}  // namespace

const GemmF32Kernels& gemm_f32_12x32_avx512() {
  static const GemmF32Kernels table = [] {
    GemmF32Kernels t = gemm_f32_6x16_avx2();
    t.name = "f32_12x32_avx512";
    t.mr = kMR;
    t.nr = kNR;
    t.tile = gemm_f32_12x32;
    t.tile_rows = tile_rows_12x32;
    t.tile_rows_fused = tile_rows_fused_12x32;
    t.pack_panel_b = gemm_f32_pack_panel_b32_avx2;
    return t;
  }();
  return table;
}

}  // namespace keensight::detail
