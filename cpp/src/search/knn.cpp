// Exact k-NN: the operator. Shapes, blocking, threading and the top-k pass;
// the arithmetic is in the GEMM tile (core/gemm.hpp) and the pair
// kernels (search/kernels.hpp).
//
// Every reported neighbour and distance is the one the pair kernels give
// (l2_sq / dot / l1 / chi2 of the two rows, ties broken by the lower index), so
// the answer to a query never depends on the batch it came in, the path taken
// or the thread count.
//
// l1 / chi2, and fewer than kMinGemmQueries queries: pair kernels over base
// blocks that stay in L2 across the queries.
//
// l2 / ip / cosine with more queries: a blocked GEMM of query panels against
// base panels gives q.b for a block of queries x a block of base rows; one pass
// over each row of that block turns the dot products into approximate ranking
// values (l2: ||b||^2 - 2 q.b, the query's ||q||^2 added at the end; ip and
// cosine: -q.b on raw or unit-normalised rows) and feeds a per-query TopK heap
// of k + a few candidates, skipping the row when its minimum cannot enter the
// heap (most rows, once the heap is warm). faiss computes the same expansion
// with a BLAS sgemm into a distance matrix and a separate top-k pass; fusing
// them keeps the block in cache. The expansion cancels catastrophically when
// the rows lie far from the origin compared with their distances (float32 has
// 24 bits: data at 1e4 +- 1 leaves none for the distances), so for l2 the base
// and the queries are first shifted by the mean of a sample of the base rows,
// which leaves every distance unchanged. Then the candidates' values are
// computed again directly, with the pair kernels, and a floating-point error
// bound certifies that no row outside the candidates can be among the k best
// (see certified()); a query the bound cannot certify (near-ties within
// rounding of many rows, overflow) is answered by the pair kernels over the
// whole base. Rows far beyond float32's range make distances overflow: that is
// reported (ValueError), not returned as inf.
#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/parallel.hpp"
#include "keensight/search.hpp"
#include "core/gemm.hpp"
#include "search/kernels.hpp"
#include "core/topk.hpp"

namespace keensight::search {
namespace {

using keensight::detail::AlignedFloats;
using keensight::detail::GemmF32Kernels;
using search::detail::SearchKernels;
using keensight::detail::TopK;

// Below this many queries the GEMM path does not pay for packing the base
// (measured at 60k x 1280, one thread: packing ~25 ms, about one read of the
// base, then ~1.5 ms a query; the pair kernels take ~5.7 ms a query).
constexpr std::int64_t kMinGemmQueries = 8;
// Queries packed at once by one worker (bounds the packed copy to 32 MiB).
constexpr std::int64_t kQueryChunkBytes = std::int64_t{32} << 20;
// Base rows per block of the pair path: 256 KiB, so a block stays in L2 while
// every query of the worker passes over it.
constexpr std::int64_t kPairBlockBytes = std::int64_t{256} << 10;
// The threads split the base (each part packed by one thread only, its heaps
// merged after) unless the base has too few blocks to share or the per-thread
// heaps would grow large (nq x k candidates per thread, 16 bytes each); else
// they split the queries, and every thread packs the whole base (~2% of the
// FMAs of a 1000-query search at 1280-d, more for fewer queries).
constexpr std::int64_t kMaxSplitBaseCandidates = std::int64_t{1} << 22;
// Base rows averaged for the l2 shift: a sample is as good as the mean for
// centring (the shift only needs to lie among the data) and costs nothing.
constexpr std::int64_t kCentreSample = 1024;

bool uses_gemm(Metric metric) { return metric == Metric::l2 || metric == Metric::ip || metric == Metric::cosine; }

// Candidates the GEMM pass keeps per query: k and a margin, so that the k-th
// best is usually separated from the last kept by more than the rounding
// bound (certified() then needs no fallback).
std::int64_t gemm_candidates(std::int64_t k, std::int64_t n) {
  return std::min(n, k + std::max<std::int64_t>(4, k / 4));
}

// gamma_n = n u / (1 - n u), u = 2^-24: the classical bound on the relative
// error of a float32 sum or dot product of n terms in any order (N. J. Higham,
// "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM 2002, §3.1).
double gamma(std::int64_t n) {
  const double nu = static_cast<double>(n) * std::ldexp(1.0, -24);
  return nu / (1.0 - nu);
}

float inverse_norm(const SearchKernels& sk, const float* row, std::int64_t dim) {
  const float norm = std::sqrt(sk.dot(row, row, dim));
  return norm > 0.f ? 1.f / norm : 0.f;  // a zero row stays zero: cosine distance 1
}

// The value the pair path ranks by (smaller is better) for one pair of rows:
// the exact arithmetic every reported distance comes from. q_scale / b_scale
// are inverse norms (cosine only).
template <Metric M>
inline float pair_value(const SearchKernels& sk, const float* q, const float* b, std::int64_t dim, float q_scale,
                        float b_scale) {
  if constexpr (M == Metric::l2) return sk.l2_sq(q, b, dim);
  if constexpr (M == Metric::ip) return -sk.dot(q, b, dim);
  if constexpr (M == Metric::cosine) return -(sk.dot(q, b, dim) * q_scale) * b_scale;
  if constexpr (M == Metric::l1) return sk.l1(q, b, dim);
  if constexpr (M == Metric::chi2) return sk.chi2(q, b, dim);
  return 0.f;
}

template <class Fn>
void with_metric(Metric metric, Fn&& fn) {
  switch (metric) {
    case Metric::l2: fn(std::integral_constant<Metric, Metric::l2>()); break;
    case Metric::ip: fn(std::integral_constant<Metric, Metric::ip>()); break;
    case Metric::cosine: fn(std::integral_constant<Metric, Metric::cosine>()); break;
    case Metric::l1: fn(std::integral_constant<Metric, Metric::l1>()); break;
    case Metric::chi2: fn(std::integral_constant<Metric, Metric::chi2>()); break;
  }
}

// Pushes the values of one row of candidates (base indices first, first + 1, ...).
inline void push_row(TopK& heap, const float* values, std::int64_t count, std::int64_t first) {
  float threshold = heap.threshold();
  for (std::int64_t j = 0; j < count; ++j) {
    if (values[j] <= threshold) {  // <=: a tie may still win on the lower index
      heap.push(values[j], first + j);
      threshold = heap.threshold();
    }
  }
}

// Approximate ranking values (smaller is better) of queries [q0, q1) against
// base rows [b0, b1) through the GEMM: heaps[i - q0] receives (value, index)
// for query i. l2: rows shifted by `centre`. *max_sq_norm receives the largest
// squared norm of a packed base row seen (ip's error bound needs it).
void gemm_worker(const SearchKernels& sk, const float* queries, std::int64_t q0, std::int64_t q1, const float* base,
                 std::int64_t b0, std::int64_t b1, std::int64_t dim, Metric metric, const float* centre, TopK* heaps,
                 float* max_sq_norm) {
  const GemmF32Kernels& kern = keensight::detail::gemm_f32_kernels();
  const int mr = kern.mr, nr = kern.nr;
  const std::int64_t mc = keensight::detail::round_up(keensight::detail::kGemmMC, mr);
  const std::int64_t nb = keensight::detail::gemm_block_rows(dim, nr);
  const std::int64_t ldc = keensight::detail::round_up(nb, nr);
  const std::int64_t chunk = std::max<std::int64_t>(mc, kQueryChunkBytes / (dim * 4) / mc * mc);
  const bool cosine = metric == Metric::cosine;
  const float scale = metric == Metric::l2 ? -2.f : -1.f;

  AlignedFloats a_pack(keensight::detail::packed_size(std::min(chunk, q1 - q0), dim, mr));
  AlignedFloats b_pack(keensight::detail::packed_size(std::min(nb, b1 - b0), dim, nr));
  AlignedFloats c(mc * ldc);
  std::vector<float> bias(static_cast<std::size_t>(keensight::detail::round_up(nb, nr))),
      norms(static_cast<std::size_t>(keensight::detail::round_up(nb, nr))),
      row_scale(static_cast<std::size_t>(std::max(chunk, nb)));
  float max_norm = 0.f;

  for (std::int64_t qs = q0; qs < q1; qs += chunk) {
    const std::int64_t mq = std::min(chunk, q1 - qs);
    const float* qrows = queries + qs * dim;
    if (cosine)
      for (std::int64_t i = 0; i < mq; ++i) row_scale[i] = inverse_norm(sk, qrows + i * dim, dim);
    keensight::detail::pack_panels(qrows, dim, mq, dim, mr, cosine ? row_scale.data() : nullptr, centre, a_pack.get());

    for (std::int64_t bs = b0; bs < b1; bs += nb) {
      const std::int64_t mb = std::min(nb, b1 - bs);
      const float* brows = base + bs * dim;
      if (cosine) {  // unit rows: scaled while packed
        for (std::int64_t j = 0; j < mb; ++j) row_scale[j] = inverse_norm(sk, brows + j * dim, dim);
        keensight::detail::pack_panels(brows, dim, mb, dim, nr, row_scale.data(), nullptr, b_pack.get());
      } else {  // the packing pass also yields ||b||^2 (one read of the base, not two)
        const float* rows[64];  // nr <= 64 in every kernel table
        for (std::int64_t p0 = 0; p0 < mb; p0 += nr) {
          for (int i = 0; i < nr; ++i) rows[i] = p0 + i < mb ? brows + (p0 + i) * dim : nullptr;
          kern.pack_panel_b(rows, dim, centre, b_pack.get() + p0 * dim, norms.data() + p0);
        }
        for (std::int64_t j = 0; j < mb; ++j) max_norm = std::max(max_norm, norms[j]);
      }
      if (metric == Metric::l2) std::copy(norms.begin(), norms.begin() + mb, bias.begin());
      else std::fill(bias.begin(), bias.begin() + mb, 0.f);

      // The GEMM's epilogue callback: each finished block of dot products
      // becomes ranking values and goes to the heaps (no distance matrix).
      const auto top_k = [&](std::int64_t row0, std::int64_t, std::int64_t rows, std::int64_t cols, float* block,
                             std::int64_t ld) {
        for (std::int64_t i = 0; i < rows; ++i) {
          TopK& heap = heaps[qs + row0 + i - q0];
          float* row = block + i * ld;
          const float best = kern.bias_scale_min(row, bias.data(), scale, cols, row);
          if (best <= heap.threshold()) push_row(heap, row, cols, bs);
        }
      };
      const auto epilogue = keensight::detail::gemm_callback<float>(top_k);
      for (std::int64_t ic = 0; ic < mq; ic += mc) {
        const std::int64_t m = std::min(mc, mq - ic);
        keensight::detail::gemm_packed(kern, a_pack.get() + ic * dim, m, b_pack.get(), mb, dim, c.get(), ldc);
        keensight::detail::apply_epilogue(epilogue, ic, 0, m, mb, c.get(), ldc);
      }
    }
  }
  *max_sq_norm = std::max(*max_sq_norm, max_norm);
}

// The same with the pair values, for every metric: exact, the reference of
// every result.
template <Metric M>
void pair_worker(const SearchKernels& sk, const float* queries, std::int64_t q0, std::int64_t q1, const float* base,
                 std::int64_t b0, std::int64_t b1, std::int64_t dim, TopK* heaps) {
  const std::int64_t nb = std::max<std::int64_t>(1, kPairBlockBytes / (dim * 4));
  std::vector<float> values(static_cast<std::size_t>(nb)), base_scale, query_scale;
  if constexpr (M == Metric::cosine) {
    query_scale.resize(static_cast<std::size_t>(q1 - q0));
    base_scale.resize(static_cast<std::size_t>(nb));
    for (std::int64_t i = q0; i < q1; ++i) query_scale[i - q0] = inverse_norm(sk, queries + i * dim, dim);
  }
  for (std::int64_t bs = b0; bs < b1; bs += nb) {
    const std::int64_t mb = std::min(nb, b1 - bs);
    const float* brows = base + bs * dim;
    if constexpr (M == Metric::cosine)
      for (std::int64_t j = 0; j < mb; ++j) base_scale[j] = inverse_norm(sk, brows + j * dim, dim);
    for (std::int64_t i = q0; i < q1; ++i) {
      const float* q = queries + i * dim;
      const float qs = M == Metric::cosine ? query_scale[i - q0] : 1.f;
      for (std::int64_t j = 0; j < mb; ++j)
        values[j] = pair_value<M>(sk, q, brows + j * dim, dim, qs, M == Metric::cosine ? base_scale[j] : 1.f);
      push_row(heaps[i - q0], values.data(), mb, bs);
    }
  }
}

void check_non_negative(const float* x, std::int64_t count, const char* name) {
  for (std::int64_t i = 0; i < count; ++i)
    if (x[i] < 0.f)
      throw ValueError(std::string(name) + ": the chi2 metric needs non-negative features, found " +
                       std::to_string(x[i]) + " at flat position " + std::to_string(i));
}

// The mean of up to kCentreSample evenly spaced base rows (double sums).
std::vector<float> sample_centre(const float* base, std::int64_t n, std::int64_t dim) {
  const std::int64_t rows = std::min(n, kCentreSample);
  std::vector<double> sum(static_cast<std::size_t>(dim), 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = base + (rows == n ? r : r * (n - 1) / (rows - 1)) * dim;
    for (std::int64_t j = 0; j < dim; ++j) sum[j] += row[j];
  }
  std::vector<float> centre(static_cast<std::size_t>(dim));
  for (std::int64_t j = 0; j < dim; ++j) centre[j] = static_cast<float>(sum[j] / static_cast<double>(rows));
  return centre;
}

// Whether no base row outside a query's GEMM candidates can rank among its k
// best by pair value. `tau`: the worst approximate value kept (every row left
// out has an approximate value >= tau); `kth`: the k-th best pair value among
// the candidates. Bounds (u = 2^-24; summation depths h: a GEMM product sums a
// slice of s coordinates in sequence, then adds the ceil(dim / s) slices; the
// packed norms are eight partial sums; the pair kernels sum at most dim terms):
// - l2, rows shifted by c: q' = fl(q - c), b' = fl(b - c), p = ||q'||, r = ||b'||.
//   The approximate value a = fl(||b'||^2 - 2 q'.b') + ||q'||^2 is within
//   (gamma_h + 2u) (p + r)^2 of ||q' - b'||^2, which is within 2u'(p + r)^2
//   of the true D = ||q - b||^2 (the shift's roundings); the pair value is
//   D (1 +- gamma_(dim+4)). A row left out with r >= r0 = (sqrt(Y) + p(1+u)) /
//   (1-u) has D >= Y by the triangle inequality; one with r < r0 has D >=
//   tau - c (p + r0)^2. So if tau - c (p + r0)^2 > Y, with Y = kth / (1 -
//   gamma_(dim+4)), every row left out has a pair value > kth: outliers far
//   from the query cost nothing, only the query's neighbourhood scale counts.
// - ip: |approximate - pair| <= (gamma_h + gamma_dim) ||q|| max ||b||.
// - cosine (unit rows): |approximate - pair| <= 2 gamma_(h+4).
// Each bound is doubled for safety.
bool certified(Metric metric, std::int64_t dim, double tau, double kth, double p, double max_b) {
  const std::int64_t slice = keensight::detail::gemm_slice_length(dim);
  const std::int64_t h = std::max(slice + (dim + slice - 1) / slice, dim / 8 + 8) + 2;
  const double u = std::ldexp(1.0, -24);
  if (!(std::isfinite(tau) && std::isfinite(kth))) return false;
  switch (metric) {
    case Metric::l2: {
      const double c = 2.0 * (gamma(h) + 4.0 * u);
      const double y = std::max(0.0, kth) / (1.0 - gamma(dim + 4));
      const double r0 = (std::sqrt(y) + p * (1.0 + u)) / (1.0 - u) * (1.0 + 1e-6);
      return tau - c * (p + r0) * (p + r0) > y;
    }
    case Metric::ip: return tau - 2.0 * (gamma(h) + gamma(dim)) * p * max_b > kth;
    case Metric::cosine: return tau - 4.0 * gamma(h + 4) > kth;
    case Metric::l1:
    case Metric::chi2: break;
  }
  return false;
}

[[noreturn]] void throw_overflow(Metric metric) {
  throw ValueError(std::string("knn: ") + metric_name(metric) +
                   " distances overflow float32 (the vectors' values are too large); rescale the vectors "
                   "(e.g. divide them by their largest magnitude)");
}

// Reported values from pair values, in place on one query's k slots
// (ip: similarities; cosine clamped to [0, 2]), order restored where clamping
// made new ties.
void finish_row(Metric metric, std::int64_t k, float* d, std::int64_t* idx) {
  std::int64_t valid = 0;
  while (valid < k && idx[valid] >= 0) ++valid;
  if (metric == Metric::ip) {
    for (std::int64_t j = 0; j < valid; ++j) d[j] = -d[j];  // exact: the order is kept
    for (std::int64_t j = valid; j < k; ++j) d[j] = -std::numeric_limits<float>::infinity();
  } else if (metric == Metric::cosine) {
    for (std::int64_t j = 0; j < valid; ++j) d[j] = std::min(2.f, std::max(0.f, 1.f + d[j]));
    std::vector<std::pair<float, std::int64_t>> items(static_cast<std::size_t>(valid));
    for (std::int64_t j = 0; j < valid; ++j) items[j] = {d[j], idx[j]};
    if (!std::is_sorted(items.begin(), items.end())) {
      std::sort(items.begin(), items.end());
      for (std::int64_t j = 0; j < valid; ++j) d[j] = items[j].first, idx[j] = items[j].second;
    }
  }
  for (std::int64_t j = 0; j < valid; ++j)
    if (!std::isfinite(d[j])) throw_overflow(metric);
}

// Runs `worker(begin, end, heaps_of_that_range)` over all queries, splitting the
// queries between threads when there are enough of them, else the base (each
// part with its own heaps, merged after). A candidate's value depends only on
// the pair, and TopK keeps the best under a total order (value, index), so the
// kept set does not depend on how the work was split.
template <class Worker>
void run_split(std::int64_t nq, std::int64_t n, std::int64_t unit, std::int64_t heap_size, std::vector<TopK>& heaps,
               const Worker& worker) {
  const std::int64_t threads = get_num_threads();
  const std::int64_t units = (n + unit - 1) / unit;
  if (threads <= 1 || units < 2 * threads || nq * heap_size > kMaxSplitBaseCandidates) {
    keensight::detail::parallel_for(nq, 4, [&](std::int64_t begin, std::int64_t end) {
      worker(begin, end, std::int64_t{0}, n, heaps.data() + begin);
    });
    return;
  }
  std::mutex merge_mutex;
  keensight::detail::parallel_for(units, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<TopK> part;
    part.reserve(static_cast<std::size_t>(nq));
    for (std::int64_t i = 0; i < nq; ++i) part.emplace_back(heap_size);
    worker(std::int64_t{0}, nq, begin * unit, std::min(n, end * unit), part.data());
    std::vector<float> d(static_cast<std::size_t>(heap_size));
    std::vector<std::int64_t> idx(static_cast<std::size_t>(heap_size));
    std::lock_guard<std::mutex> lock(merge_mutex);
    for (std::int64_t i = 0; i < nq; ++i) {
      part[i].write_sorted(d.data(), idx.data(), 0.f);
      heaps[i].merge(d.data(), idx.data(), heap_size);
    }
  });
}

// The pair path for the queries listed in `which` (all of them when null):
// exact top-k heaps of size min(k, n).
void pair_search(const SearchKernels& sk, const float* queries, const std::vector<std::int64_t>* which,
                 std::int64_t nq, const float* base, std::int64_t n, std::int64_t dim, std::int64_t k, Metric metric,
                 std::vector<TopK>& heaps) {
  std::vector<float> gathered;
  const float* q = queries;
  if (which) {  // contiguous rows for the workers
    gathered.resize(static_cast<std::size_t>(nq * dim));
    for (std::int64_t i = 0; i < nq; ++i)
      std::copy(queries + (*which)[i] * dim, queries + ((*which)[i] + 1) * dim, gathered.begin() + i * dim);
    q = gathered.data();
  }
  heaps.clear();
  heaps.reserve(static_cast<std::size_t>(nq));
  for (std::int64_t i = 0; i < nq; ++i) heaps.emplace_back(std::min(k, n));
  const std::int64_t unit = std::max<std::int64_t>(1, kPairBlockBytes / (dim * 4));
  with_metric(metric, [&](auto m) {
    run_split(nq, n, unit, std::min(k, n), heaps,
              [&](std::int64_t q0, std::int64_t q1, std::int64_t b0, std::int64_t b1, TopK* h) {
                pair_worker<decltype(m)::value>(sk, q, q0, q1, base, b0, b1, dim, h);
              });
  });
}

}  // namespace

void knn(const float* queries, std::int64_t nq, const float* base, std::int64_t n, std::int64_t dim, std::int64_t k,
         Metric metric, float* distances, std::int64_t* indices) {
  if (dim < 1) throw ValueError("dim: expected at least 1, got " + std::to_string(dim));
  if (n < 1) throw ValueError("base: expected at least one row");
  if (nq < 0) throw ValueError("queries: negative row count");
  if (k < 1) throw ValueError("k: expected a positive int, got " + std::to_string(k));
  if (nq == 0) return;
  if (!queries || !base || !distances || !indices) throw ValueError("knn: null pointer");
  if (metric == Metric::chi2) {
    check_non_negative(queries, nq * dim, "queries");
    check_non_negative(base, n * dim, "base");
  }
  const SearchKernels& sk = search::detail::search_kernels();
  const float inf = std::numeric_limits<float>::infinity();
  const std::int64_t kk = std::min(k, n);  // slots that can hold a neighbour

  // Writes query i's k slots from a heap of pair values. Finite inputs give a
  // NaN value only by overflow (inf - inf), and a NaN never enters a heap: a
  // heap short of min(k, n) values is an overflow too.
  const auto write_exact = [&](std::int64_t i, TopK& heap) {
    if (heap.size() < kk) throw_overflow(metric);
    float* d = distances + i * k;
    std::int64_t* idx = indices + i * k;
    heap.write_sorted(d, idx, inf);  // kk slots
    for (std::int64_t j = kk; j < k; ++j) d[j] = inf, idx[j] = -1;
    finish_row(metric, k, d, idx);
  };

  std::vector<TopK> heaps;
  if (!uses_gemm(metric) || nq < kMinGemmQueries) {
    pair_search(sk, queries, nullptr, nq, base, n, dim, k, metric, heaps);
    keensight::detail::parallel_for(nq, 256, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) write_exact(i, heaps[i]);
    });
    return;
  }

  // GEMM candidates, then their pair values and the certificate.
  const std::int64_t kc = gemm_candidates(k, n);
  const std::vector<float> centre = metric == Metric::l2 ? sample_centre(base, n, dim) : std::vector<float>();
  const float* c = centre.empty() ? nullptr : centre.data();
  heaps.reserve(static_cast<std::size_t>(nq));
  for (std::int64_t i = 0; i < nq; ++i) heaps.emplace_back(kc);
  float max_sq_norm = 0.f;
  std::mutex norm_mutex;
  run_split(nq, n, keensight::detail::gemm_block_rows(dim, keensight::detail::gemm_f32_kernels().nr), kc, heaps,
            [&](std::int64_t q0, std::int64_t q1, std::int64_t b0, std::int64_t b1, TopK* h) {
              float local = 0.f;
              gemm_worker(sk, queries, q0, q1, base, b0, b1, dim, metric, c, h, &local);
              std::lock_guard<std::mutex> lock(norm_mutex);
              max_sq_norm = std::max(max_sq_norm, local);
            });
  const double max_b = std::sqrt(static_cast<double>(max_sq_norm)) * (1.0 + gamma(dim + 2));

  std::vector<char> done(static_cast<std::size_t>(nq), 0);
  keensight::detail::parallel_for(nq, 64, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> approx(static_cast<std::size_t>(kc));
    std::vector<std::int64_t> cand(static_cast<std::size_t>(kc));
    std::vector<float> shifted(c ? static_cast<std::size_t>(dim) : 0);
    TopK exact(kk);
    for (std::int64_t i = begin; i < end; ++i) {
      const float* q = queries + i * dim;
      const std::int64_t kept = heaps[i].size();
      heaps[i].write_sorted(approx.data(), cand.data(), inf);
      // The query's norm (shifted for l2), in double: the bound's p, and l2's ||q'||^2.
      double p2 = 0.0;
      for (std::int64_t j = 0; j < dim; ++j) {
        const float v = c ? q[j] - c[j] : q[j];
        p2 += static_cast<double>(v) * v;
      }
      const float qs = metric == Metric::cosine ? inverse_norm(sk, q, dim) : 1.f;
      exact.clear();
      with_metric(metric, [&](auto m) {
        for (std::int64_t j = 0; j < kept; ++j) {
          const float* b = base + cand[j] * dim;
          exact.push(pair_value<decltype(m)::value>(sk, q, b, dim, qs,
                                                      metric == Metric::cosine ? inverse_norm(sk, b, dim) : 1.f),
                     cand[j]);
        }
      });
      bool ok = kept >= n;  // every row is a candidate
      if (!ok && kept == kc) {
        const double tau = static_cast<double>(approx[kc - 1]) + (metric == Metric::l2 ? p2 : 0.0);
        ok = certified(metric, dim, tau, static_cast<double>(exact.threshold()), std::sqrt(p2), max_b);
      }
      if (!ok) continue;
      write_exact(i, exact);
      done[i] = 1;
    }
  });

  // Queries the bound could not certify: the pair path over the whole base.
  std::vector<std::int64_t> rest;
  for (std::int64_t i = 0; i < nq; ++i)
    if (!done[i]) rest.push_back(i);
  if (rest.empty()) return;
  pair_search(sk, queries, &rest, static_cast<std::int64_t>(rest.size()), base, n, dim, k, metric, heaps);
  keensight::detail::parallel_for(static_cast<std::int64_t>(rest.size()), 256, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) write_exact(rest[r], heaps[r]);
  });
}

}  // namespace keensight::search
