// Internal: the HNSW index's distances, bounded, with early termination on
// PCA-ordered coordinates (Savchenko's granules applied to graph search).
//
// Distances: l2 is the squared Euclidean distance; cosine is stored as l2 on
// unit vectors (|a-b|^2 = 2 - 2 cos) and reported as 1 - cos = |a-b|^2 / 2;
// ip searches on -<a, b> and reports <a, b>. Smaller is closer inside.
//
// Early abandoning (the granule idea). Everywhere a distance is computed only
// to be compared with a bound -- SEARCH-LAYER admits a candidate only if it is
// closer than the ef-th best result so far (or the result set is not full);
// greedy descent moves only to a strictly closer node; the heuristic drops a
// candidate only if it is strictly closer to a kept neighbour than to the base
// -- the L2 kernel accumulates the distance granule by granule and returns as
// soon as the partial sum reaches that bound. Partial sums of non-negative
// terms never decrease, also in float arithmetic (rounding is monotone), and
// the kernel compares and returns the same expression of its accumulators; so
// an abandoned candidate's full distance would have been >= the bound and the
// candidate would have been rejected by the same comparison. Every decision,
// hence the visited nodes, the graph and the results, is identical with
// abandoning on or off; only work is saved. A PCA rotation makes it pay: the
// first granules then carry most of the variance, so the partial sum reaches
// the bound early. The head is checked alone; the tail every kTailGranules
// granules. The hot members are inline: they are called once per candidate.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "search/hnsw_storage.hpp"
#include "search/kernels.hpp"

namespace keensight::search::detail {

constexpr float kInf = std::numeric_limits<float>::infinity();
// Past the head, the running distance is checked against the bound every
// kTailGranules granules only. A check is a horizontal sum and a branch that
// goes either way (mispredicted often), as dear as reading about a hundred
// coordinates: measured with AVX-512 on 128-d data (tail 96: no check is best)
// and on 784-d data (best at 4 x 32; 1, 2 and 8 x 32 are 3-10% slower).
constexpr std::int64_t kTailGranules = 4;

// The distance of the index's metric with the active ISA's kernels, computed
// head first, then tail continuing from the head's value (for l2 the running
// sum and the final value are one expression: see l2_sq_bounded).
struct Distance {
  const SearchKernels* kernels;
  std::int64_t head_dim, tail_dim;
  std::int64_t tail_granule;  // coordinates per check past the head (kTailGranules granules)
  bool l2;         // l2 or cosine (stored as l2 on unit vectors); else ip (no head)
  bool abandon;    // early termination on
  mutable std::int64_t evaluations = 0, rejected = 0, head_only = 0;

  // The heads' distances of n stored vectors (rows: their heads) to a's head,
  // in one batch (same values as one at a time: see l2_sq_many).
  void heads(Split a, const float* const* rows, std::int64_t n, float* out) const {
    if (l2) kernels->l2_sq_many(a.head, rows, n, head_dim, out);
    else std::fill(out, out + n, 0.f);
  }
  float head(Split a, Split b) const {
    float h = 0.f;
    heads(a, &b.head, 1, &h);
    return h;
  }
  // The distance from the head's value; when abandoning, possibly a running
  // value >= bound once it is clear that the distance is >= bound.
  float finish(Split a, Split b, float head_value, float bound) const {
    if (!l2) return head_value - kernels->dot(a.tail, b.tail, tail_dim);
    if (abandon && head_value >= bound) return head_value;
    return kernels->l2_sq_bounded(a.tail, b.tail, tail_dim, tail_granule, abandon ? bound : kInf,
                                  head_value);
  }
  void count(bool beyond_bound) const {
    ++evaluations;
    rejected += beyond_bound;
  }
  float operator()(Split a, Split b, float bound) const {
    const float d = finish(a, b, head(a, b), bound);
    count(d >= bound);
    return d;
  }
  float full(Split a, Split b) const {
    ++evaluations;
    return finish(a, b, head(a, b), kInf);
  }
  // finish() of up to kBoundedLockstep stored nodes against one bound, the l2
  // tails in lockstep: out[j] = finish(q, store.node(ids[j]), head_value[j],
  // bound), bit for bit.
  void finish_many(const HNSWStorage& store, Split q, const std::uint32_t* ids, std::uint32_t n,
                   const float* head_value, float bound, float* out) const {
    if (!l2) {
      for (std::uint32_t j = 0; j < n; ++j) out[j] = head_value[j] - kernels->dot(q.tail, store.tail(ids[j]), tail_dim);
      return;
    }
    const float* rows[kBoundedLockstep];
    float init[kBoundedLockstep], bounds[kBoundedLockstep];
    std::uint32_t slot[kBoundedLockstep];
    std::int64_t m = 0;
    const float b = abandon ? bound : kInf;
    for (std::uint32_t j = 0; j < n; ++j) {
      out[j] = head_value[j];
      if (abandon && head_value[j] >= bound) continue;  // as finish(): decided by the head
      rows[m] = store.tail(ids[j]);
      init[m] = head_value[j];
      bounds[m] = b;
      slot[m++] = j;
    }
    float value[kBoundedLockstep];
    kernels->l2_sq_bounded_many(q.tail, rows, m, tail_dim, tail_granule, bounds, init, value);
    for (std::int64_t r = 0; r < m; ++r) out[slot[r]] = value[r];
  }
};

// The distance of `store`'s metric and settings with the active ISA's kernels.
inline Distance make_distance(const HNSWStorage& store) {
  // ip has no bound to abandon at (partial inner products are not monotone).
  const bool l2 = store.opt.metric != Metric::ip;
  return Distance{&search_kernels(), store.head_dim, store.dim - store.head_dim,
                  kTailGranules * store.opt.granule, l2, l2 && store.opt.early_termination};
}

}  // namespace keensight::search::detail
