// Internal: the leaf kernels of the search area and their per-ISA dispatch table.
//
//   l2_sq   sum (a[i] - b[i])^2        (squared Euclidean distance)
//   dot     sum a[i] * b[i]
//   l1      sum |a[i] - b[i]|
//   chi2    sum (a[i] - b[i])^2 / (a[i] + b[i]) over i with a[i] + b[i] > 0
//
// One pair of vectors per call; callers that need a partial distance (the
// granules of the sequential classifier, early abandoning in HNSW) pass an
// offset pointer and a length. Many-queries L2/IP goes through a GEMM kernel.
#pragma once

#include <cstdint>

#include "keensight/core.hpp"

namespace keensight::search::detail {

struct SearchKernels {
  float (*l2_sq)(const float* a, const float* b, std::int64_t n);
  float (*dot)(const float* a, const float* b, std::int64_t n);
  float (*l1)(const float* a, const float* b, std::int64_t n);
  float (*chi2)(const float* a, const float* b, std::int64_t n);
  // HNSW early abandoning: init + sum (a[i] - b[i])^2, the sum accumulated
  // granule by granule (`granule` coordinates at a time); returns the running
  // value as soon as it is >= bound (the full value is then >= bound too:
  // partial sums of non-negative terms only grow, float rounding included, and
  // the running and final values are the same expression), else the full
  // value. With bound = +inf it returns the full value computed in exactly the
  // same order, so results with and without abandoning are bit-identical.
  // init chains calls: a distance split over two arrays continues from the first.
  float (*l2_sq_bounded)(const float* a, const float* b, std::int64_t n, std::int64_t granule,
                         float bound, float init);
  // Sequential classifier, one granule of a run of references: acc[i] +=
  // sum_j (q[j] - rows[i * width + j])^2 for i < nrows. Several rows per pass
  // share the loads of q and one horizontal reduction.
  void (*l2_sq_rows)(const float* q, const float* rows, std::int64_t nrows, std::int64_t width,
                     float* acc);
  // min over v[0 .. n) (+inf for n == 0; no NaN expected): a class's best distance.
  float (*min_value)(const float* v, std::int64_t n);
  // HNSW, the first granule of many candidates at once: out[j] = sum_i (q[i] -
  // rows[j][i])^2 for i < dim, j < n. Each out[j] depends only on q and rows[j]
  // (never on n or on the other rows), so a candidate scored alone or in a batch
  // gets the same value. The SIMD versions load the rows of a batch together
  // (their cache misses overlap) and share one horizontal reduction per batch.
  void (*l2_sq_many)(const float* q, const float* const* rows, std::int64_t n, std::int64_t dim,
                     float* out);
  // HNSW, up to kBoundedLockstep candidates in lockstep, granule by granule:
  // out[j] = l2_sq_bounded(q, rows[j], n, granule, bound[j], init[j]), the
  // same value bit for bit. Several rows' loads are in flight together (their
  // cache-miss streams overlap) before any of their bound checks is decided.
  void (*l2_sq_bounded_many)(const float* q, const float* const* rows, std::int64_t count,
                             std::int64_t n, std::int64_t granule, const float* bound,
                             const float* init, float* out);
};

constexpr std::int64_t kBoundedLockstep = 4;  // rows of one l2_sq_bounded_many call, at most

// l2_sq_many and l2_sq_bounded_many one row at a time through a table's own
// single-row kernel (the scalar and AVX2 tables; AVX-512 interleaves the rows).
template <float (*L2)(const float*, const float*, std::int64_t)>
void l2_sq_many_by_rows(const float* q, const float* const* rows, std::int64_t n, std::int64_t dim,
                        float* out) {
  for (std::int64_t j = 0; j < n; ++j) out[j] = L2(q, rows[j], dim);
}
template <float (*Bounded)(const float*, const float*, std::int64_t, std::int64_t, float, float)>
void l2_sq_bounded_many_by_rows(const float* q, const float* const* rows, std::int64_t count,
                                std::int64_t n, std::int64_t granule, const float* bound,
                                const float* init, float* out) {
  for (std::int64_t j = 0; j < count; ++j) out[j] = Bounded(q, rows[j], n, granule, bound[j], init[j]);
}

const SearchKernels& search_kernels_scalar();
#ifdef KEENSIGHT_HAVE_AVX2
const SearchKernels& search_kernels_avx2();
#endif
#ifdef KEENSIGHT_HAVE_AVX512
const SearchKernels& search_kernels_avx512();
#endif

// The table the kernels use now (core/dispatch.hpp), and the table `isa` falls back
// to along its chain (search/dispatch.cpp).
const SearchKernels& search_kernels();
const SearchKernels& search_kernels(Isa isa);

}  // namespace keensight::search::detail
