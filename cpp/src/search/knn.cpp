// Exact k-NN: the operator. Shapes, blocking, threading and the top-k pass;
// the arithmetic is in the GEMM tile (search/gemm_kernels.hpp) and the pair
// kernels (search/kernels.hpp).
//
// l2 / ip / cosine: a blocked GEMM of query panels against base panels gives
// q.b for a block of queries x a block of base rows; one pass over each row of
// that block turns the dot products into ranking values (l2: ||b||^2 - 2 q.b,
// the query's ||q||^2 being added at the end; ip and cosine: -q.b on raw or
// unit-normalised rows) and feeds the per-query TopK heap, skipping the row
// when its minimum cannot enter the heap (most rows, once the heap is warm).
// faiss computes the same expansion with a BLAS sgemm into a distance matrix
// and a separate top-k pass; fusing them keeps the block in cache.
//
// l1 / chi2 (and very few queries, where packing the base would cost more than
// it saves): pair kernels over base blocks that stay in L2 across the queries.
#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "core/parallel.hpp"
#include "keensight/search.hpp"
#include "search/gemm.hpp"
#include "search/kernels.hpp"
#include "search/topk.hpp"

namespace keensight::search {
namespace {

using search_detail::AlignedFloats;
using search_detail::GemmKernels;
using search_detail::SearchKernels;
using search_detail::TopK;

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

bool uses_gemm(Metric metric) { return metric == Metric::l2 || metric == Metric::ip || metric == Metric::cosine; }

float inverse_norm(const SearchKernels& sk, const float* row, std::int64_t dim) {
  const float norm = std::sqrt(sk.dot(row, row, dim));
  return norm > 0.f ? 1.f / norm : 0.f;  // a zero row stays zero: cosine distance 1
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

// Ranking values (smaller is better) of queries [q0, q1) against base rows [b0, b1)
// through the GEMM: heaps[i - q0] receives (value, index) for query i.
void gemm_worker(const float* queries, std::int64_t q0, std::int64_t q1, const float* base, std::int64_t b0,
                 std::int64_t b1, std::int64_t dim, Metric metric, TopK* heaps) {
  const GemmKernels& kern = search_detail::gemm_kernels();
  const SearchKernels& sk = search_detail::search_kernels();
  const int mr = kern.mr, nr = kern.nr;
  const std::int64_t mc = search_detail::round_up(search_detail::kGemmMC, mr);
  const std::int64_t nb = search_detail::gemm_block_rows(dim, nr);
  const std::int64_t ldc = search_detail::round_up(nb, nr);
  const std::int64_t chunk = std::max<std::int64_t>(mc, kQueryChunkBytes / (dim * 4) / mc * mc);
  const bool cosine = metric == Metric::cosine;
  const float scale = metric == Metric::l2 ? -2.f : -1.f;

  AlignedFloats a_pack(search_detail::packed_size(std::min(chunk, q1 - q0), dim, mr));
  AlignedFloats b_pack(search_detail::packed_size(std::min(nb, b1 - b0), dim, nr));
  AlignedFloats c(mc * ldc);
  std::vector<float> bias(static_cast<std::size_t>(search_detail::round_up(nb, nr))), row_scale(static_cast<std::size_t>(std::max(chunk, nb)));

  for (std::int64_t qs = q0; qs < q1; qs += chunk) {
    const std::int64_t mq = std::min(chunk, q1 - qs);
    const float* qrows = queries + qs * dim;
    if (cosine)
      for (std::int64_t i = 0; i < mq; ++i) row_scale[i] = inverse_norm(sk, qrows + i * dim, dim);
    search_detail::pack_panels(qrows, dim, mq, dim, mr, cosine ? row_scale.data() : nullptr, nullptr, a_pack.get());

    for (std::int64_t bs = b0; bs < b1; bs += nb) {
      const std::int64_t mb = std::min(nb, b1 - bs);
      const float* brows = base + bs * dim;
      if (cosine) {  // unit rows: scaled while packed
        for (std::int64_t j = 0; j < mb; ++j) row_scale[j] = inverse_norm(sk, brows + j * dim, dim);
        search_detail::pack_panels(brows, dim, mb, dim, nr, row_scale.data(), nullptr, b_pack.get());
      } else {  // l2: the packing pass also yields ||b||^2 (one read of the base, not two)
        const float* rows[64];  // nr <= 64 in every kernel table
        for (std::int64_t p0 = 0; p0 < mb; p0 += nr) {
          for (int i = 0; i < nr; ++i) rows[i] = p0 + i < mb ? brows + (p0 + i) * dim : nullptr;
          kern.pack_panel_b(rows, dim, b_pack.get() + p0 * dim, metric == Metric::l2 ? bias.data() + p0 : nullptr);
        }
      }
      if (metric != Metric::l2) std::fill(bias.begin(), bias.begin() + mb, 0.f);

      for (std::int64_t ic = 0; ic < mq; ic += mc) {
        const std::int64_t m = std::min(mc, mq - ic);
        search_detail::gemm_packed(kern, a_pack.get() + ic * dim, m, b_pack.get(), mb, dim, c.get(), ldc);
        for (std::int64_t i = 0; i < m; ++i) {
          TopK& heap = heaps[qs + ic + i - q0];
          float* row = c.get() + i * ldc;
          const float best = kern.bias_scale_min(row, bias.data(), scale, mb, row);
          if (best <= heap.threshold()) push_row(heap, row, mb, bs);
        }
      }
    }
  }
}

// The same through the pair kernels, for every metric.
void pair_worker(const float* queries, std::int64_t q0, std::int64_t q1, const float* base, std::int64_t b0,
                 std::int64_t b1, std::int64_t dim, Metric metric, TopK* heaps) {
  const SearchKernels& sk = search_detail::search_kernels();
  const std::int64_t nb = std::max<std::int64_t>(1, kPairBlockBytes / (dim * 4));
  std::vector<float> values(static_cast<std::size_t>(nb)), base_scale;
  std::vector<float> query_scale;
  if (metric == Metric::cosine) {
    query_scale.resize(static_cast<std::size_t>(q1 - q0));
    base_scale.resize(static_cast<std::size_t>(nb));
    for (std::int64_t i = q0; i < q1; ++i) query_scale[i - q0] = inverse_norm(sk, queries + i * dim, dim);
  }
  for (std::int64_t bs = b0; bs < b1; bs += nb) {
    const std::int64_t mb = std::min(nb, b1 - bs);
    const float* brows = base + bs * dim;
    if (metric == Metric::cosine)
      for (std::int64_t j = 0; j < mb; ++j) base_scale[j] = inverse_norm(sk, brows + j * dim, dim);
    for (std::int64_t i = q0; i < q1; ++i) {
      const float* q = queries + i * dim;
      switch (metric) {
        case Metric::l2:
          for (std::int64_t j = 0; j < mb; ++j) values[j] = sk.l2_sq(q, brows + j * dim, dim);
          break;
        case Metric::ip:
          for (std::int64_t j = 0; j < mb; ++j) values[j] = -sk.dot(q, brows + j * dim, dim);
          break;
        case Metric::cosine:
          for (std::int64_t j = 0; j < mb; ++j)
            values[j] = -(sk.dot(q, brows + j * dim, dim) * query_scale[i - q0]) * base_scale[j];
          break;
        case Metric::l1:
          for (std::int64_t j = 0; j < mb; ++j) values[j] = sk.l1(q, brows + j * dim, dim);
          break;
        case Metric::chi2:
          for (std::int64_t j = 0; j < mb; ++j) values[j] = sk.chi2(q, brows + j * dim, dim);
          break;
      }
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

// Heap values -> reported values, in place on one query's k slots, then the
// order restored where the mapping made new ties (clamping, rounding of ||q||^2 + v).
void finish_row(Metric metric, bool gemm, float query_sq_norm, std::int64_t k, float* d, std::int64_t* idx) {
  std::int64_t valid = 0;
  while (valid < k && idx[valid] >= 0) ++valid;
  bool resort = false;
  for (std::int64_t j = 0; j < valid; ++j) {
    switch (metric) {
      case Metric::l2:
        if (gemm) {
          d[j] = std::max(0.f, query_sq_norm + d[j]);  // the expansion can dip below 0
          resort = true;
        }
        break;
      case Metric::ip: d[j] = -d[j]; break;  // exact: the order is kept
      case Metric::cosine:
        d[j] = std::min(2.f, std::max(0.f, 1.f + d[j]));
        resort = true;
        break;
      case Metric::l1:
      case Metric::chi2: break;
    }
  }
  if (metric == Metric::ip)
    for (std::int64_t j = valid; j < k; ++j) d[j] = -std::numeric_limits<float>::infinity();
  if (resort) {
    std::vector<std::pair<float, std::int64_t>> items(static_cast<std::size_t>(valid));
    for (std::int64_t j = 0; j < valid; ++j) items[j] = {d[j], idx[j]};
    if (!std::is_sorted(items.begin(), items.end())) {
      std::sort(items.begin(), items.end());
      for (std::int64_t j = 0; j < valid; ++j) d[j] = items[j].first, idx[j] = items[j].second;
    }
  }
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

  const bool gemm = uses_gemm(metric) && nq >= kMinGemmQueries;
  const auto worker = gemm ? gemm_worker : pair_worker;
  std::vector<TopK> heaps;
  heaps.reserve(static_cast<std::size_t>(nq));
  for (std::int64_t i = 0; i < nq; ++i) heaps.emplace_back(std::min(k, n));

  // Split the queries when there are enough of them, else the base (each part
  // keeps its own heaps, merged after). Either way a candidate's value depends
  // only on the pair, and TopK keeps the k best under a total order (value,
  // index), so the result does not depend on how the work was split.
  const std::int64_t threads = get_num_threads();
  const std::int64_t unit = gemm ? search_detail::gemm_block_rows(dim, search_detail::gemm_kernels().nr)
                                 : std::max<std::int64_t>(1, kPairBlockBytes / (dim * 4));
  const std::int64_t units = (n + unit - 1) / unit;
  if (threads <= 1 || units < 2 * threads || nq * std::min(k, n) > kMaxSplitBaseCandidates) {
    detail::parallel_chunks(nq, 4, [&](std::int64_t begin, std::int64_t end) {
      worker(queries, begin, end, base, 0, n, dim, metric, heaps.data() + begin);
    });
  } else {
    std::mutex merge_mutex;
    detail::parallel_chunks(units, 1, [&](std::int64_t begin, std::int64_t end) {
      std::vector<TopK> part;
      part.reserve(static_cast<std::size_t>(nq));
      for (std::int64_t i = 0; i < nq; ++i) part.emplace_back(std::min(k, n));
      worker(queries, 0, nq, base, begin * unit, std::min(n, end * unit), dim, metric, part.data());
      std::vector<float> d(static_cast<std::size_t>(k));
      std::vector<std::int64_t> idx(static_cast<std::size_t>(k));
      std::lock_guard<std::mutex> lock(merge_mutex);
      for (std::int64_t i = 0; i < nq; ++i) {
        const std::int64_t kept = part[i].size();
        part[i].write_sorted(d.data(), idx.data(), 0.f);
        for (std::int64_t j = 0; j < kept; ++j) heaps[i].push(d[j], idx[j]);
      }
    });
  }

  const SearchKernels& sk = search_detail::search_kernels();
  detail::parallel_chunks(nq, 256, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      float* d = distances + i * k;
      std::int64_t* idx = indices + i * k;
      heaps[i].write_sorted(d, idx, std::numeric_limits<float>::infinity());  // min(k, n) slots
      for (std::int64_t j = std::min(k, n); j < k; ++j) d[j] = std::numeric_limits<float>::infinity(), idx[j] = -1;
      const float q_sq = metric == Metric::l2 && gemm ? sk.dot(queries + i * dim, queries + i * dim, dim) : 0.f;
      finish_row(metric, gemm, q_sq, k, d, idx);
    }
  });
}

}  // namespace keensight::search
