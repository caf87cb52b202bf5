// keensight::search::HNSWIndex: its operations (add, search, deletion marks,
// the rotation and its fit, settings), over the graph of hnsw_graph.hpp. The
// file format is in hnsw_io.cpp.
//
// Locking: searches hold the index's lock shared, mutations (add, delete
// marks, settings) exclusively; while add() builds the graph with several
// threads, the per-node spin locks of the storage guard the link lists.
#include "keensight/search/hnsw.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/parallel.hpp"
#include "core/topk.hpp"
#include "search/hnsw_index.hpp"
#include "search/kernels.hpp"

namespace keensight::search {

namespace {

using detail::AcceptAll;
using detail::AcceptLive;
using detail::AcceptMask;
using detail::Cand;
using detail::Distance;
using detail::kInf;
using detail::kNoLink;
using detail::kNoLink16;
using detail::Scratch;
using detail::SearchKernels;
using detail::kMaxNorm2;
constexpr std::int64_t kQueryBlockBytes = std::int64_t{4} << 20;  // see search()
// pca=true keeps the leading kPcaAxes axes in order and completes them with
// Householder reflectors (set_pca_axes: 2 k dim + k^2 floats and multiply-adds
// per rotated vector instead of dim^2) when that is cheaper; the
// early-termination checks fall in the first granules (32, then every 128
// coordinates), where the leading axes carry the variance.
constexpr std::int64_t kPcaAxes = 128;

}  // namespace

const HNSWOptions& HNSWIndex::Impl::checked(std::int64_t dim, const HNSWOptions& opt) {
  if (dim <= 0 || dim > (std::int64_t{1} << 24))
    throw ValueError("HNSWIndex: dim must be in [1, 2^24], got " + std::to_string(dim));
  if (opt.metric != Metric::l2 && opt.metric != Metric::ip && opt.metric != Metric::cosine)
    throw ValueError(std::string("HNSWIndex: metric must be l2, ip or cosine, got ") + metric_name(opt.metric));
  if (opt.M < 2 || opt.M > 2048) throw ValueError("HNSWIndex: M must be in [2, 2048], got " + std::to_string(opt.M));
  HNSWIndex::Impl::check_ef(opt.ef_construction, "ef_construction");
  HNSWIndex::Impl::check_ef(opt.ef_search, "ef_search");
  if (opt.granule < 1 || opt.granule > detail::kMaxGranule)
    throw ValueError("HNSWIndex: granule must be in [1, 2^24], got " + std::to_string(opt.granule));
  return opt;
}

HNSWIndex::Impl::Impl(std::int64_t d, const HNSWOptions& o) : HNSWGraph(d, checked(d, o)), rotation(d) {}

void HNSWIndex::Impl::check_ef(std::int64_t ef, const char* name) {
  if (ef < 1 || ef > kHNSWMaxEf)
    throw ValueError(std::string("HNSWIndex: ") + name + " must be in [1, " + std::to_string(kHNSWMaxEf) +
                     "], got " + std::to_string(ef));
}

// --- scratch pool -----------------------------------------------------------
std::unique_ptr<Scratch> HNSWIndex::Impl::acquire() const {
  std::unique_ptr<Scratch> s;
  {
    std::lock_guard<std::mutex> g(pool_mutex);
    if (!pool.empty()) {
      s = std::move(pool.back());
      pool.pop_back();
    }
  }
  if (!s) s = std::make_unique<Scratch>();
  s->links.resize(M0);
  s->fresh.resize(M0);
  s->wide.resize(M0);
  s->head_rows.resize(M0);
  s->head_values.resize(M0);
  return s;
}
void HNSWIndex::Impl::release(std::unique_ptr<Scratch> s) const {
  std::lock_guard<std::mutex> g(pool_mutex);
  pool.push_back(std::move(s));
}


// --- vectors in / out -------------------------------------------------------
// Throws unless every row of x is finite and of norm at most kHNSWMaxNorm
// (l2 with a centre: its distance to `centre`), and for cosine non-zero. One
// SIMD pass per row: a NaN or an infinity makes the squared norm NaN or
// inf, so only a row that fails is searched element by element for them.
void HNSWIndex::Impl::check_rows(const float* x, std::int64_t n, const char* what, const float* centre) const {
  const SearchKernels& k = detail::search_kernels();
  for (std::int64_t r = 0; r < n; ++r) {
    const float* row = x + r * dim;
    const float norm2 = centre ? k.l2_sq(row, centre, dim) : k.dot(row, row, dim);
    if (norm2 <= kMaxNorm2 && (norm2 > 0.f || opt.metric != Metric::cosine)) continue;
    const std::string where = std::string(what) + ": row " + std::to_string(r);
    for (std::int64_t j = 0; j < dim; ++j)
      if (!std::isfinite(row[j])) throw ValueError(where + " contains NaN or infinity");
    if (norm2 == 0.f) throw ValueError(where + " has zero norm: cosine is undefined");
    throw ValueError(where + " is too large: its norm" + (centre ? " (minus the index's centre)" : "") +
                     " exceeds 2^62 (4.6e18), beyond which squared distances overflow float32");
  }
}

// The mean of the n rows of x (in double), as float32.
std::vector<float> HNSWIndex::Impl::mean_row(const float* x, std::int64_t n) const {
  std::vector<double> sum(static_cast<std::size_t>(dim), 0.0);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t j = 0; j < dim; ++j) sum[static_cast<std::size_t>(j)] += x[r * dim + j];
  std::vector<float> mean(sum.size());
  for (std::size_t j = 0; j < sum.size(); ++j) mean[j] = static_cast<float>(sum[j] / static_cast<double>(n));
  return mean;
}

// n rows of x as stored (normalised for cosine, centred for l2 with a centre,
// then rotated) into out (n x dim). The rotation is a GEMM over blocks of rows (the matrix is read
// once per block, not once per row: for 784-d it is 2.4 MB). Each row's
// result depends only on the row, never on the blocking (thread count).
void HNSWIndex::Impl::transform_rows(const float* x, std::int64_t n, float* out) const {
  const SearchKernels& k = detail::search_kernels();
  const bool cosine = opt.metric == Metric::cosine;
  if (!rotation.active()) {
    for (std::int64_t r = 0; r < n; ++r) {
      const float* row = x + r * dim;
      float* o = out + r * dim;
      const float scale = cosine ? 1.f / std::sqrt(k.dot(row, row, dim)) : 1.f;
      for (std::int64_t j = 0; j < dim; ++j) o[j] = cosine ? row[j] * scale : row[j];
    }
    return;
  }
  if (!cosine && centre.empty()) {
    rotation.rotate_rows(x, n, out);
    return;
  }
  // Normalised (cosine) or centred (l2), a block at a time, then rotated.
  constexpr std::int64_t kBlock = 256;
  std::vector<float> block(static_cast<std::size_t>(std::min(n, kBlock) * dim));
  for (std::int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const std::int64_t m = std::min(kBlock, n - i0);
    for (std::int64_t r = 0; r < m; ++r) {
      const float* row = x + (i0 + r) * dim;
      float* b = block.data() + r * dim;
      if (cosine) {
        const float scale = 1.f / std::sqrt(k.dot(row, row, dim));
        for (std::int64_t j = 0; j < dim; ++j) b[j] = row[j] * scale;
      } else {
        for (std::int64_t j = 0; j < dim; ++j) b[j] = row[j] - centre[static_cast<std::size_t>(j)];
      }
    }
    rotation.rotate_rows(block.data(), m, out + i0 * dim);
  }
}

// --- add ------------------------------------------------------------------------
void HNSWIndex::Impl::add(const float* x, std::int64_t n, const std::int64_t* ids, int num_threads,
                          bool replace_deleted) {
  std::unique_lock<std::shared_mutex> write(rw);
  add_locked(x, n, ids, num_threads, replace_deleted);
}

// add() under the exclusive lock: the reused slots first, then the rest appended.
void HNSWIndex::Impl::add_locked(const float* x, std::int64_t n, const std::int64_t* ids, int num_threads,
                                 bool replace_deleted) {
  if (n <= 0) return;
  if (!x) throw ValueError("HNSWIndex.add: vectors is null");
  // Check everything before changing anything. slot[r]: the deleted slot row r
  // takes (its own id's, or with replace_deleted any other), or -1: appended.
  std::vector<std::int64_t> new_ids(static_cast<std::size_t>(n));
  std::vector<std::int64_t> slot(static_cast<std::size_t>(n), -1);
  std::int64_t n_reused = 0;
  {
    std::unordered_set<std::int64_t> batch;
    batch.reserve(static_cast<std::size_t>(n));
    for (std::int64_t r = 0; r < n; ++r) {
      const std::int64_t id = ids ? ids[r] : count + r;
      if (id < 0) throw ValueError("HNSWIndex.add: ids must be non-negative, got " + std::to_string(id));
      const std::int64_t known = find(id);
      const bool live = known >= 0 && !deleted[known];
      if (live || !batch.insert(id).second)
        throw ValueError("HNSWIndex.add: id " + std::to_string(id) + " is already in the index" +
                         (live ? "" : " batch twice"));
      new_ids[static_cast<std::size_t>(r)] = id;
      if (known >= 0) slot[static_cast<std::size_t>(r)] = known, ++n_reused;  // a removed id comes back
    }
    if (replace_deleted && n_deleted > n_reused) {
      std::unordered_set<std::int64_t> own(slot.begin(), slot.end());
      std::int64_t next_free = 0;
      for (std::int64_t r = 0; r < n; ++r) {
        if (slot[static_cast<std::size_t>(r)] >= 0) continue;
        while (next_free < count && (!deleted[next_free] || own.count(next_free))) ++next_free;
        if (next_free >= count) break;
        slot[static_cast<std::size_t>(r)] = next_free++;
        ++n_reused;
      }
    }
  }
  if (n_reused > 0) {
    check_rows(x, n, "vectors", centre.empty() ? nullptr : centre.data());
    std::vector<float> appended, stored(static_cast<std::size_t>(dim));
    std::vector<std::int64_t> appended_ids;
    for (std::int64_t r = 0; r < n; ++r) {
      if (slot[static_cast<std::size_t>(r)] >= 0) continue;
      appended.insert(appended.end(), x + r * dim, x + (r + 1) * dim);
      appended_ids.push_back(new_ids[static_cast<std::size_t>(r)]);
    }
    // The reused slots, serially (reproducible; the graph stays whole between two).
    count_in_degrees();
    std::unique_ptr<Scratch> s = acquire();
    s->orphans.clear();
    const Distance dist = detail::make_distance(*this);
    for (std::int64_t r = 0; r < n; ++r) {
      const std::int64_t i = slot[static_cast<std::size_t>(r)];
      if (i < 0) continue;
      const auto node_id = static_cast<std::uint32_t>(i);
      const std::int64_t id = new_ids[static_cast<std::size_t>(r)];
      if (label(node_id) != id) {
        make_ids_sparse();
        lookup.erase(labels[node_id]);
        labels[node_id] = id;
        lookup.emplace(id, node_id);
      }
      transform_rows(x + r * dim, 1, stored.data());
      store(node_id, stored.data());
      deleted[node_id] = 0;
      --n_deleted;
      relink_neighbours(node_id, *s, dist);
      insert(node_id, *s, dist, true);
    }
    std::vector<std::uint32_t> orphans = std::move(s->orphans);
    s->orphans.clear();
    if (!orphans.empty()) repair_orphans(std::move(orphans), *s, dist);
    release(std::move(s));
    if (!appended_ids.empty())
      add_locked(appended.data(), static_cast<std::int64_t>(appended_ids.size()), appended_ids.data(), num_threads, false);
    return;
  }
  bool dense_batch = true;
  for (std::int64_t r = 0; r < n; ++r) dense_batch = dense_batch && new_ids[static_cast<std::size_t>(r)] == count + r;
  const int threads = num_threads > 0 ? num_threads : get_num_threads();
  if (opt.pca && count == 0 && !rotation.active()) fit_pca(x, n);
  // The first batch of a rotated l2 index sets the centre (see `centre`).
  const bool new_centre = count == 0 && rotation.active() && opt.metric == Metric::l2;
  std::vector<float> first_mean;
  if (new_centre) {
    first_mean = mean_row(x, n);
    // Finite rows have a finite mean: else name the row that is not.
    if (!std::all_of(first_mean.begin(), first_mean.end(), [](float v) { return std::isfinite(v); }))
      check_rows(x, n, "vectors", nullptr);
  }
  check_rows(x, n, "vectors", new_centre ? first_mean.data() : centre.empty() ? nullptr : centre.data());
  if (count == 0) centre = std::move(first_mean);
  const std::int64_t old = count;
  if (!dense_batch) make_ids_sparse();
  reserve(old + n);
  count_in_degrees();
  std::size_t upper_needed = upper.size();
  for (std::int64_t r = 0; r < n; ++r) {
    const auto i = static_cast<std::size_t>(old + r);
    const int level = draw_level(i);
    levels[i] = static_cast<std::uint8_t>(level);
    upper_offset[i] = static_cast<std::uint32_t>(upper_needed);
    upper_needed += static_cast<std::size_t>(level) * M;
    if (upper_needed > std::numeric_limits<std::uint32_t>::max())
      throw ValueError("HNSWIndex: upper layers too large");
    if (!dense_ids) labels[i] = new_ids[static_cast<std::size_t>(r)];
    deleted[i] = 0;
    if (narrow) std::fill_n(links16(static_cast<std::uint32_t>(i)), M0, kNoLink16);
    else std::fill_n(links(static_cast<std::uint32_t>(i), 0), M0, kNoLink);
  }
  if (upper_needed > upper.capacity())
    upper.reserve(std::max(upper_needed, upper.capacity() + upper.capacity() / 2));
  upper.resize(upper_needed, kNoLink);
  if (!dense_ids) {
    lookup.reserve(static_cast<std::size_t>(old + n));
    for (std::int64_t r = 0; r < n; ++r)
      lookup.emplace(new_ids[static_cast<std::size_t>(r)], static_cast<std::uint32_t>(old + r));
  }
  // Store the vectors (normalised / rotated), in parallel.
  keensight::detail::parallel_threads(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, n / 256)), [&](int t, int nt) {
    constexpr std::int64_t kChunk = 1024;
    std::vector<float> out(static_cast<std::size_t>(kChunk * dim));
    for (std::int64_t r0 = n * t / nt, end = n * (t + 1) / nt; r0 < end; r0 += kChunk) {
      const std::int64_t m = std::min(kChunk, end - r0);
      transform_rows(x + r0 * dim, m, out.data());
      for (std::int64_t r = 0; r < m; ++r)
        store(static_cast<std::uint32_t>(old + r0 + r), out.data() + r * dim);
    }
  });
  count = old + n;

  std::int64_t first = old;
  if (old == 0) {  // the first node is the entry point of an empty graph
    entry = 0;
    max_level = levels[0];
    first = 1;
  }
  // Insert in parallel: dynamic scheduling in small chunks, in insertion order
  // as far as possible (one thread: exactly in order, reproducibly).
  const int t_insert = static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, (count - first) / 64)));
  std::atomic<std::int64_t> next{first};
  std::vector<std::uint32_t> orphans;  // nodes whose last layer-0 in-link went
  std::mutex orphans_mutex;
  keensight::detail::parallel_threads(t_insert, [&](int, int) {
    std::unique_ptr<Scratch> s = acquire();
    s->orphans.clear();
    const Distance dist = detail::make_distance(*this);  // per thread: it counts evaluations
    for (;;) {
      const std::int64_t begin = next.fetch_add(16);
      if (begin >= count) break;
      const std::int64_t end = std::min<std::int64_t>(count, begin + 16);
      for (std::int64_t i = begin; i < end; ++i) insert(static_cast<std::uint32_t>(i), *s, dist);
    }
    {
      std::lock_guard<std::mutex> lock(orphans_mutex);
      orphans.insert(orphans.end(), s->orphans.begin(), s->orphans.end());
    }
    s->orphans.clear();
    release(std::move(s));
  });
  for (std::int64_t i = old; i < count; ++i)  // new nodes nobody linked back
    if (in_degree[i].load(std::memory_order_relaxed) == 0) orphans.push_back(static_cast<std::uint32_t>(i));
  if (!orphans.empty() || t_insert > 1) {
    std::unique_ptr<Scratch> s = acquire();
    const Distance dist = detail::make_distance(*this);
    if (!orphans.empty()) repair_orphans(std::move(orphans), *s, dist);
    // Islands (see repair_islands) arise only from concurrent insertions; a
    // repair can cut another node off, so walk again until none is left (twice
    // was always enough in the tests; bounded).
    if (t_insert > 1)
      for (int pass = 0; pass < 4; ++pass) {
        const std::vector<std::uint32_t> islands = unreachable_nodes();
        if (islands.empty()) break;
        repair_islands(islands, *s, dist);
      }
    release(std::move(s));
  }
}


void HNSWIndex::Impl::write_results(Scratch& s, std::int64_t k, float* D, std::int64_t* I) const {
  // Best first, ties by id: independent of heap order and thread count.
  std::vector<std::pair<float, std::int64_t>>& out = s.found;
  out.clear();
  for (const Cand& c : s.results) out.emplace_back(c.first, label(c.second));
  std::sort(out.begin(), out.end());
  const std::size_t kk = static_cast<std::size_t>(k);
  for (std::size_t j = 0; j < kk; ++j) {
    if (j < out.size()) {
      float d = out[j].first;
      if (opt.metric == Metric::ip) d = -d;
      else if (opt.metric == Metric::cosine) d *= 0.5f;
      D[j] = d;
      I[j] = out[j].second;
    } else {
      D[j] = opt.metric == Metric::ip ? -kInf : kInf;
      I[j] = -1;
    }
  }
}

void HNSWIndex::Impl::search(const float* queries, std::int64_t nq, std::int64_t k, std::int64_t ef_arg, float* D,
            std::int64_t* I, const std::int64_t* allowed, std::int64_t n_allowed, int num_threads,
            HNSWSearchStats* stats) const {
  std::shared_lock<std::shared_mutex> read(rw);
  if (k <= 0) throw ValueError("HNSWIndex.search: k must be positive, got " + std::to_string(k));
  if (ef_arg > 0) check_ef(ef_arg, "ef");
  if (count == 0) throw ValueError("HNSWIndex.search: the index is empty");
  if (nq < 0) throw ValueError("HNSWIndex.search: negative number of queries");
  if (stats) *stats = HNSWSearchStats();
  if (nq == 0) return;
  if (!queries || !D || !I) throw ValueError("HNSWIndex.search: null array");
  const std::size_t ef = static_cast<std::size_t>(std::max<std::int64_t>(ef_arg > 0 ? ef_arg : opt.ef_search, k));
  check_rows(queries, nq, "queries", centre.empty() ? nullptr : centre.data());

  // Filter: the allowed and not deleted nodes as a bit mask. A short list is
  // searched exhaustively instead (exact, and cheaper than a graph search
  // that must wade through mostly rejected nodes to collect ef results).
  std::vector<std::uint64_t> mask;
  std::vector<std::uint32_t> exact_list;
  const bool filtered = allowed != nullptr;
  if (filtered) {
    mask.assign(static_cast<std::size_t>((count + 63) / 64), 0);
    for (std::int64_t j = 0; j < n_allowed; ++j) {
      const std::int64_t found = find(allowed[j]);
      if (found < 0 || deleted[found]) continue;
      const auto i = static_cast<std::uint32_t>(found);
      if (!((mask[i >> 6] >> (i & 63)) & 1u)) exact_list.push_back(i);
      mask[i >> 6] |= std::uint64_t{1} << (i & 63);
    }
    std::sort(exact_list.begin(), exact_list.end());
  }
  const bool exhaustive = filtered && exact_list.size() <= ef * M0;

  const int threads = static_cast<int>(std::min<std::int64_t>(num_threads > 0 ? num_threads : get_num_threads(), nq));
  std::atomic<std::int64_t> evaluations{0}, rejected{0}, head_only{0};
  keensight::detail::parallel_threads(threads, [&](int t, int nt) {
    std::unique_ptr<Scratch> s = acquire();
    const Distance dist = detail::make_distance(*this);
    keensight::detail::TopK top(k);
    std::vector<float> dd(exhaustive ? static_cast<std::size_t>(k) : 0);
    std::vector<std::int64_t> ii(dd.size());
    // Queries are rotated in blocks of up to kQueryBlockBytes (and at least
    // 64 rows): one GEMM per block streams the rotation once (2.4 MB for
    // 784-d), and between blocks the graph search evicts it from the caches.
    // Measured on 784-d data: 1000 queries in one block instead of blocks of
    // 64 is 4-11% faster. The block is transient, not pooled scratch.
    const std::int64_t begin = nq * t / nt, end = nq * (t + 1) / nt;
    const std::int64_t chunk = std::min(end - begin, std::max<std::int64_t>(64, kQueryBlockBytes / (4 * dim)));
    std::vector<float> block(static_cast<std::size_t>(chunk * dim));
    for (std::int64_t r = begin; r < end; ++r) {
      if ((r - begin) % chunk == 0) transform_rows(queries + r * dim, std::min(chunk, end - r), block.data());
      const float* q = block.data() + ((r - begin) % chunk) * dim;
      if (exhaustive) {
        s->results.clear();
        for (const std::uint32_t i : exact_list) top.push(dist.full(query(q), node(i)), i);
        top.write_sorted(dd.data(), ii.data(), kInf);
        for (std::int64_t j = 0; j < k; ++j)
          if (ii[j] >= 0) s->results.emplace_back(dd[j], static_cast<std::uint32_t>(ii[j]));
      } else if (filtered) {
        knn(*s, query(q), ef, AcceptMask{mask.data()}, dist);
      } else if (n_deleted > 0) {
        knn(*s, query(q), ef, AcceptLive{deleted.data()}, dist);
      } else {
        knn(*s, query(q), ef, AcceptAll(), dist);
      }
      write_results(*s, k, D + r * k, I + r * k);
    }
    evaluations += dist.evaluations;
    rejected += dist.rejected;
    head_only += dist.head_only;
    release(std::move(s));
  });
  if (stats) {
    stats->distances = evaluations.load();
    stats->rejected = rejected.load();
    stats->head_only = head_only.load();
  }
}


// --- range search -----------------------------------------------------------------
// As faiss's IndexHNSW: the graph search decides what is found. K-NN-SEARCH
// with ef = max(ef_search, kRangeEf) candidates; when every candidate it
// returns lies within the radius there may be more, so again with twice the ef,
// until one falls outside it, the search returns fewer than ef (it ran out of
// nodes), or ef reaches the live count or kHNSWMaxEf.
RangeSearchResult HNSWIndex::Impl::range_search(const float* queries, std::int64_t nq, float radius,
                                                int num_threads) const {
  constexpr std::size_t kRangeEf = 32;
  std::shared_lock<std::shared_mutex> read(rw);
  if (nq < 0) throw ValueError("HNSWIndex.range_search: negative number of queries");
  if (std::isnan(radius)) throw ValueError("HNSWIndex.range_search: radius is NaN");
  RangeSearchResult result;
  result.lims.assign(static_cast<std::size_t>(nq + 1), 0);
  const std::int64_t live = count - n_deleted;
  if (nq == 0 || live == 0) return result;
  if (!queries) throw ValueError("HNSWIndex.range_search: null array");
  check_rows(queries, nq, "queries", centre.empty() ? nullptr : centre.data());
  const Metric metric = opt.metric;
  auto reported = [metric](float d) { return metric == Metric::ip ? -d : metric == Metric::cosine ? 0.5f * d : d; };
  auto within = [metric, radius](float d) { return metric == Metric::ip ? d > radius : d < radius; };
  std::vector<std::vector<std::pair<float, std::int64_t>>> found(static_cast<std::size_t>(nq));
  const int threads = static_cast<int>(std::min<std::int64_t>(num_threads > 0 ? num_threads : get_num_threads(), nq));
  keensight::detail::parallel_threads(threads, [&](int t, int nt) {
    std::unique_ptr<Scratch> s = acquire();
    const Distance dist = detail::make_distance(*this);
    std::vector<float> q(static_cast<std::size_t>(dim));
    for (std::int64_t r = nq * t / nt, end = nq * (t + 1) / nt; r < end; ++r) {
      transform_rows(queries + r * dim, 1, q.data());
      std::size_t ef = std::min<std::size_t>(std::max<std::size_t>(static_cast<std::size_t>(opt.ef_search), kRangeEf),
                                             static_cast<std::size_t>(kHNSWMaxEf));
      for (;;) {
        if (n_deleted > 0) knn(*s, query(q.data()), ef, AcceptLive{deleted.data()}, dist);
        else knn(*s, query(q.data()), ef, AcceptAll(), dist);
        const bool all_within = std::all_of(s->results.begin(), s->results.end(),
                                            [&](const Cand& c) { return within(reported(c.first)); });
        if (!all_within || s->results.size() < ef || ef >= static_cast<std::size_t>(live) ||
            ef >= static_cast<std::size_t>(kHNSWMaxEf))
          break;
        ef = std::min<std::size_t>(2 * ef, static_cast<std::size_t>(kHNSWMaxEf));
      }
      auto& out = found[static_cast<std::size_t>(r)];
      for (const Cand& c : s->results) {
        const float d = reported(c.first);
        if (within(d)) out.emplace_back(metric == Metric::ip ? -d : d, label(c.second));
      }
      std::sort(out.begin(), out.end());  // best first (ip: sorted on -similarity), ties by id
      if (metric == Metric::ip)
        for (auto& e : out) e.first = -e.first;
    }
    release(std::move(s));
  });
  for (std::int64_t r = 0; r < nq; ++r)
    result.lims[static_cast<std::size_t>(r + 1)] = result.lims[static_cast<std::size_t>(r)] +
                                                   static_cast<std::int64_t>(found[static_cast<std::size_t>(r)].size());
  result.distances.reserve(static_cast<std::size_t>(result.lims.back()));
  result.ids.reserve(static_cast<std::size_t>(result.lims.back()));
  for (const auto& out : found)
    for (const auto& e : out) {
      result.distances.push_back(e.first);
      result.ids.push_back(e.second);
    }
  return result;
}

// --- the protocol's remove / reset / get_items ---------------------------------------
std::int64_t HNSWIndex::Impl::remove(const std::int64_t* ids, std::int64_t n) {
  std::unique_lock<std::shared_mutex> write(rw);
  std::int64_t removed = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    const std::int64_t i = find(ids[j]);
    if (i < 0 || deleted[i]) continue;
    deleted[i] = 1;
    ++n_deleted;
    ++removed;
  }
  return removed;
}

void HNSWIndex::Impl::reset() {
  std::unique_lock<std::shared_mutex> write(rw);
  clear_storage();
  entry = 0;
  max_level = -1;
  centre.clear();
  if (opt.pca) rotation.clear();  // fitted on the first batch: fitted again on the next
}

void HNSWIndex::Impl::get_items(const std::int64_t* ids, std::int64_t n, float* out) const {
  std::shared_lock<std::shared_mutex> read(rw);
  std::vector<std::uint32_t> internal(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
  for (std::int64_t j = 0; j < n; ++j) {
    const std::int64_t i = find(ids[j]);
    if (i < 0 || deleted[i])
      throw ValueError("ids: id " + std::to_string(ids[j]) + " is not in the index" + (i >= 0 ? " (removed)" : ""));
    internal[static_cast<std::size_t>(j)] = static_cast<std::uint32_t>(i);
  }
  // Stored as R (x - centre): x = R^T stored + centre (R orthonormal).
  const std::vector<float> r = rotation.active() ? rotation.dense() : std::vector<float>();
  std::vector<float> v(static_cast<std::size_t>(dim));
  for (std::int64_t j = 0; j < n; ++j) {
    const std::uint32_t i = internal[static_cast<std::size_t>(j)];
    std::copy(head(i), head(i) + head_dim, v.begin());
    std::copy(tail(i), tail(i) + tail_dim, v.begin() + head_dim);
    float* o = out + j * dim;
    if (r.empty()) {
      std::copy(v.begin(), v.end(), o);
      continue;
    }
    std::vector<double> acc(static_cast<std::size_t>(dim), 0.0);
    for (std::int64_t a = 0; a < dim; ++a) {
      const double va = v[static_cast<std::size_t>(a)];
      const float* row = r.data() + a * dim;
      for (std::int64_t b = 0; b < dim; ++b) acc[static_cast<std::size_t>(b)] += va * row[b];
    }
    for (std::int64_t b = 0; b < dim; ++b)
      o[b] = static_cast<float>(acc[static_cast<std::size_t>(b)] + (centre.empty() ? 0.0 : centre[static_cast<std::size_t>(b)]));
  }
}

// --- deletion ---------------------------------------------------------------------
void HNSWIndex::Impl::set_deleted(const std::int64_t* ids, std::int64_t n, bool value) {
  std::unique_lock<std::shared_mutex> write(rw);
  std::vector<std::uint32_t> internal;
  internal.reserve(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
  for (std::int64_t j = 0; j < n; ++j) {
    const std::int64_t i = find(ids[j]);
    if (i < 0) throw ValueError("HNSWIndex: id " + std::to_string(ids[j]) + " is not in the index");
    internal.push_back(static_cast<std::uint32_t>(i));
  }
  for (const std::uint32_t i : internal) {
    if (deleted[i] != static_cast<std::uint8_t>(value)) n_deleted += value ? 1 : -1;
    deleted[i] = value;
  }
}



// --- the rotation -------------------------------------------------------------
void HNSWIndex::Impl::set_rotation(const float* r) {
  std::unique_lock<std::shared_mutex> write(rw);
  if (count > 0) throw ValueError("HNSWIndex.set_rotation: the index is not empty");
  centre.clear();  // set again by the first add
  if (!r) rotation.clear();
  else rotation.set_dense(r);
}

void HNSWIndex::Impl::set_pca_axes(const float* axes, std::int64_t k) {
  std::unique_lock<std::shared_mutex> write(rw);
  if (count > 0) throw ValueError("HNSWIndex.set_pca_axes: the index is not empty");
  if (k < 1 || k > dim) throw ValueError("HNSWIndex.set_pca_axes: expected 1 to dim axes, got " + std::to_string(k));
  rotation.set_axes(axes, k);
  centre.clear();  // set again by the first add
}

// pca=true, on the first batch (the caller holds the index exclusively): the
// axes of fit_pca_axes, of what is stored (cosine: unit vectors); the leading
// kPcaAxes of them completed by reflectors when that is cheaper than dim x dim.
void HNSWIndex::Impl::fit_pca(const float* x, std::int64_t n) {
  if (opt.pca_auto && (head_dim == 0 || dim < kHNSWPcaAutoMinDim || !opt.early_termination)) return;  // no fit needed
  const auto size = static_cast<std::size_t>(n * dim);
  for (std::size_t j = 0; j < size; ++j)
    if (!std::isfinite(x[j])) check_rows(x, n, "vectors", nullptr);  // names the row
  std::vector<float> unit;
  if (opt.metric == Metric::cosine) {
    const SearchKernels& k = detail::search_kernels();
    unit.resize(size);
    for (std::int64_t r = 0; r < n; ++r) {
      const float* row = x + r * dim;
      const float norm = std::max(std::sqrt(k.dot(row, row, dim)), 1e-30f);
      for (std::int64_t j = 0; j < dim; ++j) unit[static_cast<std::size_t>(r * dim + j)] = row[j] / norm;
    }
    x = unit.data();
  }
  std::vector<double> variances;
  const std::vector<float> axes = detail::fit_pca_axes(x, n, dim, &variances);
  if (opt.pca_auto) {  // keep it only where it pays (kHNSWPcaAutoShare)
    const std::int64_t checked = std::min<std::int64_t>(dim, 5 * std::max<std::int64_t>(head_dim, 1));
    double head = 0.0, total = 0.0;
    for (std::size_t j = 0; j < variances.size(); ++j) {
      total += std::max(variances[j], 0.0);
      if (static_cast<std::int64_t>(j) < checked) head += std::max(variances[j], 0.0);
    }
    pca_head_share = total > 0.0 ? head / total : 1.0;
    if (head_dim == 0 || dim < kHNSWPcaAutoMinDim || !opt.early_termination || pca_head_share < kHNSWPcaAutoShare)
      return;
  }
  const std::int64_t k = std::min(dim, kPcaAxes);
  if (2 * k * dim + k * k < dim * dim) rotation.set_axes(axes.data(), k);
  else rotation.set_dense(axes.data());
  centre.clear();
}

std::size_t HNSWIndex::Impl::memory_usage() const {
  std::size_t bytes = sizeof(Impl) + HNSWStorage::bytes() + centre.capacity() * 4 + rotation.bytes();
  std::lock_guard<std::mutex> g(pool_mutex);
  for (const auto& s : pool) bytes += s->bytes();
  return bytes;
}

// ===========================================================================
HNSWIndex::HNSWIndex(std::int64_t dim, const HNSWOptions& options)
    : impl_(std::make_unique<Impl>(dim, options)) {}
HNSWIndex::HNSWIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HNSWIndex::~HNSWIndex() = default;
HNSWIndex::HNSWIndex(HNSWIndex&&) noexcept = default;
HNSWIndex& HNSWIndex::operator=(HNSWIndex&&) noexcept = default;

void HNSWIndex::set_rotation(const float* rotation) { impl_->set_rotation(rotation); }
void HNSWIndex::set_pca_axes(const float* axes, std::int64_t k) { impl_->set_pca_axes(axes, k); }
bool HNSWIndex::has_rotation() const {
  std::shared_lock<std::shared_mutex> read(impl_->rw);
  return impl_->rotation.active();
}
std::vector<float> HNSWIndex::rotation() const {
  std::shared_lock<std::shared_mutex> read(impl_->rw);
  return impl_->rotation.dense();
}
void HNSWIndex::add(const float* vectors, std::int64_t n, const std::int64_t* ids, int num_threads,
                    bool replace_deleted) {
  impl_->add(vectors, n, ids, num_threads, replace_deleted);
}
RangeSearchResult HNSWIndex::range_search(const float* queries, std::int64_t nq, float radius, int num_threads) const {
  return impl_->range_search(queries, nq, radius, num_threads);
}
std::int64_t HNSWIndex::remove(const std::int64_t* ids, std::int64_t n) { return impl_->remove(ids, n); }
void HNSWIndex::reset() { impl_->reset(); }
void HNSWIndex::get_items(const std::int64_t* ids, std::int64_t n, float* out) const {
  impl_->get_items(ids, n, out);
}
std::vector<unsigned char> HNSWIndex::to_bytes() const { return impl_->to_bytes(); }
HNSWIndex HNSWIndex::from_bytes(const void* data, std::size_t size) { return HNSWIndex(Impl::from_bytes(data, size)); }
Metric HNSWIndex::metric() const { return impl_->opt.metric; }
void HNSWIndex::search(const float* queries, std::int64_t nq, std::int64_t k, std::int64_t ef,
                       float* distances, std::int64_t* ids, const std::int64_t* allowed,
                       std::int64_t n_allowed, int num_threads, HNSWSearchStats* stats) const {
  impl_->search(queries, nq, k, ef, distances, ids, allowed, n_allowed, num_threads, stats);
}
void HNSWIndex::mark_deleted(const std::int64_t* ids, std::int64_t n) { impl_->set_deleted(ids, n, true); }
void HNSWIndex::unmark_deleted(const std::int64_t* ids, std::int64_t n) { impl_->set_deleted(ids, n, false); }
void HNSWIndex::save(const std::string& path) const { impl_->save(path); }
HNSWIndex HNSWIndex::load(const std::string& path) { return HNSWIndex(Impl::load(path)); }

std::int64_t HNSWIndex::dim() const { return impl_->dim; }
std::int64_t HNSWIndex::size() const {
  std::shared_lock<std::shared_mutex> read(impl_->rw);
  return impl_->count - impl_->n_deleted;
}
std::int64_t HNSWIndex::slots() const {
  std::shared_lock<std::shared_mutex> read(impl_->rw);
  return impl_->count;
}
std::int64_t HNSWIndex::n_deleted() const {
  std::shared_lock<std::shared_mutex> read(impl_->rw);
  return impl_->n_deleted;
}
const HNSWOptions& HNSWIndex::options() const { return impl_->opt; }
void HNSWIndex::set_ef_search(int ef_search) {
  Impl::check_ef(ef_search, "ef_search");
  std::unique_lock<std::shared_mutex> write(impl_->rw);
  impl_->opt.ef_search = ef_search;
}
void HNSWIndex::set_early_termination(bool on) {
  std::unique_lock<std::shared_mutex> write(impl_->rw);
  impl_->opt.early_termination = on;
}
std::vector<std::int64_t> HNSWIndex::ids() const {
  std::shared_lock<std::shared_mutex> read(impl_->rw);
  std::vector<std::int64_t> out;
  out.reserve(static_cast<std::size_t>(impl_->count - impl_->n_deleted));
  for (std::int64_t i = 0; i < impl_->count; ++i)
    if (!impl_->deleted[static_cast<std::size_t>(i)]) out.push_back(impl_->label(static_cast<std::uint32_t>(i)));
  return out;
}
int HNSWIndex::max_level() const {
  std::shared_lock<std::shared_mutex> read(impl_->rw);
  return impl_->max_level;
}
std::size_t HNSWIndex::memory_usage() const {
  std::shared_lock<std::shared_mutex> read(impl_->rw);
  return impl_->memory_usage();
}

}  // namespace keensight::search