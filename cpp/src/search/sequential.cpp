// Sequential three-way decisions over PCA granules: the operator (see
// keensight/search/sequential.hpp for the method and its source).
//
// Cost structure: the first granule is evaluated for every reference, so it
// runs as a GEMM (||q||^2 + ||r||^2 - 2 q.r on packed panels, the k-NN tile)
// over a block of queries at once; later granules touch only the references of
// the classes still in the boundary region, per query, with the pair kernels,
// and among those only the ones that can still be a class's minimum.
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
#include "core/gemm.hpp"
#include "search/kernels.hpp"
#include "core/topk.hpp"

namespace keensight::search {
namespace {

using keensight::detail::AlignedFloats;

// Queries processed together (at most): the first granule is one GEMM over
// the block, and every packed reference panel, streamed from L3, serves the
// whole block. On Fashion-MNIST (60k x 784, m = 32) 252 queries per block ran
// 1.15x faster than 64, and 126 .. 378 all within a few % of each other.
constexpr std::int64_t kQueryBlock = 252;
// Reference rows per GEMM call: the dot-product block (252 x 512 floats,
// 504 KiB) stays in L2 for the epilogue.
constexpr std::int64_t kRefBlock = 512;
// NaN or infinity anywhere in a query reaches every component of its
// projection (0 * inf is NaN), so checking the projection checks the query.
constexpr const char* kNotFinite =
    "queries: contain NaN or infinity (or project to values too large for float32)";
constexpr const char* kOverflow =
    "queries: distances to the references overflow float32 (values too large); rescale the features";

// First float of `buffer` at a 64-byte boundary (buffers get 16 spare floats).
float* aligned_start(std::vector<float>& buffer) {
  const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
  return buffer.data() + ((64 - address % 64) % 64) / sizeof(float);
}

}  // namespace

const float* SequentialIndex::packed_first() const {
  return aligned_start(const_cast<std::vector<float>&>(first_packed_));
}

const float* SequentialIndex::packed_components() const {
  return aligned_start(const_cast<std::vector<float>&>(components_packed_));
}

SequentialIndex::SequentialIndex(const float* refs, std::int64_t n, std::int64_t dim,
                                 const std::int64_t* labels, std::int64_t n_classes,
                                 std::int64_t granule, Metric metric, const float* mean,
                                 const float* components, std::int64_t input_dim, const float* scale)
    : n_(n), dim_(dim), n_classes_(n_classes), granule_(granule), metric_(metric), input_dim_(dim) {
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
    granule_offset_.push_back(offset);
    for (std::int64_t p = 0; p < n; ++p)
      std::copy(refs + original_[p] * dim + begin, refs + original_[p] * dim + end,
                granules_.data() + offset + p * width);
    offset += n * width;
    begin = end;
  }
  packed_isa_ = active_isa();
  if (metric == Metric::l2) {
    const std::int64_t m0 = level_end_.front();
    const keensight::detail::GemmF32Kernels& gk = keensight::detail::gemm_f32_kernels(packed_isa_);
    const search::detail::SearchKernels& sk = search::detail::search_kernels();
    first_norms_.resize(static_cast<std::size_t>(n));
    for (std::int64_t p = 0; p < n; ++p) {
      const float* row = granules_.data() + p * m0;
      first_norms_[p] = sk.dot(row, row, m0);
    }
    first_packed_.resize(static_cast<std::size_t>(keensight::detail::packed_size(n, m0, gk.nr) + 16));
    keensight::detail::pack_panels(granules_.data(), m0, n, m0, gk.nr, nullptr, nullptr,
                               aligned_start(first_packed_));
  }
  if (components || mean) {
    if (!components || !mean) throw ValueError("components, mean: expected both or neither");
    if (input_dim <= 0) throw ValueError("components: expected at least one input coordinate");
    input_dim_ = input_dim;
    components_.assign(components, components + dim * input_dim);
    mean_.assign(mean, mean + input_dim);
    if (scale) scale_.assign(scale, scale + dim);
    // The first granule's components in GEMM panels: the block of queries is
    // projected on them at once (gemm_rows, as pca_transform).
    const keensight::detail::GemmF32Kernels& gk = keensight::detail::gemm_f32_kernels(packed_isa_);
    const std::int64_t rows = std::min(keensight::detail::round_up(level_end_.front(), gk.nr), dim);
    components_packed_.resize(static_cast<std::size_t>(keensight::detail::packed_size(rows, input_dim, gk.nr) + 16));
    keensight::detail::pack_panels(components, input_dim, rows, input_dim, gk.nr, nullptr, nullptr,
                               aligned_start(components_packed_));
  }
}

// One query's way through the granules after the first, and its neighbours.
// The partial distances are kept per reference with the number of granules
// summed into them; since every granule adds a non-negative term, a partial
// distance is a lower bound of the reference's distance at any later granule.
// A class's minimum at granule l is then found exactly without bringing every
// reference up to l (partial distance search): a reference whose lower bound
// already exceeds the best value found so far cannot be the minimum, and keeps
// its partial value until a later granule's minimum (which only grows) reaches
// it. The values that decide are summed granule by granule in one fixed order,
// so they are the ones exhaustive accumulation gives, bit for bit. On
// Fashion-MNIST (60k references, m = 32) a query that runs through all 25
// granules computes about 2,000 reference-granules after the first instead of
// 24 for each of the 12,000 or more references of its classes in play.
class SequentialQuery {
 public:
  SequentialQuery(const SequentialIndex& index, const search::detail::SearchKernels& kernels, std::int64_t k)
      : ix_(index), sk_(kernels), k_(k), heap_(k) {
    const std::size_t C = static_cast<std::size_t>(index.n_classes_);
    class_min_.resize(C);
    class_arg_.resize(C);
    live_.resize(C);
  }

  struct Result {
    std::int64_t levels, components, evaluations, terms;
  };

  // Query z (dim floats; with a projection, only its first `projected`
  // coordinates are there yet, the rest is projected from `raw` into z_rest,
  // the same row writable, as the granules need them). first_min / first_arg:
  // the first granule's class minima (without the query's ||z||^2, `offset`)
  // and their positions from the block GEMM (l2), or null: the first granule
  // is computed here (l1).
  Result run(const float* z, const float* raw, float* z_rest, std::int64_t projected, const float* first_min,
             const std::int64_t* first_arg, float offset, double delta, float* class_distances,
             float* neighbor_distances, std::int64_t* neighbor_indices) {
    const SequentialIndex& ix = ix_;
    const std::int64_t n = ix.n_, C = ix.n_classes_, L = ix.n_levels(), m0 = ix.level_end_.front();
    const float inf = std::numeric_limits<float>::infinity();
    x_ = z;
    z_ = z_rest;
    raw_ = raw;
    projected_ = projected;
    work_ = n;
    terms_ = n * m0;
    materialized_ = false;
    for (std::int64_t c = 0; c < C; ++c) live_[c] = ix.class_begin_[c + 1] > ix.class_begin_[c];
    if (first_min) {
      std::copy(first_min, first_min + C, class_min_.begin());
      std::copy(first_arg, first_arg + C, class_arg_.begin());
    } else {
      materialize_all();
      offset = 0.f;
      for (std::int64_t c = 0; c < C; ++c)
        if (live_[c]) class_minimum(c);
    }
    std::int64_t level = 0;
    for (;; ++level) {
      // Three-way decision on rho^(level+1): leader, boundary region, rejection.
      const float off = materialized_ ? 0.f : offset;
      float best = inf;
      for (std::int64_t c = 0; c < C; ++c) {
        const float v = live_[c] ? std::max(0.f, class_min_[c] + off) : inf;
        class_min_[c] = v;
        best = v < best ? v : best;
      }
      // delta = inf never rejects (inf * 0 would be NaN, and every class would
      // fail the test); the leader always survives its own test, whatever
      // the rounding of delta * best.
      const float bound = std::isinf(delta) ? inf : static_cast<float>(delta * static_cast<double>(best));
      std::int64_t kept = 0;
      for (std::int64_t c = 0; c < C; ++c) {
        live_[c] = live_[c] && (class_min_[c] <= bound || class_min_[c] == best);
        kept += live_[c];
      }
      // Finite queries and references give a NaN distance only by overflow.
      if (kept == 0) throw ValueError(kOverflow);
      if (kept <= 1 || level + 1 == L) break;
      if (!materialized_) materialize_live();
      project(ix.level_end_[level + 1]);
      for (std::int64_t c = 0; c < C; ++c)
        if (live_[c]) refine_class(c, level + 2);
    }
    for (std::int64_t c = 0; c < C; ++c) class_distances[c] = live_[c] ? class_min_[c] : inf;
    if (!materialized_ && k_ == 1) {
      // Stopped after the GEMM granule: the leader's best reference (ties: the
      // lower original index, as exact 1-NN).
      std::int64_t lead = -1;
      for (std::int64_t c = 0; c < C; ++c) {
        if (!live_[c]) continue;
        if (lead < 0 || class_min_[c] < class_min_[lead] ||
            (class_min_[c] == class_min_[lead] && ix.original_[class_arg_[c]] < ix.original_[class_arg_[lead]]))
          lead = c;
      }
      neighbor_distances[0] = class_min_[lead];
      neighbor_indices[0] = ix.original_[class_arg_[lead]];
    } else {
      if (!materialized_) materialize_live();
      nearest(level + 1, neighbor_distances, neighbor_indices);
    }
    return {level + 1, ix.level_end_[level], work_, terms_};
  }

 private:
  // Granule g (0-based) of the reference at sorted position p.
  const float* row(std::int64_t g, std::int64_t p) const {
    return ix_.granules_.data() + ix_.granule_offset_[g] + p * (ix_.level_end_[g] - begin(g));
  }
  std::int64_t begin(std::int64_t g) const { return g ? ix_.level_end_[g - 1] : 0; }
  float distance(std::int64_t g, std::int64_t p) const {
    const std::int64_t b = begin(g), w = ix_.level_end_[g] - b;
    return ix_.metric_ == Metric::l2 ? sk_.l2_sq(x_ + b, row(g, p), w) : sk_.l1(x_ + b, row(g, p), w);
  }

  // The query's coordinates [projected_, end) from its input row (one dot
  // product per component: few queries get here, each for a granule or two).
  void project(std::int64_t end) {
    if (!raw_ || projected_ >= end) return;
    const std::int64_t in = ix_.input_dim_;
    for (std::int64_t j = projected_; j < end; ++j) {
      float v = sk_.dot(raw_, ix_.components_.data() + j * in, in);
      if (!ix_.scale_.empty()) v *= ix_.scale_[j];
      if (!std::isfinite(v)) throw ValueError(kNotFinite);
      z_[j] = v;
    }
    projected_ = end;
  }

  void reserve() {
    const std::size_t n = static_cast<std::size_t>(ix_.n_);
    if (rho_.size() < n) {
      rho_.resize(n);
      granules_done_.resize(n);
    }
  }

  // The first granule for every reference (l1: no GEMM ran).
  void materialize_all() {
    reserve();
    const std::int64_t m0 = ix_.level_end_.front();
    for (std::int64_t p = 0; p < ix_.n_; ++p) {
      rho_[p] = sk_.l1(x_, ix_.granules_.data() + p * m0, m0);
      granules_done_[p] = 1;
    }
    materialized_ = true;
  }

  // The first granule again, directly, for the references of the classes in
  // play (the GEMM kept only each class's best value): l2_sq_rows adds to 0.
  void materialize_live() {
    reserve();
    const std::int64_t m0 = ix_.level_end_.front();
    for (std::int64_t c = 0; c < ix_.n_classes_; ++c) {
      if (!live_[c]) continue;
      const std::int64_t p0 = ix_.class_begin_[c], count = ix_.class_begin_[c + 1] - p0;
      std::fill(rho_.begin() + p0, rho_.begin() + p0 + count, 0.f);
      std::fill(granules_done_.begin() + p0, granules_done_.begin() + p0 + count, 1);
      sk_.l2_sq_rows(x_, ix_.granules_.data() + p0 * m0, count, m0, rho_.data() + p0);
      terms_ += count * m0;
    }
    materialized_ = true;
  }

  // Class c's minimum over its materialized first-granule values (first position on ties).
  void class_minimum(std::int64_t c) {
    const std::int64_t p0 = ix_.class_begin_[c], p1 = ix_.class_begin_[c + 1];
    const float v = sk_.min_value(rho_.data() + p0, p1 - p0);
    std::int64_t at = p0;
    while (at < p1 - 1 && !(rho_[at] == v)) ++at;
    class_min_[c] = v;
    class_arg_[c] = at;
  }

  // Brings position p up to `target` granules, stopping early once its partial
  // value exceeds `bound` (it then stays a valid lower bound).
  void catch_up(std::int64_t p, std::int32_t target, float bound) {
    float r = rho_[p];
    std::int32_t g = granules_done_[p];
    while (g < target) {
      r += distance(g, p);
      ++work_;
      terms_ += ix_.level_end_[g] - begin(g);
      ++g;
      if (r > bound) break;
    }
    rho_[p] = r;
    granules_done_[p] = g;
  }

  // Class c's exact minimum over `target` granules and its (first) position.
  // Two passes: the references whose lower bound does not exceed the current
  // best are listed first and their next granule's rows prefetched (they lie
  // anywhere in memory, one or two cache lines each: taken one by one, every
  // catch-up would wait for DRAM), then brought up while the best tightens.
  void refine_class(std::int64_t c, std::int32_t target) {
    std::int64_t at = class_arg_[c];
    catch_up(at, target, std::numeric_limits<float>::infinity());
    float best = rho_[at];
    pending_.clear();
    for (std::int64_t p = ix_.class_begin_[c]; p < ix_.class_begin_[c + 1]; ++p) {
      if (rho_[p] > best) continue;
      if (granules_done_[p] < target) {
        pending_.push_back(p);
        prefetch_row(granules_done_[p], p);
      } else if (rho_[p] < best || p < at) {  // here rho_[p] <= best
        best = rho_[p];
        at = p;
      }
    }
    for (const std::int64_t p : pending_) {
      if (rho_[p] > best) continue;
      catch_up(p, target, best);
      if (granules_done_[p] < target) continue;
      if (rho_[p] < best || (rho_[p] == best && p < at)) {
        best = rho_[p];
        at = p;
      }
    }
    class_min_[c] = best;
    class_arg_[c] = at;
  }

  void prefetch_row(std::int64_t g, std::int64_t p) const {
#if defined(__GNUC__) || defined(__clang__)
    const char* first = reinterpret_cast<const char*>(row(g, p));
    const char* last = first + (ix_.level_end_[g] - begin(g)) * sizeof(float) - 1;
    for (const char* line = first; line <= last; line += 64) __builtin_prefetch(line);
    __builtin_prefetch(last);
#else
    (void)g, (void)p;
#endif
  }

  // The k nearest references of the classes in play over `target` granules.
  void nearest(std::int32_t target, float* distances, std::int64_t* indices) {
    const std::int64_t C = ix_.n_classes_;
    heap_.clear();
    for (std::int64_t c = 0; c < C; ++c) {
      if (!live_[c]) continue;
      for (std::int64_t p = ix_.class_begin_[c]; p < ix_.class_begin_[c + 1]; ++p)
        if (granules_done_[p] == target) heap_.push(rho_[p], ix_.original_[p]);
    }
    for (std::int64_t c = 0; c < C; ++c) {
      if (!live_[c]) continue;
      for (std::int64_t p = ix_.class_begin_[c]; p < ix_.class_begin_[c + 1]; ++p) {
        if (granules_done_[p] == target || rho_[p] > heap_.threshold()) continue;
        catch_up(p, target, heap_.threshold());
        if (granules_done_[p] == target) heap_.push(rho_[p], ix_.original_[p]);
      }
    }
    heap_.write_sorted(distances, indices, std::numeric_limits<float>::infinity());
  }

  const SequentialIndex& ix_;
  const search::detail::SearchKernels& sk_;
  const std::int64_t k_;
  keensight::detail::TopK heap_;
  const float* x_ = nullptr;  // the query's (projected) coordinates
  float* z_ = nullptr;        // the same, writable, with a projection
  const float* raw_ = nullptr;  // the query's input row minus the PCA mean, with a projection
  std::int64_t projected_ = 0;  // coordinates of z_ computed so far
  std::int64_t work_ = 0, terms_ = 0;
  bool materialized_ = false;
  std::vector<float> class_min_;
  std::vector<std::int64_t> class_arg_;
  std::vector<char> live_;
  std::vector<float> rho_;                     // partial distance per sorted position
  std::vector<std::int32_t> granules_done_;    // granules summed into rho_
  std::vector<std::int64_t> pending_;          // refine_class: positions to bring up
};

void SequentialIndex::predict(const float* queries, std::int64_t nq, double delta, std::int64_t k,
                              float* class_distances, float* neighbor_distances,
                              std::int64_t* neighbor_indices, std::int64_t* levels,
                              std::int64_t* components, std::int64_t* evaluations,
                              std::int64_t* terms) const {
  if (!(delta >= 1.0)) throw ValueError("delta: expected a number >= 1 (inf: never reject)");
  if (k <= 0) throw ValueError("k: expected a positive number of neighbours");
  const std::int64_t kk = std::min(k, n_);  // slots that can hold a reference
  // The tile the references were packed for (the ISA level may have changed since).
  const keensight::detail::GemmF32Kernels& gk = keensight::detail::gemm_f32_kernels(packed_isa_);
  const search::detail::SearchKernels& sk = search::detail::search_kernels();
  const std::int64_t n = n_, C = n_classes_, m0 = level_end_.front();
  const float inf = std::numeric_limits<float>::infinity();
  // Smaller blocks when there are too few queries for every thread to get a
  // full one (results do not depend on the blocks: each value is computed the
  // same way in any block).
  const std::int64_t threads = std::max<std::int64_t>(1, get_num_threads());
  const std::int64_t block = std::min(kQueryBlock, keensight::detail::round_up((nq + threads - 1) / threads, gk.mr));
  const std::int64_t blocks = (nq + block - 1) / block;

  const bool project = projects();
  const std::int64_t in = input_dim_;
  // Components the block is projected on at once: the first granule's, in whole GEMM panels.
  const std::int64_t first_rows = std::min(keensight::detail::round_up(m0, gk.nr), dim_);

  keensight::detail::parallel_for(blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<float> class_min(static_cast<std::size_t>(block * C));
    std::vector<std::int64_t> class_arg(static_cast<std::size_t>(block * C));
    std::vector<float> projected(project ? static_cast<std::size_t>(block * dim_) : 0);
    std::vector<float> centred(project ? static_cast<std::size_t>(block * input_dim_) : 0);  // queries - mean
    std::vector<float> qoffset(static_cast<std::size_t>(block));
    AlignedFloats packed_q, dots, products;
    SequentialQuery query(*this, sk, kk);
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int64_t q0 = b * block, qn = std::min(block, nq - q0);
      // The block's coordinates (stride dim_): the queries themselves, or
      // their projection on the first granule's components (pca_transform's
      // GEMM and arithmetic, so the same values as PCA.transform gives).
      const float* z = queries + q0 * dim_;
      if (project) {
        const std::int64_t ldc = keensight::detail::round_up(first_rows, gk.nr);
        products.resize(keensight::detail::round_up(qn, gk.mr) * ldc);
        for (std::int64_t i = 0; i < qn; ++i)  // centred first, as pca_transform
          for (std::int64_t j = 0; j < in; ++j) centred[i * in + j] = queries[(q0 + i) * in + j] - mean_[j];
        keensight::detail::gemm_rows(gk, centred.data(), in, qn, packed_components(), first_rows, in,
                                 products.get(), ldc);
        for (std::int64_t i = 0; i < qn; ++i)
          for (std::int64_t j = 0; j < first_rows; ++j) {
            float v = products.get()[i * ldc + j];
            if (!scale_.empty()) v *= scale_[j];
            if (!std::isfinite(v)) throw ValueError(kNotFinite);
            projected[i * dim_ + j] = v;
          }
        z = projected.data();
      }
      // Granule 1 for the whole block. For l2 it is one GEMM, and its epilogue
      // keeps only each class's best value and position: no per-reference
      // distance is stored (that store, 4 bytes per reference per query, cost
      // about as much as the GEMM). The values lack the query's own ||q||^2
      // (||r||^2 - 2 q.r), a constant per query added where they are compared
      // by ratio or reported. A query that goes on to granule 2 computes its
      // first-granule distances again, directly, for the references of the
      // classes still in play (SequentialQuery::prepare).
      if (metric_ == Metric::l2) {
        const std::int64_t ldc = keensight::detail::round_up(kRefBlock, gk.nr);
        packed_q.resize(keensight::detail::packed_size(qn, m0, gk.mr));
        dots.resize(keensight::detail::round_up(qn, gk.mr) * ldc);
        keensight::detail::pack_panels(z, dim_, qn, m0, gk.mr, nullptr, nullptr, packed_q.get());
        for (std::int64_t i = 0; i < qn; ++i) qoffset[i] = sk.dot(z + i * dim_, z + i * dim_, m0);
        std::fill(class_min.begin(), class_min.begin() + qn * C, inf);
        for (std::int64_t i = 0; i < qn; ++i)  // a position in the class even if no value is finite
          std::copy(class_begin_.begin(), class_begin_.end() - 1, class_arg.begin() + i * C);
        for (std::int64_t r0 = 0; r0 < n; r0 += kRefBlock) {  // kRefBlock is a multiple of nr
          const std::int64_t rn = std::min(kRefBlock, n - r0);
          keensight::detail::gemm_packed(gk, packed_q.get(), qn, packed_first() + r0 * m0, rn, m0,
                                     dots.get(), ldc);
          const std::int64_t c_first =
              std::upper_bound(class_begin_.begin(), class_begin_.end(), r0) - class_begin_.begin() - 1;
          for (std::int64_t i = 0; i < qn; ++i) {
            const float* d = dots.get() + i * ldc;
            for (std::int64_t c = c_first; c < C && class_begin_[c] < r0 + rn; ++c) {
              const std::int64_t s0 = std::max(class_begin_[c], r0), s1 = std::min(class_begin_[c + 1], r0 + rn);
              if (s1 <= s0) continue;
              std::int64_t at = 0;
              float& best = class_min[i * C + c];
              const float v = gk.bias_scale_argmin(d + (s0 - r0), first_norms_.data() + s0, -2.f, s1 - s0, best, &at);
              if (v < best) {  // strict: the first position keeps a tie
                best = v;
                class_arg[i * C + c] = s0 + at;
              }
            }
          }
        }
      }
      for (std::int64_t i = 0; i < qn; ++i) {
        const std::int64_t q = q0 + i;
        const bool gemm = metric_ == Metric::l2;
        const SequentialQuery::Result r =
            query.run(z + i * dim_, project ? centred.data() + i * in : nullptr,
                      project ? projected.data() + i * dim_ : nullptr, project ? first_rows : dim_, gemm ? class_min.data() + i * C : nullptr,
                      gemm ? class_arg.data() + i * C : nullptr, gemm ? qoffset[i] : 0.f, delta,
                      class_distances + q * C, neighbor_distances + q * k, neighbor_indices + q * k);
        for (std::int64_t j = kk; j < k; ++j) neighbor_distances[q * k + j] = inf, neighbor_indices[q * k + j] = -1;
        levels[q] = r.levels;
        components[q] = r.components;
        evaluations[q] = r.evaluations;
        terms[q] = r.terms;
      }
    }
  });
}

void SequentialIndex::copy_references(float* out) const {
  std::int64_t begin = 0;
  for (std::size_t g = 0; g < level_end_.size(); ++g) {
    const std::int64_t end = level_end_[g], width = end - begin;
    const float* granule = granules_.data() + granule_offset_[g];
    for (std::int64_t p = 0; p < n_; ++p)
      std::copy(granule + p * width, granule + (p + 1) * width, out + original_[static_cast<std::size_t>(p)] * dim_ + begin);
    begin = end;
  }
}

}  // namespace keensight::search
