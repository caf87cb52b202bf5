// Sequential three-way decisions over PCA granules: the operator (see
// keensight/search/sequential.hpp for the method and its source).
//
// Cost structure: the first granule is evaluated for every reference, so it
// runs as a GEMM (||q||^2 + ||r||^2 - 2 q.r on packed panels, the k-NN tile)
// over a block of queries at once; later granules touch only the references of
// the classes still in the boundary region, per query, with the pair kernels.
// References are stored sorted by class and granule-major, so a surviving
// class is one contiguous run of rows in every granule.
#include "keensight/search/sequential.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "core/parallel.hpp"
#include "keensight/search.hpp"
#include "search/gemm.hpp"
#include "search/kernels.hpp"
#include "search/topk.hpp"

namespace keensight::search {
namespace {

using search_detail::AlignedFloats;

// Queries processed together: the first granule is one GEMM over the block, and
// every later granule's rows are read once per block rather than once per
// query (those reads, not the arithmetic, bound the later granules). 64 rather
// than 16 made Fashion-MNIST (60k x 784) 1.6x faster; the distances of the
// block (64 x n floats) are the memory price.
constexpr std::int64_t kQueryBlock = 64;
// Reference rows per GEMM call: the dot-product block (64 x 1024 floats,
// 256 KiB) stays in L2 for the epilogue.
constexpr std::int64_t kRefBlock = 1024;
// Bytes of one granule's rows per chunk of a class in the later granules: the
// chunk stays in L2 while the block's queries use it.
constexpr std::int64_t kChunkBytes = 128 << 10;

// First float of `buffer` at a 64-byte boundary (buffers get 16 spare floats).
float* aligned_start(std::vector<float>& buffer) {
  const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
  return buffer.data() + ((64 - address % 64) % 64) / sizeof(float);
}

}  // namespace

const float* SequentialIndex::packed_first() const {
  return aligned_start(const_cast<std::vector<float>&>(first_packed_));
}

SequentialIndex::SequentialIndex(const float* refs, std::int64_t n, std::int64_t dim,
                                 const std::int64_t* labels, std::int64_t n_classes,
                                 std::int64_t granule, Metric metric)
    : n_(n), dim_(dim), n_classes_(n_classes), granule_(granule), metric_(metric) {
  if (n <= 0) throw ValueError("refs: expected at least one reference");
  if (dim <= 0) throw ValueError("refs: expected at least one coordinate");
  if (n_classes <= 0) throw ValueError("n_classes: expected a positive number of classes");
  if (granule <= 0) throw ValueError("m: expected a positive number of components per granule, got " + std::to_string(granule));
  if (metric != Metric::l2 && metric != Metric::l1)
    throw ValueError(std::string("metric: the sequential classifier needs an additive distance ('l2' or 'l1'), got '") +
                     metric_name(metric) + "'");
  class_begin_.assign(static_cast<std::size_t>(n_classes + 1), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= n_classes)
      throw ValueError("labels: expected class indices in [0, n_classes)");
    ++class_begin_[static_cast<std::size_t>(labels[i] + 1)];
  }
  for (std::int64_t c = 0; c < n_classes; ++c) class_begin_[c + 1] += class_begin_[c];
  original_.resize(static_cast<std::size_t>(n));
  std::vector<std::int64_t> fill(class_begin_.begin(), class_begin_.end() - 1);
  for (std::int64_t i = 0; i < n; ++i) original_[static_cast<std::size_t>(fill[labels[i]]++)] = i;

  for (std::int64_t e = std::min(granule, dim);; e = std::min(e + granule, dim)) {
    level_end_.push_back(e);
    if (e == dim) break;
  }
  granules_.resize(static_cast<std::size_t>(n * dim));
  std::int64_t begin = 0, offset = 0;
  for (std::int64_t end : level_end_) {
    const std::int64_t width = end - begin;
    for (std::int64_t p = 0; p < n; ++p)
      std::copy(refs + original_[p] * dim + begin, refs + original_[p] * dim + end,
                granules_.data() + offset + p * width);
    offset += n * width;
    begin = end;
  }
  if (metric == Metric::l2) {
    const std::int64_t m0 = level_end_.front();
    packed_isa_ = active_isa();
    const search_detail::GemmKernels& gk = search_detail::gemm_kernels(packed_isa_);
    const search_detail::SearchKernels& sk = search_detail::search_kernels();
    first_norms_.resize(static_cast<std::size_t>(n));
    for (std::int64_t p = 0; p < n; ++p) {
      const float* row = granules_.data() + p * m0;
      first_norms_[p] = sk.dot(row, row, m0);
    }
    first_packed_.resize(static_cast<std::size_t>(search_detail::packed_size(n, m0, gk.nr) + 16));
    search_detail::pack_panels(granules_.data(), m0, n, m0, gk.nr, nullptr, nullptr,
                               aligned_start(first_packed_));
  }
}

void SequentialIndex::predict(const float* queries, std::int64_t nq, double delta, std::int64_t k,
                              float* class_distances, float* neighbor_distances,
                              std::int64_t* neighbor_indices, std::int64_t* levels,
                              std::int64_t* components, std::int64_t* evaluations,
                              std::int64_t* terms) const {
  if (!(delta >= 1.0)) throw ValueError("delta: expected a number >= 1 (inf: never reject)");
  if (k <= 0) throw ValueError("k: expected a positive number of neighbours");
  // The tile the references were packed for (the ISA level may have changed since).
  const search_detail::GemmKernels& gk = search_detail::gemm_kernels(packed_isa_);
  const search_detail::SearchKernels& sk = search_detail::search_kernels();
  const auto distance = metric_ == Metric::l2 ? sk.l2_sq : sk.l1;
  const std::int64_t n = n_, C = n_classes_, L = n_levels(), m0 = level_end_.front();
  const float inf = std::numeric_limits<float>::infinity();
  const std::int64_t blocks = (nq + kQueryBlock - 1) / kQueryBlock;

  detail::parallel_chunks(blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<float> rho(static_cast<std::size_t>(kQueryBlock * n));
    std::vector<float> class_min(static_cast<std::size_t>(kQueryBlock * C));
    std::vector<std::int64_t> class_arg(static_cast<std::size_t>(kQueryBlock * C));
    std::vector<char> alive(static_cast<std::size_t>(kQueryBlock * C));
    char done[kQueryBlock];
    float qoffset[kQueryBlock];
    char materialized[kQueryBlock];  // rho holds query i's whole distances
    std::int64_t work[kQueryBlock], coords[kQueryBlock];
    AlignedFloats packed_q, dots;
    search_detail::TopK heap(k);
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int64_t q0 = b * kQueryBlock, qn = std::min(kQueryBlock, nq - q0);
      // Granule 1 for the whole block. For l2 it is one GEMM, and its epilogue
      // keeps only each class's best value and position: no per-reference
      // distance is stored (that store, 4 bytes per reference per query, cost
      // about as much as the GEMM). The values lack the query's own ||q||^2
      // (||r||^2 - 2 q.r), a constant per query added where they are compared
      // by ratio or reported. A query that goes on to granule 2 computes its
      // first-granule distances again, directly, for the references of the
      // classes still in play (materialize, below).
      if (metric_ == Metric::l2) {
        const std::int64_t ldc = search_detail::round_up(kRefBlock, gk.nr);
        packed_q.resize(search_detail::packed_size(qn, m0, gk.mr));
        dots.resize(search_detail::round_up(qn, gk.mr) * ldc);
        search_detail::pack_panels(queries + q0 * dim_, dim_, qn, m0, gk.mr, nullptr, nullptr, packed_q.get());
        for (std::int64_t i = 0; i < qn; ++i) {
          qoffset[i] = sk.dot(queries + (q0 + i) * dim_, queries + (q0 + i) * dim_, m0);
          materialized[i] = 0;
        }
        std::fill(class_min.begin(), class_min.begin() + qn * C, inf);
        for (std::int64_t r0 = 0; r0 < n; r0 += kRefBlock) {  // kRefBlock is a multiple of nr
          const std::int64_t rn = std::min(kRefBlock, n - r0);
          search_detail::gemm_packed(gk, packed_q.get(), qn, packed_first() + r0 * m0, rn, m0,
                                     dots.get(), ldc);
          const std::int64_t c_first =
              std::upper_bound(class_begin_.begin(), class_begin_.end(), r0) - class_begin_.begin() - 1;
          for (std::int64_t i = 0; i < qn; ++i) {
            const float* d = dots.get() + i * ldc;
            for (std::int64_t c = c_first; c < C && class_begin_[c] < r0 + rn; ++c) {
              const std::int64_t s0 = std::max(class_begin_[c], r0), s1 = std::min(class_begin_[c + 1], r0 + rn);
              if (s1 <= s0) continue;
              std::int64_t at = 0;
              const float v = gk.bias_scale_argmin(d + (s0 - r0), first_norms_.data() + s0, -2.f, s1 - s0, &at);
              if (v < class_min[i * C + c]) {  // strict: the first position keeps a tie
                class_min[i * C + c] = v;
                class_arg[i * C + c] = s0 + at;
              }
            }
          }
        }
      } else {
        for (std::int64_t i = 0; i < qn; ++i) {
          qoffset[i] = 0.f;
          materialized[i] = 1;
          for (std::int64_t p = 0; p < n; ++p)
            rho[i * n + p] = distance(queries + (q0 + i) * dim_, granules_.data() + p * m0, m0);
        }
      }
      // Query i's first-granule distances for class c's rows [p0, p0 + count), from scratch.
      const auto materialize = [&](std::int64_t i, std::int64_t p0, std::int64_t count) {
        float* r = rho.data() + i * n + p0;
        std::fill(r, r + count, 0.f);
        sk.l2_sq_rows(queries + (q0 + i) * dim_, granules_.data() + p0 * m0, count, m0, r);
        coords[i] += count * m0;
      };

      // Later granules, level by level for the whole block: a chunk of one
      // class's rows is read from memory once and used by every query of the
      // block that still has the class in play (per query, the rows would be
      // streamed from DRAM again and again).
      std::fill(alive.begin(), alive.end(), char(1));
      std::fill(done, done + qn, char(0));
      for (std::int64_t i = 0; i < qn; ++i) {
        work[i] = n;
        coords[i] = n * m0;
      }
      std::int64_t offset = 0;
      for (std::int64_t level = 0;; ++level) {
        std::int64_t active = 0;
        for (std::int64_t i = 0; i < qn; ++i) {
          if (done[i]) continue;
          // Decide on rho^(level+1): class minima, leader, boundary region.
          const float* r = rho.data() + i * n;
          char* live = alive.data() + i * C;
          float* cmin = class_min.data() + i * C;
          float best = inf;
          for (std::int64_t c = 0; c < C; ++c) {
            float v = inf;
            if (live[c] && class_begin_[c + 1] > class_begin_[c]) {
              v = materialized[i] ? sk.min_value(r + class_begin_[c], class_begin_[c + 1] - class_begin_[c])
                                  : cmin[c];
              v = std::max(0.f, v + qoffset[i]);
            }
            cmin[c] = v;
            best = v < best ? v : best;
          }
          const float bound = static_cast<float>(delta * static_cast<double>(best));
          std::int64_t kept = 0;
          for (std::int64_t c = 0; c < C; ++c) {
            live[c] = live[c] && class_begin_[c + 1] > class_begin_[c] && cmin[c] <= bound;
            kept += live[c];
          }
          if (kept <= 1 || level + 1 == L) {
            done[i] = 1;
            levels[q0 + i] = level + 1;
            components[q0 + i] = level_end_[level];
          } else {
            ++active;
          }
        }
        if (active == 0) break;
        // Next granule for the references of the classes still in play.
        offset += n * (level_end_[level] - (level ? level_end_[level - 1] : 0));
        const std::int64_t begin = level_end_[level], width = level_end_[level + 1] - begin;
        const std::int64_t chunk = std::max<std::int64_t>(64, kChunkBytes / (width * static_cast<std::int64_t>(sizeof(float))));
        const float* g = granules_.data() + offset;
        for (std::int64_t c = 0; c < C; ++c)
          for (std::int64_t p0 = class_begin_[c]; p0 < class_begin_[c + 1]; p0 += chunk) {
            const std::int64_t count = std::min(chunk, class_begin_[c + 1] - p0);
            for (std::int64_t i = 0; i < qn; ++i) {
              if (done[i] || !alive[i * C + c]) continue;
              const float* x = queries + (q0 + i) * dim_ + begin;
              float* r = rho.data() + i * n;
              if (!materialized[i]) materialize(i, p0, count);
              if (metric_ == Metric::l2)
                sk.l2_sq_rows(x, g + p0 * width, count, width, r + p0);
              else
                for (std::int64_t p = p0; p < p0 + count; ++p) r[p] += distance(x, g + p * width, width);
              work[i] += count;
              coords[i] += count * width;
            }
          }
        for (std::int64_t i = 0; i < qn; ++i)
          if (!done[i] && !materialized[i]) {
            materialized[i] = 1;
            qoffset[i] = 0.f;  // the distances are now whole
          }
      }
      for (std::int64_t i = 0; i < qn; ++i) {
        const std::int64_t q = q0 + i;
        const char* live = alive.data() + i * C;
        evaluations[q] = work[i];
        terms[q] = coords[i];
        for (std::int64_t c = 0; c < C; ++c) class_distances[q * C + c] = live[c] ? class_min[i * C + c] : inf;
        float* nd = neighbor_distances + q * k;
        std::int64_t* ni = neighbor_indices + q * k;
        if (!materialized[i] && k == 1) {  // stopped after granule 1: the leader's best reference
          std::int64_t lead = -1;
          for (std::int64_t c = 0; c < C; ++c) {
            if (!live[c]) continue;
            const float v = class_min[i * C + c];
            const float w = lead < 0 ? inf : class_min[i * C + lead];
            if (lead < 0 || v < w || (v == w && original_[class_arg[i * C + c]] < original_[class_arg[i * C + lead]]))
              lead = c;
          }
          nd[0] = class_min[i * C + lead];
          ni[0] = original_[class_arg[i * C + lead]];
          continue;
        }
        if (!materialized[i]) {
          for (std::int64_t c = 0; c < C; ++c)
            if (live[c]) materialize(i, class_begin_[c], class_begin_[c + 1] - class_begin_[c]);
          qoffset[i] = 0.f;
        }
        const float* r = rho.data() + i * n;
        for (std::int64_t c = 0; c < C; ++c) {
          if (!live[c]) continue;
          for (std::int64_t p = class_begin_[c]; p < class_begin_[c + 1]; ++p) heap.push(r[p], original_[p]);
        }
        heap.write_sorted(nd, ni, inf);
        for (std::int64_t j = 0; j < k; ++j) nd[j] = std::max(0.f, nd[j] + qoffset[i]);
      }
    }
  });
}

}  // namespace keensight::search
