// Internal: the GEMM leaf kernels of the search area and their per-ISA table.
//
//   tile      C[mr x nr] (= or +=) A·Bᵀ over kc coordinates, from packed panels:
//             A panel [kc][mr] (mr rows interleaved per coordinate), B panel
//             [kc][nr]. The register-blocked microkernel of k-NN and PCA.
//   tile_rows the same tile with A read from mr plain rows (stride lda).
//   bias_scale_min / bias_scale_argmin
//             out[j] = bias[j] + scale * dots[j] over a row, returns the minimum:
//             turns a row of dot products into ranking distances (l2: ||b||^2 -
//             2 q.b; ip / cosine: -q.b) and lets the top-k pass skip a row whose
//             best value cannot enter the heap.
//   pack_panel_b
//             one B panel from nr rows (a transpose), optionally shifted by an
//             offset row (k-NN centres l2 data near the origin), with the packed
//             rows' squared norms from the same read: the one pass over the
//             base per search.
//
// Operators (search/gemm.hpp, knn.cpp, pca.cpp) pack panels, block and thread;
// the kernels only compute. Each ISA variant is its own translation unit.
#pragma once

#include <cstdint>

#include "keensight/core.hpp"

namespace keensight::search::detail {

struct GemmKernels {
  int mr;  // rows of A per tile (queries: broadcast operand)
  int nr;  // rows of B per tile (base rows: vector operand), a multiple of 8
  // c has ldc >= nr floats per row; `accumulate` adds to c instead of overwriting.
  // a and b are 32-byte aligned.
  void (*tile)(std::int64_t kc, const float* a, const float* b, float* c, std::int64_t ldc, bool accumulate);
  // The same with A unpacked: mr rows of a row-major matrix, lda floats apart
  // (for PCA, where packing the many input rows would cost a third of the FMAs).
  void (*tile_rows)(std::int64_t kc, const float* a, std::int64_t lda, const float* b, float* c, std::int64_t ldc,
                    bool accumulate);
  float (*bias_scale_min)(const float* dots, const float* bias, float scale, std::int64_t n, float* out);
  // The minimum of bias[j] + scale * dots[j] (same arithmetic as bias_scale_min)
  // and, only when it is below `bound`, the first j reaching it (*index is
  // otherwise left alone), without storing the values: the sequential
  // classifier's first granule needs only each class's best reference, and
  // most blocks of a class do not beat the best of the blocks before.
  float (*bias_scale_argmin)(const float* dots, const float* bias, float scale, std::int64_t n, float bound,
                             std::int64_t* index);
  // Packs nr rows (rows[i] null: a zero row) of k floats into one B panel
  // dst[j * nr + i] = rows[i][j] - offset[j] (offset nullable: 0); sq_norms
  // (nullable) gets each packed row's sum of squares, computed the same way for
  // a row whatever its slot, as eight partial sums (a summation depth of at
  // most k / 8 + 8: k-NN's error bound relies on it). A zero row stays zero.
  void (*pack_panel_b)(const float* const* rows, std::int64_t k, const float* offset, float* dst,
                       float* sq_norms);
};

const GemmKernels& gemm_kernels_scalar();
#ifdef KEENSIGHT_HAVE_AVX2
const GemmKernels& gemm_kernels_avx2();
#endif

// The table the kernels use now (core/dispatch.hpp), and the table `isa` falls back
// to along its chain (selected in search/dispatch.cpp).
const GemmKernels& gemm_kernels();
const GemmKernels& gemm_kernels(Isa isa);

}  // namespace keensight::search::detail
