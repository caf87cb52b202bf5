// Internal: the blocked A·Bᵀ driver shared by exact k-NN (knn.cpp) and the PCA
// projection (pca.cpp): panel packing, cache blocking, and the loop nest that
// calls the register-tile kernel of search/gemm_kernels.hpp.
//
// The blocking follows Goto & van de Geijn, "Anatomy of high-performance matrix
// multiplication" (ACM TOMS 2008): the coordinates are cut into kc-long slices;
// for one slice, a B panel slice (kc x nr, base rows) stays in L1 while every A
// panel slice of the block (mc x kc, queries) streams past it from L2; C (the
// dot products) is accumulated slice by slice in a small buffer. Both operands
// are packed into panels so that the kernel reads them with unit stride.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "core/buffer.hpp"
#include "search/gemm_kernels.hpp"

namespace keensight::search::detail {

// kc: 256 coordinates. The kernel's B slice is then 256 x 16 floats = 16 KiB,
// which stays in a 32 KiB L1 beside the A and C lines streaming through; a
// longer slice risks spilling it, a shorter one re-reads and re-writes the C
// tile more often (each tile call has ~30 cycles of fixed cost against 1536 of
// FMAs at kc = 256). Every value's summation order depends on kc only (fixed), never on
// how rows are split into blocks or threads.
constexpr std::int64_t kGemmKC = 256;
// mc: A rows per block. The block's kc slice (48 x 256 floats = 48 KiB) stays
// in L2 (512 KiB on Zen 3) while the B panels of a base block pass by; blocks
// of 24..96 rows measured within noise of each other, 48 a few % ahead.
constexpr std::int64_t kGemmMC = 48;
// Bytes of packed B (base rows x all coordinates) per block: 3 MiB (~600 rows
// at 1280-d), packed once and then read from L3 by every query block. Larger
// blocks stream the packed queries from L3 / memory fewer times: 1 MiB blocks
// measured ~4% slower at 2k x 30k x 1280, 6 MiB no better.
constexpr std::int64_t kGemmBlockBytes = std::int64_t{3} << 20;

// The packed panels live in the core aligned buffer.
using AlignedFloats = keensight::detail::AlignedBuffer<float>;

inline std::int64_t round_up(std::int64_t x, std::int64_t m) { return (x + m - 1) / m * m; }

// Floats of `rows` rows packed in panels of `rows_per_panel`, k coordinates each.
inline std::int64_t packed_size(std::int64_t rows, std::int64_t k, int rows_per_panel) {
  return round_up(rows, rows_per_panel) * k;
}

// Packs `rows` rows of src (row stride ld) into panels of r rows: panel p holds
// rows [p*r, p*r + r) interleaved per coordinate, dst[p*r*k + j*r + i] =
// (src[p*r + i][j] - offset[j]) * scale[p*r + i]; rows past `rows` are zero.
// offset and scale may be null (0 and 1).
void pack_panels(const float* src, std::int64_t ld, std::int64_t rows, std::int64_t k, int r,
                 const float* scale, const float* offset, float* dst);

// c[i][j] = sum_p a[i][p] * b[j][p] for packed a (m rows, panels of mr) and
// packed b (n rows, panels of nr); c has round_up(m, mr) rows of ldc >=
// round_up(n, nr) floats (whole tiles are written; pad rows/columns are junk).
void gemm_packed(const GemmKernels& kern, const float* a, std::int64_t m, const float* b, std::int64_t n,
                 std::int64_t k, float* c, std::int64_t ldc);

// The same with A as m plain rows of a row-major matrix (stride lda), unpacked:
// for many rows against few B rows (PCA), where packing A would cost about as
// much as the products. Rows past the last whole tile go through a small
// zero-padded copy.
void gemm_rows(const GemmKernels& kern, const float* a, std::int64_t lda, std::int64_t m, const float* b,
               std::int64_t n, std::int64_t k, float* c, std::int64_t ldc);

// The coordinate slice gemm_packed and gemm_rows use for k coordinates: equal
// slices of at most kGemmKC. Each product sums its slice's terms in sequence
// and then adds the slices: a summation depth of slice + ceil(k / slice).
std::int64_t gemm_slice_length(std::int64_t k);

// Base rows per block of packed B for dim coordinates: about kGemmBlockBytes,
// a multiple of nr.
inline std::int64_t gemm_block_rows(std::int64_t dim, int nr) {
  const std::int64_t rows = kGemmBlockBytes / (dim * static_cast<std::int64_t>(sizeof(float)));
  return std::max<std::int64_t>(nr, rows / nr * nr);
}

}  // namespace keensight::search::detail
