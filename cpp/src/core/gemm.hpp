// Internal: the one blocked GEMM driver of keensight, C = A·Bᵀ (A: m rows of k,
// B: n rows of k, both row-major), templated on the operand and accumulator
// types:
//
//   GemmF32   float x float -> float      k-NN, PCA, HNSW rotations, pointwise convolution
//   GemmU8S8  uint8 x int8 -> int32       quantized layers (exact)
//   GemmXnor  bits x bits -> int32        XNOR-Net: dot of ±1 vectors = k - 2 popcount(a XOR b)
//
// One packing, cache blocking and threading code path serves all three; only
// the register-tile kernels differ, per type and ISA, in their own translation
// units (core/gemm_<op>_<isa>.cpp, XNNPACK style). The driver contains no SIMD.
//
// The blocking follows Goto & van de Geijn, "Anatomy of high-performance matrix
// multiplication" (ACM TOMS 2008): the coordinates are cut into kc-long slices;
// for one slice, a B panel slice (kc x nr) stays in L1 while every A panel
// slice of the block (mc x kc) streams past it from L2; C is accumulated slice
// by slice in a small buffer. Both operands are packed into panels so that the
// kernel reads them with unit stride.
//
// Panels hold "packed elements": a float (f32), four bytes of consecutive
// coordinates in one 32-bit word (u8s8 for vpdpbusd and the scalar tile), two
// coordinates widened to int16 in one 32-bit word (u8s8 for AVX2's vpmaddwd),
// or 64 bits (xnor). A kernel table says how many source values go in one
// element (k_group); the packing code is the same for every type.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/buffer.hpp"
#include "core/parallel.hpp"
#include "keensight/core.hpp"

namespace keensight::detail {

// ---------------------------------------------------------------------------
// Operand types

struct GemmF32 {
  using A = float;  // source values of A and B
  using B = float;
  using PackedA = float;  // panel elements
  using PackedB = float;
  using Acc = float;
  // Source values per row for k coordinates.
  static std::int64_t source_length(std::int64_t k) { return k; }
  static Acc finish(Acc v, std::int64_t) { return v; }
};

struct GemmU8S8 {
  using A = std::uint8_t;
  using B = std::int8_t;
  using PackedA = std::uint32_t;
  using PackedB = std::uint32_t;
  using Acc = std::int32_t;
  static std::int64_t source_length(std::int64_t k) { return k; }
  static Acc finish(Acc v, std::int64_t) { return v; }
  // |sum| <= k * 255 * 128 must fit in int32.
  static constexpr std::int64_t kMaxK = std::int64_t{2147483647} / (255 * 128);
};

// Rows of k bits, 8 a byte (bit j of a row is in byte j / 8; bits past k zero).
struct GemmXnor {
  using A = std::uint8_t;
  using B = std::uint8_t;
  using PackedA = std::uint64_t;
  using PackedB = std::uint64_t;
  using Acc = std::int32_t;  // the kernels count differing bits; finish() makes the ±1 dot
  static std::int64_t source_length(std::int64_t k) { return (k + 7) / 8; }
  // Rastegari et al., "XNOR-Net" (ECCV 2016), §3.2: for ±1 vectors of k
  // entries, a·b = (agreements) - (disagreements) = k - 2 popcount(a XOR b).
  static Acc finish(Acc differing, std::int64_t k) { return static_cast<Acc>(k - 2 * std::int64_t{differing}); }
};

// ---------------------------------------------------------------------------
// Kernel tables (one per type and ISA; see core/gemm_kernels.cpp)

template <class T>
struct GemmKernels {
  using Types = T;
  using PackedA = typename T::PackedA;
  using PackedB = typename T::PackedB;
  using Acc = typename T::Acc;
  const char* name;  // op_tile_isa, e.g. "f32_6x16_avx2"
  int mr;            // rows of A per tile (broadcast operand)
  int nr;            // rows of B per tile (vector operand)
  int k_group;       // source values per packed element
  // C[mr x nr] (= or +=) A·Bᵀ over kc packed elements, from an A panel
  // [kc][mr] and a B panel [kc][nr]; c has ldc >= nr values per row.
  // `accumulate` adds to c instead of overwriting. a and b are 32-byte aligned.
  void (*tile)(std::int64_t kc, const PackedA* a, const PackedB* b, Acc* c, std::int64_t ldc, bool accumulate);
};

// The in-register epilogue of tile_rows_fused, for one tile: bias (nr values
// of the tile's columns), residual (rows of ld_residual floats, the tile's
// first element first), then the clamp.
struct TileEpilogue {
  const float* bias = nullptr;
  const float* residual = nullptr;
  std::int64_t ld_residual = 0;
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
};

// f32 adds what k-NN, PCA, the sequential classifier and HNSW use.
struct GemmF32Kernels : GemmKernels<GemmF32> {
  // The tile with A unpacked: mr rows of a row-major matrix, lda floats apart
  // (for PCA, where packing the many input rows would cost a third of the FMAs).
  void (*tile_rows)(std::int64_t kc, const float* a, std::int64_t lda, const float* b, float* c, std::int64_t ldc,
                    bool accumulate);
  // out[j] = bias[j] + scale * dots[j] over a row; returns the minimum: turns a
  // row of dot products into ranking distances (l2: ||b||^2 - 2 q.b; ip /
  // cosine: -q.b) and lets the top-k pass skip a row whose best value cannot
  // enter the heap.
  float (*bias_scale_min)(const float* dots, const float* bias, float scale, std::int64_t n, float* out);
  // The minimum of bias[j] + scale * dots[j] (same arithmetic as bias_scale_min)
  // and, only when it is below `bound`, the first j reaching it (*index is
  // otherwise left alone), without storing the values: the sequential
  // classifier's first granule needs only each class's best reference.
  float (*bias_scale_argmin)(const float* dots, const float* bias, float scale, std::int64_t n, float bound,
                             std::int64_t* index);
  // Packs nr rows (rows[i] null: a zero row) of k floats into one B panel
  // dst[j * nr + i] = rows[i][j] - offset[j] (offset nullable: 0); sq_norms
  // (nullable) gets each packed row's sum of squares, computed the same way for
  // a row whatever its slot, as eight partial sums (a summation depth of at
  // most k / 8 + 8: k-NN's error bound relies on it). A zero row stays zero.
  void (*pack_panel_b)(const float* const* rows, std::int64_t k, const float* offset, float* dst, float* sq_norms);
  // The tile_rows tile at the edges of C and with the epilogue in registers
  // (pointwise convolution, core/gemm.hpp's gemm_rows_fused): only `rows` <= mr
  // rows of A are read (row i at a + i * lda) and only `rows` x `cols` (<= nr)
  // values of C are written; when `ep` is given (on a product's last slice),
  // each value becomes clamp(acc + bias[j] + residual[i][j], lo, hi) before it
  // is stored (bias / residual null: skipped).
  void (*tile_rows_fused)(std::int64_t kc, const float* a, std::int64_t lda, int rows, const float* b, float* c,
                          std::int64_t ldc, int cols, bool accumulate, const TileEpilogue* ep);
};

// The table for the active ISA level, and for a given level (core/gemm_kernels.cpp).
const GemmF32Kernels& gemm_f32_kernels();
const GemmF32Kernels& gemm_f32_kernels(Isa isa);
const GemmKernels<GemmU8S8>& gemm_u8s8_kernels();
const GemmKernels<GemmU8S8>& gemm_u8s8_kernels(Isa isa);
const GemmKernels<GemmXnor>& gemm_xnor_kernels();
const GemmKernels<GemmXnor>& gemm_xnor_kernels(Isa isa);
// Per-ISA tables (each in its own translation unit, compiled with its flags).
const GemmF32Kernels& gemm_f32_6x16_scalar();
const GemmF32Kernels& gemm_f32_6x16_avx2();
const GemmF32Kernels& gemm_f32_12x32_avx512();
// The AVX2 B-panel packing for 32-row panels (the AVX-512 table's).
void gemm_f32_pack_panel_b32_avx2(const float* const* rows, std::int64_t k, const float* offset, float* dst,
                                  float* sq_norms);
const GemmKernels<GemmU8S8>& gemm_u8s8_6x16_scalar();
const GemmKernels<GemmU8S8>& gemm_u8s8_6x16_avx2();
const GemmKernels<GemmU8S8>& gemm_u8s8_6x16_avx2_vnni();
const GemmKernels<GemmU8S8>& gemm_u8s8_12x32_avx512_vnni();
const GemmKernels<GemmXnor>& gemm_xnor_6x16_scalar();
const GemmKernels<GemmXnor>& gemm_xnor_4x8_avx2();
const GemmKernels<GemmXnor>& gemm_xnor_8x16_avx512_vpopcntdq();
// Every table of a type this build has and this CPU can run (tests call each).
std::vector<const GemmKernels<GemmF32>*> gemm_f32_variants();
std::vector<const GemmKernels<GemmU8S8>*> gemm_u8s8_variants();
std::vector<const GemmKernels<GemmXnor>*> gemm_xnor_variants();

// ---------------------------------------------------------------------------
// Blocking constants

// kc for f32: 256 coordinates. The kernel's B slice is then 256 x 16 floats =
// 16 KiB, which stays in a 32 KiB L1 beside the A and C lines streaming
// through; a longer slice risks spilling it, a shorter one re-reads and
// re-writes the C tile more often (each tile call has ~30 cycles of fixed cost
// against 1536 of FMAs at kc = 256). Every f32 value's summation order depends
// on kc only (fixed), never on the tile, the blocks or the threads: k-NN's
// error bound (search/knn.cpp) relies on it.
constexpr std::int64_t kGemmKC = 256;
// The integer types are exact in any order: their slice is what keeps the B
// panel slice at 16 KiB for the kernel's nr.
constexpr std::int64_t kGemmSliceBytes = std::int64_t{16} << 10;
// mc: A rows per block. The block's kc slice (48 x 256 floats = 48 KiB) stays
// in L2 (512 KiB on Zen 3) while the B panels of a base block pass by; blocks
// of 24..96 rows measured within noise of each other, 48 a few % ahead.
constexpr std::int64_t kGemmMC = 48;
// Bytes of packed B per block: 3 MiB (~600 rows at 1280-d), packed once and
// then read from L3 by every A block. Larger blocks stream the packed A from
// L3 / memory fewer times: 1 MiB blocks measured ~4% slower at 2k x 30k x 1280
// (k-NN), 6 MiB no better.
constexpr std::int64_t kGemmBlockBytes = std::int64_t{3} << 20;

// The packed panels live in the core aligned buffer.
using AlignedFloats = AlignedBuffer<float>;

inline std::int64_t round_up(std::int64_t x, std::int64_t m) { return (x + m - 1) / m * m; }

// Elements of `rows` rows packed in panels of `rows_per_panel`, k elements each.
inline std::int64_t packed_size(std::int64_t rows, std::int64_t k, int rows_per_panel) {
  return round_up(rows, rows_per_panel) * k;
}

// Packed elements per row for k coordinates of type T under a kernel table.
template <class T>
std::int64_t packed_length(const GemmKernels<T>& kern, std::int64_t k) {
  return (T::source_length(k) + kern.k_group - 1) / kern.k_group;
}

// The coordinate slice for k packed elements: equal slices of at most
// max_slice (784 = 4 x 196, not 3 x 256 + 16: a short last slice would pay
// the tile's fixed cost for few FMAs). Each product sums its slice's terms in
// sequence and then adds the slices: for f32 a summation depth of slice +
// ceil(k / slice).
inline std::int64_t gemm_slice_length(std::int64_t k, std::int64_t max_slice = kGemmKC) {
  const std::int64_t slices = (k + max_slice - 1) / max_slice;
  return slices == 0 ? 0 : (k + slices - 1) / slices;
}

template <class T>
std::int64_t gemm_max_slice(const GemmKernels<T>& kern) {
  if constexpr (std::is_same<T, GemmF32>::value) return kGemmKC;
  return std::max<std::int64_t>(1, kGemmSliceBytes / (kern.nr * static_cast<std::int64_t>(sizeof(typename T::PackedB))));
}

// B rows per block of packed B for k packed elements: about kGemmBlockBytes, a
// multiple of nr.
template <class Packed = float>
std::int64_t gemm_block_rows(std::int64_t k, int nr) {
  const std::int64_t rows = kGemmBlockBytes / (std::max<std::int64_t>(k, 1) * static_cast<std::int64_t>(sizeof(Packed)));
  return std::max<std::int64_t>(nr, rows / nr * nr);
}

// ---------------------------------------------------------------------------
// Packing

// Packed element j of a source row of `length` values (values past the end are zero).
inline float packed_element(const float* row, std::int64_t j, std::int64_t, int, float /*tag*/) { return row[j]; }

// u8s8: `group` == 4: four bytes in one word (byte t = coordinate 4j + t), as
// vpdpbusd multiplies them; `group` == 2: two coordinates widened to int16
// (A zero-extended, B sign-extended), as vpmaddwd multiplies them.
template <class Byte>
inline std::uint32_t packed_element(const Byte* row, std::int64_t j, std::int64_t length, int group,
                                    std::uint32_t /*tag*/) {
  std::uint32_t word = 0;
  for (int t = 0; t < group; ++t) {
    const std::int64_t p = j * group + t;
    if (p >= length) break;
    if (group == 4) word |= std::uint32_t{static_cast<std::uint8_t>(row[p])} << (8 * t);
    else word |= std::uint32_t{static_cast<std::uint16_t>(static_cast<std::int16_t>(row[p]))} << (16 * t);
  }
  return word;
}

// xnor: eight bytes of bits in one 64-bit word.
inline std::uint64_t packed_element(const std::uint8_t* row, std::int64_t j, std::int64_t length, int group,
                                    std::uint64_t /*tag*/) {
  std::uint64_t word = 0;
  for (int t = 0; t < group; ++t) {
    const std::int64_t p = j * group + t;
    if (p >= length) break;
    word |= std::uint64_t{row[p]} << (8 * t);
  }
  return word;
}

// Packs `rows` source rows (row stride ld, `length` values each) into panels of
// r rows: panel p holds rows [p*r, p*r + r) interleaved per packed element,
// dst[p*r*kp + j*r + i] = element(row p*r + i, j) with kp = ceil(length /
// group); rows past `rows` are zero. `element(row, global_row_index, j)` makes
// one packed element. Reads the panel's rows side by side and writes the panel
// sequentially: each destination line is written once.
template <class Src, class Dst, class Element>
void pack_panels_with(const Src* src, std::int64_t ld, std::int64_t rows, std::int64_t kp, int r, Dst* dst,
                      Element&& element) {
  constexpr int kMaxR = 64;
  if (r > kMaxR) throw ValueError("pack_panels: panel height above 64");
  const std::int64_t panels = (rows + r - 1) / r;
  const Src* row[kMaxR];
  for (std::int64_t p = 0; p < panels; ++p) {
    Dst* panel = dst + p * r * kp;
    const int valid = static_cast<int>(std::min<std::int64_t>(r, rows - p * r));
    for (int i = 0; i < valid; ++i) row[i] = src + (p * r + i) * ld;
    for (std::int64_t j = 0; j < kp; ++j, panel += r) {
      for (int i = 0; i < valid; ++i) panel[i] = element(row[i], p * r + i, j);
      for (int i = valid; i < r; ++i) panel[i] = Dst{};
    }
  }
}

// f32: dst = (src[i][j] - offset[j]) * scale[i]; offset and scale may be null
// (0 and 1: then the values are copied as they are).
inline void pack_panels(const float* src, std::int64_t ld, std::int64_t rows, std::int64_t k, int r,
                        const float* scale, const float* offset, float* dst) {
  if (!scale && !offset) {
    pack_panels_with(src, ld, rows, k, r, dst, [](const float* row, std::int64_t, std::int64_t j) { return row[j]; });
    return;
  }
  pack_panels_with(src, ld, rows, k, r, dst, [&](const float* row, std::int64_t i, std::int64_t j) {
    return (row[j] - (offset ? offset[j] : 0.f)) * (scale ? scale[i] : 1.f);
  });
}

// Any type: `length` source values a row, k_group of them per packed element.
template <class Src, class Dst>
void pack_panels_grouped(const Src* src, std::int64_t ld, std::int64_t rows, std::int64_t length, int group, int r,
                         Dst* dst) {
  const std::int64_t kp = (length + group - 1) / group;
  pack_panels_with(src, ld, rows, kp, r, dst, [&](const Src* row, std::int64_t, std::int64_t j) {
    return packed_element(row, j, length, group, Dst{});
  });
}

// ---------------------------------------------------------------------------
// The loop nest

// c[i][j] = sum_p a[i][p] * b[j][p] (the kernel's product) for packed a (m
// rows, panels of mr) and packed b (n rows, panels of nr), k packed elements;
// c has round_up(m, mr) rows of ldc >= round_up(n, nr) values (whole tiles are
// written; pad rows/columns are junk). k == 0 writes zeros.
// Loop order (outer to inner): coordinate slice, B panel, A panel. One B panel
// slice is reused from L1 by all A panels of the block; the A block's slice is
// reused from L2 by all B panels.
template <class T>
void gemm_packed(const GemmKernels<T>& kern, const typename T::PackedA* a, std::int64_t m,
                 const typename T::PackedB* b, std::int64_t n, std::int64_t k, typename T::Acc* c, std::int64_t ldc) {
  const int mr = kern.mr, nr = kern.nr;
  const std::int64_t a_panels = (m + mr - 1) / mr, b_panels = (n + nr - 1) / nr;
  if (k == 0) {
    for (std::int64_t i = 0; i < a_panels * mr; ++i) std::fill(c + i * ldc, c + i * ldc + b_panels * nr, typename T::Acc{});
    return;
  }
  const std::int64_t slice = gemm_slice_length(k, gemm_max_slice(kern));
  for (std::int64_t pc = 0; pc < k; pc += slice) {
    const std::int64_t kc = std::min(slice, k - pc);
    for (std::int64_t jr = 0; jr < b_panels; ++jr) {
      const auto* bp = b + jr * nr * k + pc * nr;
      for (std::int64_t ir = 0; ir < a_panels; ++ir)
        kern.tile(kc, a + ir * mr * k + pc * mr, bp, c + ir * mr * ldc + jr * nr, ldc, pc > 0);
    }
  }
}

// The same with A as m plain rows of a row-major float matrix (stride lda),
// unpacked: for many rows against few B rows (PCA), where packing A would cost
// about as much as the products. Rows past the last whole tile go through a
// small zero-padded copy.
inline void gemm_rows(const GemmF32Kernels& kern, const float* a, std::int64_t lda, std::int64_t m, const float* b,
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

// ---------------------------------------------------------------------------
// Pointwise convolution as C = A·Bᵀ with B packed once (the weights) and A the
// activations as they are (NHWC: pixels x channels, row stride lda): no
// packing per call, exactly n columns of C written (row stride ldc), and the
// bias, residual and clamp applied in registers on each tile's last slice.
// `after` (optional) runs on each finished block of C (rows x cols at row0,
// col0, still in cache), for the activations a clamp cannot express.

struct FusedEpilogue {
  const float* bias = nullptr;      // n values
  const float* residual = nullptr;  // m rows of ld_residual floats
  std::int64_t ld_residual = 0;
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
  void (*after)(void* ctx, std::int64_t row0, std::int64_t col0, std::int64_t rows, std::int64_t cols, float* c,
                std::int64_t ldc) = nullptr;
  void* ctx = nullptr;
};

// Floats of B (n rows of k) packed for gemm_rows_fused under `kern`.
inline std::int64_t fused_packed_size(const GemmF32Kernels& kern, std::int64_t n, std::int64_t k) {
  return packed_size(n, k, kern.nr);
}

// Packs B (n rows of k floats, row stride ldb) into panels of nr rows.
inline void pack_fused_b(const GemmF32Kernels& kern, const float* b, std::int64_t ldb, std::int64_t n, std::int64_t k,
                         float* dst) {
  pack_panels(b, ldb, n, k, kern.nr, nullptr, nullptr, dst);
}

// Rows of A per task: 8 tiles (96 rows of the AVX-512 tile), so that a block's
// kc slice (96 x 256 floats = 96 KiB) stays in L2 while the B panel slices
// (32 KiB) pass through L1.
constexpr int kFusedRowTiles = 8;

// C = epilogue(A·Bᵀ) for A: m rows of k floats (row stride lda), B packed by
// pack_fused_b with the same kern. Threads take (row block, column group)
// tasks; every value is the same sequence of operations whatever the task,
// tile position or thread count (the slices depend on k only).
inline void gemm_rows_fused(const GemmF32Kernels& kern, const float* a, std::int64_t lda, std::int64_t m,
                            const float* b_packed, std::int64_t n, std::int64_t k, float* c, std::int64_t ldc,
                            const FusedEpilogue& ep, int threads = 0) {
  if (m <= 0 || n <= 0) return;
  const int mr = kern.mr, nr = kern.nr;
  const std::int64_t block_rows = std::int64_t{mr} * kFusedRowTiles;
  const std::int64_t row_blocks = (m + block_rows - 1) / block_rows, panels = (n + nr - 1) / nr;
  // Column groups: enough tasks for the threads when there are few row blocks.
  const int nt = threads > 0 ? threads : get_num_threads();
  std::int64_t groups = 1;
  while (groups < panels && row_blocks * groups < 4 * nt) groups *= 2;
  groups = std::min(groups, panels);
  const std::int64_t panels_per_group = (panels + groups - 1) / groups;
  groups = (panels + panels_per_group - 1) / panels_per_group;
  const std::int64_t slice = gemm_slice_length(k);
  const auto task = [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t rb = t / groups, g = t % groups;
      const std::int64_t i0 = rb * block_rows, i1 = std::min(m, i0 + block_rows);
      const std::int64_t p0 = g * panels_per_group, p1 = std::min(panels, p0 + panels_per_group);
      // The block's rows in tiles of equal height (49 rows: 10+10+10+10+9, not
      // 12+12+12+12+1: a 1-row tile waits on FMA latency for a third of a full
      // tile's time). Each value's operations do not depend on its tile.
      const std::int64_t n_rows = i1 - i0, n_tiles = (n_rows + mr - 1) / mr;
      const std::int64_t base = n_rows / n_tiles, extra = n_rows % n_tiles;
      for (std::int64_t jr = p0; jr < p1; ++jr) {
        const std::int64_t j0 = jr * nr;
        const int cols = static_cast<int>(std::min<std::int64_t>(nr, n - j0));
        if (k == 0) {
          for (std::int64_t i = i0; i < i1; ++i)
            for (int j = 0; j < cols; ++j) {
              float v = ep.bias ? ep.bias[j0 + j] : 0.f;
              if (ep.residual) v += ep.residual[i * ep.ld_residual + j0 + j];
              c[i * ldc + j0 + j] = v < ep.lo ? ep.lo : (v > ep.hi ? ep.hi : v);
            }
        }
        for (std::int64_t pc = 0; pc < k; pc += slice) {
          const std::int64_t kc = std::min(slice, k - pc);
          const bool last = pc + kc == k;
          const float* bp = b_packed + jr * nr * k + pc * nr;
          for (std::int64_t tile = 0, i = i0; tile < n_tiles; ++tile) {
            const int rows = static_cast<int>(base + (tile < extra ? 1 : 0));
            TileEpilogue te;
            if (last) {
              te.bias = ep.bias ? ep.bias + j0 : nullptr;
              te.residual = ep.residual ? ep.residual + i * ep.ld_residual + j0 : nullptr;
              te.ld_residual = ep.ld_residual;
              te.lo = ep.lo;
              te.hi = ep.hi;
            }
            kern.tile_rows_fused(kc, a + i * lda + pc, lda, rows, bp, c + i * ldc + j0, ldc, cols, pc > 0,
                                 last ? &te : nullptr);
            i += rows;
          }
        }
        if (ep.after) ep.after(ep.ctx, i0, j0, i1 - i0, cols, c + i0 * ldc + j0, ldc);
      }
    }
  };
  parallel_for(row_blocks * groups, 1, task, threads);
}

// ---------------------------------------------------------------------------
// The fused epilogue, applied to each finished block of C while it is in cache:
//   v = acc * scale[j] + bias[j] + residual[i][j], clamped to [lo, hi],
// each step only where given (scale, bias, residual null: skipped), then
// `callback` on the finished block. Indices are of the whole C.
template <class Acc>
struct GemmEpilogue {
  const Acc* scale = nullptr;     // per column
  const Acc* bias = nullptr;      // per column
  const Acc* residual = nullptr;  // m x n, row stride ld_residual
  std::int64_t ld_residual = 0;
  bool clamp = false;
  Acc lo{}, hi{};
  // fn(ctx, row0, col0, rows, cols, block, ld): the block's final values
  // C[row0 + i][col0 + j] = block[i * ld + j] (writable scratch). The k-NN
  // top-k pass takes its candidates here without a C matrix.
  void (*callback)(void* ctx, std::int64_t row0, std::int64_t col0, std::int64_t rows, std::int64_t cols, Acc* block,
                   std::int64_t ld) = nullptr;
  void* ctx = nullptr;

  bool elementwise() const { return scale || bias || residual || clamp; }
};

// The callback form from any callable fn(row0, col0, rows, cols, block, ld).
template <class Acc, class Fn>
GemmEpilogue<Acc> gemm_callback(Fn& fn) {
  GemmEpilogue<Acc> ep;
  ep.ctx = const_cast<void*>(static_cast<const void*>(&fn));
  ep.callback = [](void* ctx, std::int64_t row0, std::int64_t col0, std::int64_t rows, std::int64_t cols, Acc* block,
                   std::int64_t ld) { (*static_cast<Fn*>(ctx))(row0, col0, rows, cols, block, ld); };
  return ep;
}

// Integer epilogues wrap around on overflow (as int32 arithmetic in NumPy),
// never undefined behaviour; float ones round each step.
template <class Acc>
inline Acc epilogue_add(Acc x, Acc y) {
  if constexpr (std::is_integral<Acc>::value)
    return static_cast<Acc>(static_cast<std::make_unsigned_t<Acc>>(x) + static_cast<std::make_unsigned_t<Acc>>(y));
  return x + y;
}
template <class Acc>
inline Acc epilogue_mul(Acc x, Acc y) {
  if constexpr (std::is_integral<Acc>::value)
    return static_cast<Acc>(static_cast<std::make_unsigned_t<Acc>>(x) * static_cast<std::make_unsigned_t<Acc>>(y));
  return x * y;
}

// Applies ep to block[i * ld + j] = C[row0 + i][col0 + j], i < rows, j < cols.
template <class Acc>
void apply_epilogue(const GemmEpilogue<Acc>& ep, std::int64_t row0, std::int64_t col0, std::int64_t rows,
                    std::int64_t cols, Acc* block, std::int64_t ld) {
  if (ep.elementwise()) {
    for (std::int64_t i = 0; i < rows; ++i) {
      Acc* v = block + i * ld;
      if (ep.scale)
        for (std::int64_t j = 0; j < cols; ++j) v[j] = epilogue_mul(v[j], ep.scale[col0 + j]);
      if (ep.bias)
        for (std::int64_t j = 0; j < cols; ++j) v[j] = epilogue_add(v[j], ep.bias[col0 + j]);
      if (ep.residual) {
        const Acc* r = ep.residual + (row0 + i) * ep.ld_residual + col0;
        for (std::int64_t j = 0; j < cols; ++j) v[j] = epilogue_add(v[j], r[j]);
      }
      if (ep.clamp)
        for (std::int64_t j = 0; j < cols; ++j) v[j] = std::min(std::max(v[j], ep.lo), ep.hi);
    }
  }
  if (ep.callback) ep.callback(ep.ctx, row0, col0, rows, cols, block, ld);
}

// C (m x n, row stride ldc; may be null when the epilogue's callback takes the
// values) = epilogue(A·Bᵀ) for A: m rows of T::source_length(k) values (stride
// lda), B: n rows (stride ldb). B is packed once (whole) and shared; the
// threads (at most `threads`, 0: get_num_threads()) take blocks of mc A rows x
// one B block each, packing their A block once for all its B blocks. Results
// do not depend on the thread count or the blocks.
template <class T>
void gemm(const GemmKernels<T>& kern, const typename T::A* a, std::int64_t lda, const typename T::B* b, std::int64_t ldb,
          typename T::Acc* c, std::int64_t ldc, std::int64_t m, std::int64_t n, std::int64_t k,
          const GemmEpilogue<typename T::Acc>& ep = {}, int threads = 0) {
  using Acc = typename T::Acc;
  if (m <= 0 || n <= 0) return;
  const int mr = kern.mr, nr = kern.nr;
  const std::int64_t length = T::source_length(k), kp = packed_length(kern, k);
  const std::int64_t mc = round_up(kGemmMC, mr);
  const std::int64_t nb = gemm_block_rows<typename T::PackedB>(kp, nr);
  const std::int64_t b_panels = (n + nr - 1) / nr, b_blocks = (n + nb - 1) / nb, a_blocks = (m + mc - 1) / mc;

  AlignedBuffer<typename T::PackedB> b_pack(packed_size(n, kp, nr));
  parallel_for(
      b_panels, 16,
      [&](std::int64_t p0, std::int64_t p1) {
        pack_panels_grouped(b + p0 * nr * ldb, ldb, std::min(n, p1 * nr) - p0 * nr, length, kern.k_group, nr,
                            b_pack.get() + p0 * nr * kp);
      },
      threads);

  parallel_for(
      a_blocks * b_blocks, 1,
      [&](std::int64_t t0, std::int64_t t1) {
        AlignedBuffer<typename T::PackedA> a_pack(packed_size(std::min(mc, m), kp, mr));
        const std::int64_t ldt = round_up(std::min(nb, n), nr);
        AlignedBuffer<Acc> tile(round_up(std::min(mc, m), mr) * ldt);
        std::int64_t packed_block = -1;
        for (std::int64_t t = t0; t < t1; ++t) {
          const std::int64_t ab = t / b_blocks, bb = t % b_blocks;
          const std::int64_t i0 = ab * mc, rows = std::min(mc, m - i0);
          const std::int64_t j0 = bb * nb, cols = std::min(nb, n - j0);
          if (ab != packed_block) {
            pack_panels_grouped(a + i0 * lda, lda, rows, length, kern.k_group, mr, a_pack.get());
            packed_block = ab;
          }
          gemm_packed(kern, a_pack.get(), rows, b_pack.get() + j0 * kp, cols, kp, tile.get(), ldt);
          for (std::int64_t i = 0; i < rows; ++i)
            for (std::int64_t j = 0; j < cols; ++j) tile[i * ldt + j] = T::finish(tile[i * ldt + j], k);
          apply_epilogue(ep, i0, j0, rows, cols, tile.get(), ldt);
          if (c)
            for (std::int64_t i = 0; i < rows; ++i)
              std::copy(tile.get() + i * ldt, tile.get() + i * ldt + cols, c + (i0 + i) * ldc + j0);
        }
      },
      threads);
}

}  // namespace keensight::detail

namespace keensight::detail {
// Instantiated once, in core/gemm_kernels.cpp.
extern template void gemm<GemmF32>(const GemmKernels<GemmF32>&, const float*, std::int64_t, const float*, std::int64_t,
                                   float*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                                   const GemmEpilogue<float>&, int);
extern template void gemm<GemmU8S8>(const GemmKernels<GemmU8S8>&, const std::uint8_t*, std::int64_t, const std::int8_t*,
                                    std::int64_t, std::int32_t*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                                    const GemmEpilogue<std::int32_t>&, int);
extern template void gemm<GemmXnor>(const GemmKernels<GemmXnor>&, const std::uint8_t*, std::int64_t, const std::uint8_t*,
                                    std::int64_t, std::int32_t*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                                    const GemmEpilogue<std::int32_t>&, int);
}  // namespace keensight::detail
