// The HNSW index: Yu. A. Malkov, D. A. Yashunin, "Efficient and robust
// approximate nearest neighbor search using Hierarchical Navigable Small World
// graphs" (arXiv:1603.09320, 2016; IEEE TPAMI 2020). The algorithm numbers
// below are the paper's: Alg. 1 INSERT, Alg. 2 SEARCH-LAYER, Alg. 4
// SELECT-NEIGHBORS-HEURISTIC, Alg. 5 K-NN-SEARCH.
//
// Memory layout, indexed by internal id (0, 1, ... in insertion order). A
// vector as stored (normalised for cosine, rotated when a rotation is set) is
// split in two: its first h = min(granule, dim) coordinates, the head, and the
// rest, the tail (for ip, h = 0: everything is tail).
//   heads   count x h float32, dense (128-d: 12.8 MB per 100k vectors, mostly
//           cache resident): every candidate's first granule is read here.
//   nodes   one block per node: its tail (dim - h float32) followed by its
//           layer-0 links (2M uint32; unused slots hold kNoLink, so no count
//           is needed; uint16 while the index has room for at most 65535
//           nodes, see kNarrowNodes). 128-d, M=16, h=32: 512 bytes, whole cache
//           lines, every block 64-byte aligned. A node's links follow the tail
//           that was read when it was scored, so expanding it rarely misses the
//           cache (measured: keeping the links in an array of their own made
//           building 25% slower and searching 5-9%).
//   upper   one pool of uint32 for layers >= 1 (only ~1/M of the nodes have
//           any): node i's layer-l list (M slots) at upper_offset[i] + (l-1)M.
//   levels (uint8), deleted (uint8), one spin-lock byte per node; ids: while
//   they are 0, 1, 2, ... (the default) nothing, the id is the internal id;
//   else labels (int64) and the id -> internal id hash map. Large arrays use 2 MiB
//   aligned transparent huge pages (random access: TLB misses otherwise).
// Locking: one spin-lock byte per node guards its link lists while the graph
// is built by several threads (a thread holds at most one node lock, taken
// after the entry-point mutex when it holds that); searches hold a shared
// lock, mutations (add, delete marks, settings) an exclusive one.
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
// granules. SEARCH-LAYER scores a node's neighbours in passes: all heads first,
// in one batch, against the bound of that moment (those beyond it are rejected
// without their tails ever being fetched: still exact, because the bound only
// shrinks while the neighbours are processed, so each would be rejected in its
// turn), then the survivors' tails, prefetched a few ahead, in order (long
// tails a few at a time in lockstep, each judged by the bound of its turn).
// Without a filter, SEARCH-LAYER keeps its candidates and results in one
// sorted pool instead of Alg. 2's two heaps (search_pool: same visits).
#include "keensight/search/hnsw.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "core/atomic_file.hpp"
#include "core/gemm.hpp"
#include "search/kernels.hpp"
#include "core/topk.hpp"

namespace keensight::search {

namespace {

using search::detail::SearchKernels;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int kMaxLevel = 30;
constexpr int kMaxGranule = 1 << 24;  // the largest dim: a larger granule means the same
// kHNSWMaxNorm squared, the bound check_rows compares squared norms with.
constexpr float kMaxNorm2 = static_cast<float>(kHNSWMaxNorm * kHNSWMaxNorm);
constexpr std::uint32_t kNoLink = 0xffffffffu;  // an unused link slot
// While an index has room for at most kNarrowNodes nodes, its layer-0 links
// are stored as uint16 (0xffff: unused), half the bytes: at M=16 a node's 2M
// links fill one cache line instead of two, and 60k nodes' links take 3.8 MB
// instead of 7.7 MB (4% of a 784-d index). Searches read them in place
// (gather_fresh); everything else sees uint32 lists (get_links0 / put_links0).
constexpr std::uint32_t kNarrowNodes = 0xffff;
constexpr std::uint16_t kNoLink16 = 0xffff;
// A candidate whose head leaves it in the race has its tail prefetched up to
// the first check (kTailGranules granules: 512 bytes for granule 32), this
// many candidates ahead of the one being scored; the hardware streams the
// rest. Prefetching every survivor at once (up to 2M x 8 lines) overflows the
// miss queues and the prefetch instructions wait. Measured: 3 to 6 ahead is
// 8-12% faster than all at once on 128-d data; half the first check's bytes
// is 4-6% slower on 128-d and 784-d data.
constexpr std::uint32_t kTailPrefetchAhead = 4;
// Past the head, the running distance is checked against the bound every
// kTailGranules granules only. A check is a horizontal sum and a branch that
// goes either way (mispredicted often), as dear as reading about a hundred
// coordinates: measured with AVX-512 on 128-d data (tail 96: no check is best)
// and on 784-d data (best at 4 x 32; 1, 2 and 8 x 32 are 3-10% slower).
constexpr std::int64_t kTailGranules = 4;
// SEARCH-LAYER without a filter keeps its ef best in one sorted array (see
// search_pool); insertion moves up to ef items, so very large ef use the heaps.
constexpr std::size_t kPoolMaxEf = 1024;
constexpr std::int64_t kQueryBlockBytes = std::int64_t{4} << 20;  // see search()

// ---------------------------------------------------------------------------
// Small RAII helpers.

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// A 64-byte aligned array of trivially copyable T (AVX loads of a row never
// straddle more cache lines than they must). Large arrays are 2 MiB aligned and
// advised to use transparent huge pages: a search touches them at random, and
// with 4 KiB pages nearly every vector it reads would also miss the TLB.
template <class T>
class AlignedArray {
 public:
  std::size_t size() const { return size_; }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  // Grows to n items (new ones zeroed) keeping the first `keep`.
  void resize(std::size_t n, std::size_t keep) {
    if (n <= size_) return;
    constexpr std::size_t kHuge = std::size_t{2} << 20;
    const std::size_t align = n * sizeof(T) >= 2 * kHuge ? kHuge : 64;
    // The items, whole cache lines; aligned_alloc wants a multiple of the
    // alignment, but the pages past `bytes` are never touched, so never
    // resident. Huge pages only where whole ones are used: a partly used one
    // would hold up to 2 MiB more than the index needs.
    const std::size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
    std::unique_ptr<T, FreeDeleter> fresh(
        static_cast<T*>(std::aligned_alloc(align, ((bytes + align - 1) / align) * align)));
    if (!fresh) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
    if (align == kHuge) madvise(fresh.get(), bytes / kHuge * kHuge, MADV_HUGEPAGE);
#endif
    if (keep) std::memcpy(fresh.get(), data_.get(), keep * sizeof(T));
    std::memset(static_cast<void*>(fresh.get() + keep), 0, bytes - keep * sizeof(T));
    data_ = std::move(fresh);
    size_ = n;
    bytes_ = bytes;
  }
  std::size_t bytes() const { return bytes_; }

 private:
  std::unique_ptr<T, FreeDeleter> data_;
  std::size_t size_ = 0, bytes_ = 0;
};

template <class T>
void grow_exact(std::vector<T>& v, std::size_t n) {
  if (v.capacity() < n) v.reserve(n);  // reserve allocates exactly n; resize alone doubles
  v.resize(n);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 3);
#else
  (void)p;
#endif
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// FNV-1a 64 (Fowler, Noll, Vo) over the file payload.
struct Fnv1a64 {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  void update(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t x = h;
    for (std::size_t i = 0; i < n; ++i) {
      x ^= p[i];
      x *= 0x100000001b3ULL;
    }
    h = x;
  }
};

// Runs fn(t, T) on T threads (OpenMP; std::thread in builds without it, e.g.
// the ThreadSanitizer build: libgomp is not instrumented, so TSan cannot see
// its barriers); the first exception is rethrown after.
template <class Fn>
void run_threads(int threads, Fn&& fn) {
  if (threads <= 1) {
    fn(0, 1);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto guarded = [&](int t, int nt) {
    try {
      fn(t, nt);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  guarded(omp_get_thread_num(), omp_get_num_threads());
#else
  std::vector<std::thread> workers;
  workers.reserve(static_cast<std::size_t>(threads - 1));
  try {
    for (int t = 1; t < threads; ++t) workers.emplace_back(guarded, t, threads);
  } catch (...) {  // no thread left running (or joinable) behind an exception
    for (std::thread& w : workers) w.join();
    throw;
  }
  guarded(0, threads);
  for (std::thread& w : workers) w.join();
#endif
  if (error) std::rethrow_exception(error);
}

// (distance, internal id); the default pair order gives a max-heap whose top is
// the worst result, std::greater a min-heap whose top is the best candidate.
using Cand = std::pair<float, std::uint32_t>;

// Which nodes may appear in results (all of them still guide the search).
struct AcceptAll {
  static constexpr bool kAll = true;
  bool operator()(std::uint32_t) const { return true; }
};
struct AcceptLive {  // not deleted
  static constexpr bool kAll = false;
  const std::uint8_t* deleted;
  bool operator()(std::uint32_t i) const { return !deleted[i]; }
};
struct AcceptMask {  // allowed and not deleted
  static constexpr bool kAll = false;
  const std::uint64_t* bits;
  bool operator()(std::uint32_t i) const { return (bits[i >> 6] >> (i & 63)) & 1u; }
};

// An entry of search_pool's candidate pool.
struct PoolItem {
  float distance;
  std::uint32_t id;
  bool expanded;
};

// Per-thread working memory, pooled by the index so that no search allocates.
struct Scratch {
  std::vector<std::uint64_t> seen;    // visited bit per node (small: stays in L1/L2)
  std::vector<std::uint32_t> dirty;   // words of `seen` set by this visit
  std::vector<Cand> candidates, results, selected, chosen, pool;
  std::vector<PoolItem> sorted;       // search_pool's candidate pool
  std::vector<std::uint32_t> links, fresh, wide;  // wide: add_link's copy of a 16-bit list
  std::vector<std::uint32_t> back_links;          // insert's copy of the new node's list
  std::vector<std::uint32_t> orphans;  // nodes whose last layer-0 in-link this thread removed
  std::vector<const float*> head_rows;
  std::vector<float> head_values;
  std::vector<std::pair<float, std::int64_t>> found;  // write_results' sort

  // Starts a visit of a graph of n nodes; end_visit() clears only the words
  // this visit dirtied, so a visit costs O(nodes visited), not O(n).
  void begin_visit(std::size_t n) {
    if (seen.size() < (n + 63) / 64) seen.resize((n + 63) / 64, 0);
  }
  // True if i was visited already; marks it.
  bool visit(std::uint32_t i) {
    std::uint64_t& word = seen[i >> 6];
    const std::uint64_t bit = std::uint64_t{1} << (i & 63);
    if (word & bit) return true;
    if (!word) dirty.push_back(i >> 6);
    word |= bit;
    return false;
  }
  void end_visit() {
    for (const std::uint32_t w : dirty) seen[w] = 0;
    dirty.clear();
  }
  std::size_t bytes() const {
    return seen.capacity() * 8 + dirty.capacity() * 4 +
           (candidates.capacity() + results.capacity() + selected.capacity() + chosen.capacity() +
            pool.capacity()) *
               sizeof(Cand) +
           sorted.capacity() * sizeof(PoolItem) + head_rows.capacity() * sizeof(const float*) +
           found.capacity() * sizeof(found[0]) +
           (links.capacity() + fresh.capacity() + wide.capacity() + back_links.capacity() +
            orphans.capacity() + head_values.capacity()) * 4 +
           sizeof(Scratch);
  }
};

// A vector as stored: its first coordinates (the head, in the dense head
// table) and the rest (the tail, in the node block). Queries split the same way.
struct Split {
  const float* head;
  const float* tail;
};

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
  // finish() of up to kBoundedLockstep stored nodes (their tails: index.tail(id))
  // against one bound, the l2 tails in lockstep: out[j] = finish(q, ids[j],
  // head_value[j], bound), bit for bit.
  template <class Index>
  void finish_many(const Index& index, Split q, const std::uint32_t* ids, std::uint32_t n,
                   const float* head_value, float bound, float* out) const {
    if (!l2) {
      for (std::uint32_t j = 0; j < n; ++j) out[j] = head_value[j] - kernels->dot(q.tail, index.tail(ids[j]), tail_dim);
      return;
    }
    const float* rows[search::detail::kBoundedLockstep];
    float init[search::detail::kBoundedLockstep], bounds[search::detail::kBoundedLockstep];
    std::uint32_t slot[search::detail::kBoundedLockstep];
    std::int64_t m = 0;
    const float b = abandon ? bound : kInf;
    for (std::uint32_t j = 0; j < n; ++j) {
      out[j] = head_value[j];
      if (abandon && head_value[j] >= bound) continue;  // as finish(): decided by the head
      rows[m] = index.tail(ids[j]);
      init[m] = head_value[j];
      bounds[m] = b;
      slot[m++] = j;
    }
    float value[search::detail::kBoundedLockstep];
    kernels->l2_sq_bounded_many(q.tail, rows, m, tail_dim, tail_granule, bounds, init, value);
    for (std::int64_t r = 0; r < m; ++r) out[slot[r]] = value[r];
  }
};

constexpr char kMagic[8] = {'K', 'E', 'E', 'N', 'H', 'N', 'S', 'W'};
constexpr std::uint32_t kFormatVersion = 3;  // reads 1 (no reflectors) and 2 (no centre) too
constexpr std::uint32_t kHeaderBytes = 32;  // magic, version, header size, payload size, checksum

}  // namespace

// ===========================================================================
struct HNSWIndex::Impl {
  std::int64_t dim;
  HNSWOptions opt;
  std::size_t M, M0;             // max links on layers >= 1 / on layer 0
  std::int64_t head_dim;         // coordinates in the head table: min(granule, dim); 0 for ip
  std::size_t tail_dim;          // dim - head_dim
  bool narrow = true;            // layer-0 links are uint16 (capacity <= kNarrowNodes)
  std::size_t node_words;        // 4-byte words per node block: tail_dim + M0 (narrow: M0 / 2)
  double level_mult;             // m_L = 1 / ln(M) (paper, section 4.1)

  std::int64_t count = 0, capacity = 0, n_deleted = 0;
  AlignedArray<float> heads;          // count x head_dim: the first coordinates of each vector
  AlignedArray<std::uint32_t> nodes;  // count blocks of node_words (tail as float, then layer-0 links)
  std::vector<std::uint32_t> upper;
  std::vector<std::uint32_t> upper_offset;
  std::vector<std::int64_t> labels;
  std::vector<std::uint8_t> levels;
  std::vector<std::uint8_t> deleted;
  std::unique_ptr<std::atomic<std::uint8_t>[]> locks;  // one spin lock per node
  // Layer-0 in-degree of every node (how many lists point to it), maintained
  // while the graph is built (see repair_orphans); counted by one scan on the
  // first add after a load (in_degree_valid).
  std::unique_ptr<std::atomic<std::uint32_t>[]> in_degree;
  bool in_degree_valid = false;
  std::unordered_map<std::int64_t, std::uint32_t> lookup;
  bool dense_ids = true;  // id == internal id for every node: labels and lookup unused
  bool rotated = false;  // a rotation is set (held packed: see packed_rotation)
  // l2 with a rotation: the first batch's mean, subtracted from every vector and
  // query before it is rotated (see add); else empty. Rotating x itself, far
  // from the origin, would round each coordinate relative to |x|, not to the
  // distances: at an offset of 1e4 from the origin, distances were 0.1% off.
  std::vector<float> centre;

  std::uint32_t entry = 0;
  int max_level = -1;
  std::mutex entry_mutex;  // guards entry / max_level while inserting

  mutable std::shared_mutex rw;  // searches share it, mutations own it
  mutable std::mutex pool_mutex;
  mutable std::vector<std::unique_ptr<Scratch>> pool;

  Impl(std::int64_t d, const HNSWOptions& o) : dim(d), opt(o) {
    if (dim <= 0 || dim > (std::int64_t{1} << 24))
      throw ValueError("HNSWIndex: dim must be in [1, 2^24], got " + std::to_string(dim));
    if (opt.metric != Metric::l2 && opt.metric != Metric::ip && opt.metric != Metric::cosine)
      throw ValueError(std::string("HNSWIndex: metric must be l2, ip or cosine, got ") +
                       metric_name(opt.metric));
    if (opt.M < 2 || opt.M > 2048) throw ValueError("HNSWIndex: M must be in [2, 2048], got " + std::to_string(opt.M));
    check_ef(opt.ef_construction, "ef_construction");
    check_ef(opt.ef_search, "ef_search");
    if (opt.granule < 1 || opt.granule > kMaxGranule)
      throw ValueError("HNSWIndex: granule must be in [1, 2^24], got " + std::to_string(opt.granule));
    M = static_cast<std::size_t>(opt.M);
    M0 = 2 * M;
    head_dim = opt.metric == Metric::ip ? 0 : std::min<std::int64_t>(opt.granule, dim);
    tail_dim = static_cast<std::size_t>(dim - head_dim);
    node_words = tail_dim + M0 / 2;  // M0 = 2M: even
    level_mult = 1.0 / std::log(static_cast<double>(M));
  }

  static void check_ef(std::int64_t ef, const char* name) {
    if (ef < 1 || ef > kHNSWMaxEf)
      throw ValueError(std::string("HNSWIndex: ") + name + " must be in [1, " + std::to_string(kHNSWMaxEf) +
                       "], got " + std::to_string(ef));
  }

  // --- storage --------------------------------------------------------------
  float* head(std::uint32_t i) { return heads.data() + static_cast<std::size_t>(i) * head_dim; }
  float* tail(std::uint32_t i) {
    return reinterpret_cast<float*>(nodes.data() + static_cast<std::size_t>(i) * node_words);
  }
  const float* head(std::uint32_t i) const { return const_cast<Impl*>(this)->head(i); }
  const float* tail(std::uint32_t i) const { return const_cast<Impl*>(this)->tail(i); }
  Split node(std::uint32_t i) const {
    auto* self = const_cast<Impl*>(this);
    return Split{self->head(i), self->tail(i)};
  }
  Split query(const float* q) const { return Split{q, q + head_dim}; }
  // Stores a transformed vector (dim values) as node i's head and tail.
  void store(std::uint32_t i, const float* v) {
    std::copy(v, v + head_dim, head(i));
    std::copy(v + head_dim, v + dim, tail(i));
  }
  // max_links(level) slots; the list ends at the first kNoLink. Layer 0
  // only while !narrow (else links16 and the helpers below).
  std::uint32_t* links(std::uint32_t i, int level) {
    return level == 0 ? nodes.data() + static_cast<std::size_t>(i) * node_words + tail_dim
                      : upper.data() + upper_offset[i] + (level - 1) * M;
  }
  std::uint16_t* links16(std::uint32_t i) {
    return reinterpret_cast<std::uint16_t*>(nodes.data() + static_cast<std::size_t>(i) * node_words + tail_dim);
  }
  const std::uint16_t* links16(std::uint32_t i) const { return const_cast<Impl*>(this)->links16(i); }
  // A layer-0 list as uint32 (M0 slots) into out / from `list` (either layout).
  void get_links0(std::uint32_t i, std::uint32_t* out) const {
    if (!narrow) {
      std::copy(links(i, 0), links(i, 0) + M0, out);
      return;
    }
    const std::uint16_t* l = links16(i);
    for (std::size_t j = 0; j < M0; ++j) out[j] = l[j] == kNoLink16 ? kNoLink : l[j];
  }
  void put_links0(std::uint32_t i, const std::uint32_t* list) {
    if (!narrow) {
      std::copy(list, list + M0, links(i, 0));
      return;
    }
    std::uint16_t* l = links16(i);
    for (std::size_t j = 0; j < M0; ++j) l[j] = list[j] == kNoLink ? kNoLink16 : static_cast<std::uint16_t>(list[j]);
  }
  const std::uint32_t* links(std::uint32_t i, int level) const {
    return const_cast<Impl*>(this)->links(i, level);
  }
  std::size_t max_links(int level) const { return level == 0 ? M0 : M; }

  void lock(std::uint32_t i) const {
    std::atomic<std::uint8_t>& l = locks[i];
    while (l.exchange(1, std::memory_order_acquire)) {
      int spins = 0;
      while (l.load(std::memory_order_relaxed)) {
        if (++spins < 64) cpu_relax();
        else std::this_thread::yield();
      }
    }
  }
  void unlock(std::uint32_t i) const { locks[i].store(0, std::memory_order_release); }

  void reserve(std::int64_t n) {
    if (n <= capacity) return;
    if (n > std::numeric_limits<std::uint32_t>::max() - 1)
      throw ValueError("HNSWIndex: at most 2^32 - 2 vectors");
    const std::int64_t cap = std::max<std::int64_t>(n, capacity + capacity / 2);
    const auto c = static_cast<std::size_t>(cap);
    heads.resize(c * head_dim, static_cast<std::size_t>(count) * head_dim);
    if (narrow && cap > kNarrowNodes) {  // ids outgrow 16 bits: widen every list
      const std::size_t words = tail_dim + M0;
      AlignedArray<std::uint32_t> wide;
      wide.resize(c * words, 0);
      for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(count); ++i) {
        std::copy(tail(i), tail(i) + tail_dim, reinterpret_cast<float*>(wide.data() + i * words));
        get_links0(i, wide.data() + i * words + tail_dim);
      }
      nodes = std::move(wide);
      narrow = false;
      node_words = words;
    } else {
      nodes.resize(c * node_words, static_cast<std::size_t>(count) * node_words);
    }
    grow_exact(upper_offset, c);
    if (!dense_ids) grow_exact(labels, c);
    grow_exact(levels, c);
    grow_exact(deleted, c);
    auto fresh = std::make_unique<std::atomic<std::uint8_t>[]>(c);  // value-initialised: unlocked
    locks = std::move(fresh);
    auto degrees = std::make_unique<std::atomic<std::uint32_t>[]>(c);  // zero
    if (in_degree_valid)
      for (std::int64_t i = 0; i < count; ++i)
        degrees[i].store(in_degree[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
    in_degree = std::move(degrees);
    capacity = cap;
  }

  std::int64_t label(std::uint32_t i) const { return dense_ids ? i : labels[i]; }
  // The internal id of `id`, or -1.
  std::int64_t find(std::int64_t id) const {
    if (dense_ids) return id >= 0 && id < count ? id : std::int64_t{-1};
    const auto it = lookup.find(id);
    return it == lookup.end() ? std::int64_t{-1} : static_cast<std::int64_t>(it->second);
  }
  // Ids stop being 0, 1, 2, ...: keep them explicitly from now on.
  void make_ids_sparse() {
    if (!dense_ids) return;
    grow_exact(labels, static_cast<std::size_t>(capacity));
    lookup.reserve(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) {
      labels[static_cast<std::size_t>(i)] = i;
      lookup.emplace(i, static_cast<std::uint32_t>(i));
    }
    dense_ids = false;
  }

  Distance distance() const {
    // ip has no bound to abandon at (partial inner products are not monotone).
    const bool l2 = opt.metric != Metric::ip;
    return Distance{&search::detail::search_kernels(), head_dim, dim - head_dim,
                    kTailGranules * opt.granule, l2, l2 && opt.early_termination};
  }

  int draw_level(std::uint64_t index) const {
    // Exponentially decaying level, floor(-ln(U) m_L) (paper, Alg. 1 line 4),
    // with U drawn from the node's insertion index: reproducible, thread-free.
    const std::uint64_t x = splitmix64(opt.seed * 0x2545f4914f6cdd1dULL + index);
    const double u = static_cast<double>((x >> 11) + 1) * 0x1.0p-53;  // (0, 1]
    return std::min(kMaxLevel, static_cast<int>(-std::log(u) * level_mult));
  }

  // --- scratch pool -----------------------------------------------------------
  std::unique_ptr<Scratch> acquire() const {
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
  void release(std::unique_ptr<Scratch> s) const {
    std::lock_guard<std::mutex> g(pool_mutex);
    pool.push_back(std::move(s));
  }

  // --- vectors in / out -------------------------------------------------------
  // Throws unless every row of x is finite and of norm at most kHNSWMaxNorm
  // (l2 with a centre: its distance to `centre`), and for cosine non-zero. One
  // SIMD pass per row: a NaN or an infinity makes the squared norm NaN or
  // inf, so only a row that fails is searched element by element for them.
  void check_rows(const float* x, std::int64_t n, const char* what, const float* centre) const {
    const SearchKernels& k = search::detail::search_kernels();
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
  std::vector<float> mean_row(const float* x, std::int64_t n) const {
    std::vector<double> sum(static_cast<std::size_t>(dim), 0.0);
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t j = 0; j < dim; ++j) sum[static_cast<std::size_t>(j)] += x[r * dim + j];
    std::vector<float> mean(sum.size());
    for (std::size_t j = 0; j < sum.size(); ++j) mean[j] = static_cast<float>(sum[j] / static_cast<double>(n));
    return mean;
  }

  // The rotation, held only in the form transform_rows applies it in: GEMM
  // panels for the active ISA's tile width, repacked if that changes.
  //  - dense (set_rotation): R, dim x dim (2.4 MB at 784-d);
  //  - principal axes (set_pca_axes, k of them): R = Q^T for the product of k
  //    Householder reflectors Q = H_1 ... H_k that maps the axes onto the first
  //    k coordinates, in compact WY form Q = I - V T V^T (R. Schreiber, C. Van
  //    Loan, "A storage-efficient WY representation for products of Householder
  //    transformations", SIAM J. Sci. Stat. Comput. 10(1), 1989): a row x goes
  //    to x Q = x - ((x V) T) V^T, three GEMMs of 2 k dim + k^2 multiply-adds
  //    per row instead of dim^2 (k = 128 at 784-d: a third), and V^T, T^T and
  //    V take 2 k dim + k^2 floats (0.9 MB). The first k coordinates are the
  //    projections on the axes (up to sign), the rest an orthonormal basis of
  //    their complement.
  struct PackedRotation {
    int nr = 0;
    std::int64_t k = 0;                  // 0: dense
    keensight::detail::AlignedFloats panels;  // dense: R (dim rows)
    keensight::detail::AlignedFloats vt, tt, v;  // WY: V^T (k rows of dim), T^T (k rows of k), V (dim rows of k)
    std::size_t floats = 0;
  };
  mutable std::mutex packed_mutex;
  mutable std::shared_ptr<const PackedRotation> packed;  // set iff rotated

  std::shared_ptr<PackedRotation> pack_rotation(const float* r, int nr) const {
    auto p = std::make_shared<PackedRotation>();
    p->nr = nr;
    p->floats = static_cast<std::size_t>(keensight::detail::packed_size(dim, dim, nr));
    p->panels.resize(static_cast<std::int64_t>(p->floats));
    keensight::detail::pack_panels(r, dim, dim, dim, nr, nullptr, nullptr, p->panels.get());
    return p;
  }

  // From V (dim x k, row-major) and T (k x k, upper triangular, row-major).
  std::shared_ptr<PackedRotation> pack_wy(const float* V, const float* T, std::int64_t k, int nr) const {
    auto p = std::make_shared<PackedRotation>();
    p->nr = nr;
    p->k = k;
    std::vector<float> vt(static_cast<std::size_t>(k * dim)), tt(static_cast<std::size_t>(k * k));
    for (std::int64_t i = 0; i < dim; ++i)
      for (std::int64_t j = 0; j < k; ++j) vt[static_cast<std::size_t>(j * dim + i)] = V[i * k + j];
    for (std::int64_t i = 0; i < k; ++i)
      for (std::int64_t j = 0; j < k; ++j) tt[static_cast<std::size_t>(j * k + i)] = T[i * k + j];
    const std::int64_t n_vt = keensight::detail::packed_size(k, dim, nr), n_tt = keensight::detail::packed_size(k, k, nr),
                       n_v = keensight::detail::packed_size(dim, k, nr);
    p->vt.resize(n_vt);
    p->tt.resize(n_tt);
    p->v.resize(n_v);
    keensight::detail::pack_panels(vt.data(), dim, k, dim, nr, nullptr, nullptr, p->vt.get());
    keensight::detail::pack_panels(tt.data(), k, k, k, nr, nullptr, nullptr, p->tt.get());
    keensight::detail::pack_panels(V, k, dim, k, nr, nullptr, nullptr, p->v.get());
    p->floats = static_cast<std::size_t>(n_vt + n_tt + n_v);
    return p;
  }

  // The inverse of pack_panels for `rows` rows of `cols` values: row i is
  // coordinate i % nr of panel i / nr.
  static std::vector<float> unpack(const float* panels, std::int64_t rows, std::int64_t cols, int nr) {
    std::vector<float> r(static_cast<std::size_t>(rows * cols));
    for (std::int64_t i = 0; i < rows; ++i) {
      const float* panel = panels + (i / nr) * nr * cols + i % nr;
      for (std::int64_t j = 0; j < cols; ++j) r[static_cast<std::size_t>(i * cols + j)] = panel[j * nr];
    }
    return r;
  }
  // V and T of a WY rotation, as given to pack_wy.
  std::pair<std::vector<float>, std::vector<float>> wy_factors(const PackedRotation& p) const {
    std::vector<float> V = unpack(p.v.get(), dim, p.k, p.nr);
    const std::vector<float> tt = unpack(p.tt.get(), p.k, p.k, p.nr);
    std::vector<float> T(tt.size());
    for (std::int64_t i = 0; i < p.k; ++i)
      for (std::int64_t j = 0; j < p.k; ++j) T[static_cast<std::size_t>(i * p.k + j)] = tt[static_cast<std::size_t>(j * p.k + i)];
    return {std::move(V), std::move(T)};
  }
  std::shared_ptr<PackedRotation> repack(const PackedRotation& p, int nr) const {
    if (p.k == 0) return pack_rotation(unpack(p.panels.get(), dim, dim, p.nr).data(), nr);
    const auto [V, T] = wy_factors(p);
    return pack_wy(V.data(), T.data(), p.k, nr);
  }

  // R, dim x dim: the images of the unit vectors, transposed (R x = x Q).
  std::vector<float> dense_rotation() const {
    std::shared_ptr<const PackedRotation> p;
    {
      std::lock_guard<std::mutex> lock(packed_mutex);
      p = packed;
    }
    if (!p) return {};
    if (p->k == 0) return unpack(p->panels.get(), dim, dim, p->nr);
    std::vector<float> eye(static_cast<std::size_t>(dim * dim), 0.f), q(eye.size()), r(eye.size());
    for (std::int64_t i = 0; i < dim; ++i) eye[static_cast<std::size_t>(i * dim + i)] = 1.f;
    rotate_rows(eye.data(), dim, q.data());
    for (std::int64_t i = 0; i < dim; ++i)
      for (std::int64_t j = 0; j < dim; ++j) r[static_cast<std::size_t>(i * dim + j)] = q[static_cast<std::size_t>(j * dim + i)];
    return r;
  }

  std::shared_ptr<const PackedRotation> packed_rotation(const keensight::detail::GemmF32Kernels& g) const {
    std::lock_guard<std::mutex> lock(packed_mutex);
    if (packed->nr != g.nr) packed = repack(*packed, g.nr);
    return packed;
  }

  // n rows of x (not normalised) times the rotation into out (n x dim).
  void rotate_rows(const float* x, std::int64_t n, float* out) const {
    const keensight::detail::GemmF32Kernels& g = keensight::detail::gemm_f32_kernels();
    const std::shared_ptr<const PackedRotation> rot = packed_rotation(g);
    const std::int64_t mc = keensight::detail::round_up(keensight::detail::kGemmMC, g.mr);
    const std::int64_t ldc = keensight::detail::round_up(dim, g.nr);
    keensight::detail::AlignedFloats c(mc * ldc);
    const std::int64_t k = rot->k, ldw = keensight::detail::round_up(std::max<std::int64_t>(k, 1), g.nr);
    keensight::detail::AlignedFloats w(k ? mc * ldw : 0), w2(k ? mc * ldw : 0);
    for (std::int64_t i0 = 0; i0 < n; i0 += mc) {
      const std::int64_t m = std::min(mc, n - i0);
      const float* src = x + i0 * dim;
      float* dst = out + i0 * dim;
      if (k == 0) {
        keensight::detail::gemm_rows(g, src, dim, m, rot->panels.get(), dim, dim, c.get(), ldc);
        for (std::int64_t r = 0; r < m; ++r) std::copy(c.get() + r * ldc, c.get() + r * ldc + dim, dst + r * dim);
        continue;
      }
      keensight::detail::gemm_rows(g, src, dim, m, rot->vt.get(), k, dim, w.get(), ldw);     // x V
      keensight::detail::gemm_rows(g, w.get(), ldw, m, rot->tt.get(), k, k, w2.get(), ldw);  // (x V) T
      keensight::detail::gemm_rows(g, w2.get(), ldw, m, rot->v.get(), dim, k, c.get(), ldc); // ((x V) T) V^T
      for (std::int64_t r = 0; r < m; ++r)
        for (std::int64_t j = 0; j < dim; ++j) dst[r * dim + j] = src[r * dim + j] - c.get()[r * ldc + j];
    }
  }

  // n rows of x as stored (normalised for cosine, centred for l2 with a centre,
  // then rotated) into out (n x dim). The rotation is a GEMM over blocks of rows (the matrix is read
  // once per block, not once per row: for 784-d it is 2.4 MB). Each row's
  // result depends only on the row, never on the blocking (thread count).
  void transform_rows(const float* x, std::int64_t n, float* out) const {
    const SearchKernels& k = search::detail::search_kernels();
    const bool cosine = opt.metric == Metric::cosine;
    if (!rotated) {
      for (std::int64_t r = 0; r < n; ++r) {
        const float* row = x + r * dim;
        float* o = out + r * dim;
        const float scale = cosine ? 1.f / std::sqrt(k.dot(row, row, dim)) : 1.f;
        for (std::int64_t j = 0; j < dim; ++j) o[j] = cosine ? row[j] * scale : row[j];
      }
      return;
    }
    if (!cosine && centre.empty()) {
      rotate_rows(x, n, out);
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
      rotate_rows(block.data(), m, out + i0 * dim);
    }
  }

  // --- Alg. 2 SEARCH-LAYER ----------------------------------------------------
  // The distances of the unvisited nodes of a link list (marked visited now),
  // in list order, each against the bound of the moment, bound(); take(e, d)
  // is called for those closer than it. Three passes, so that memory loads
  // overlap instead of each distance waiting for its own:
  // 1. the unvisited neighbours, prefetching their heads (a dense table,
  //    mostly cache resident): gather_fresh, before the call (n_fresh of them);
  // 2. their head distances in one batch; those already beyond the bound are
  //    rejected here without their tails ever being read (exact: the bound
  //    only shrinks as results improve, so they would be rejected in turn);
  // 3. the rest of each distance, in order, against the bound of the moment
  //    (the granule-wise kernel may stop at it: the candidate is rejected),
  //    prefetching the tails kTailPrefetchAhead candidates ahead; long tails
  //    in groups, in lockstep (see finish_many).
  // Every candidate's decision, hence the visited nodes, the graph and the
  // results, is the same with early termination on or off.
  template <class Bound, class Take>
  void score_links(Scratch& s, Split q, std::uint32_t n_fresh, const Distance& dist, const Bound& bound,
                   const Take& take) const {
    if (n_fresh == 0) return;
    std::uint32_t* fresh = s.fresh.data();
    const float** rows = s.head_rows.data();
    float* head_value = s.head_values.data();
    dist.heads(q, rows, n_fresh, head_value);
    const std::size_t tail_prefetch = static_cast<std::size_t>(std::min(dist.tail_granule, dim - head_dim)) * sizeof(float);
    const auto prefetch_tail = [&](std::uint32_t e) {
      const char* t = reinterpret_cast<const char*>(tail(e));
      for (std::size_t o = 0; o < tail_prefetch; o += 64) prefetch(t + o);
    };
    {
      const float b = bound();
      std::uint32_t kept = 0;
      for (std::uint32_t j = 0; j < n_fresh; ++j) {
        const std::uint32_t e = fresh[j];
        if (dist.abandon && head_value[j] >= b) {
          dist.count(true);
          ++dist.head_only;
          continue;
        }
        if (kept < kTailPrefetchAhead) prefetch_tail(e);
        head_value[kept] = head_value[j];
        fresh[kept++] = e;
      }
      n_fresh = kept;
    }
    if (dist.tail_dim <= dist.tail_granule) {
      // No check inside the tail: nothing to decide granule by granule, and the
      // one-at-a-time loop overlaps the candidates' loads as well (measured on
      // 128-d data: lockstep is 5% slower there, 5-8% faster on 784-d data).
      for (std::uint32_t j = 0; j < n_fresh; ++j) {
        const std::uint32_t e = fresh[j];
        if (j + kTailPrefetchAhead < n_fresh) prefetch_tail(fresh[j + kTailPrefetchAhead]);
        const float b = bound();
        const float d = dist.finish(q, node(e), head_value[j], b);
        dist.count(d >= b);
        if (d < b) take(e, d);
      }
      return;
    }
    constexpr std::uint32_t kGroup = static_cast<std::uint32_t>(search::detail::kBoundedLockstep);
    for (std::uint32_t j0 = 0; j0 < n_fresh; j0 += kGroup) {
      const std::uint32_t nb = std::min(kGroup, n_fresh - j0);
      for (std::uint32_t j = j0 + kTailPrefetchAhead; j < std::min(n_fresh, j0 + nb + kTailPrefetchAhead); ++j)
        prefetch_tail(fresh[j]);
      // A group's tails in lockstep against the bound at its start: later
      // members may be abandoned later than one at a time would allow, never
      // wrongly (the bound only shrinks; each is then judged by the bound of
      // its own turn, as before).
      float value[kGroup];
      dist.finish_many(*this, q, fresh + j0, nb, head_value + j0, bound(), value);
      for (std::uint32_t r = 0; r < nb; ++r) {
        const float b = bound(), d = value[r];
        dist.count(d >= b);
        if (d < b) take(fresh[j0 + r], d);
      }
    }
  }

  // Pass 1 of score_links: the unvisited nodes of a list (marked visited now)
  // into s.fresh, their heads prefetched; returns how many.
  template <class Link>
  std::uint32_t gather_fresh(Scratch& s, const Link* list, std::size_t cap) const {
    constexpr Link kEnd = static_cast<Link>(~Link{0});  // kNoLink, kNoLink16
    std::uint32_t* fresh = s.fresh.data();
    const float** rows = s.head_rows.data();
    std::uint32_t n_fresh = 0;
    for (std::size_t j = 0; j < cap; ++j) {
      const std::uint32_t e = list[j];
      if (list[j] == kEnd) break;
      if (s.visit(e)) continue;
      fresh[n_fresh] = e;
      rows[n_fresh++] = head(e);
      if (head_dim) prefetch(head(e));
    }
    return n_fresh;
  }
  // The same for the list of `node` on `level` (a search reads 16-bit lists
  // in place; building copies every list under its lock).
  template <bool kBuilding>
  std::uint32_t fresh_links(Scratch& s, std::uint32_t node, int level) const {
    if (!kBuilding && level == 0 && narrow) return gather_fresh(s, links16(node), M0);
    return gather_fresh(s, read_links<kBuilding>(s, node, level), max_links(level));
  }

  // Best-first search of one layer from `ep`, keeping the ef closest accepted
  // nodes in s.results (a max-heap). kBuilding: other threads may be writing
  // links, so each list is copied under its node's lock. As in hnswlib, nodes
  // that may not be returned (deleted, filtered out) still enter the candidate
  // queue, and the stop rule waits for ef accepted results when filtering.
  template <bool kBuilding, class Accept>
  void search_layer(Scratch& s, Split q, std::uint32_t ep, float ep_dist, int level,
                    std::size_t ef, const Accept& accept, const Distance& dist) const {
    if (Accept::kAll && ef <= kPoolMaxEf) {
      search_pool<kBuilding>(s, q, ep, ep_dist, level, ef, dist);
      return;
    }
    s.begin_visit(static_cast<std::size_t>(count));
    std::vector<Cand>& C = s.candidates;
    std::vector<Cand>& W = s.results;
    C.clear();
    W.clear();
    const auto closer_first = [](const Cand& a, const Cand& b) { return a.first > b.first; };
    const auto further_first = [](const Cand& a, const Cand& b) { return a.first < b.first; };
    s.visit(ep);
    C.emplace_back(ep_dist, ep);
    if (accept(ep)) W.emplace_back(ep_dist, ep);

    while (!C.empty()) {
      const Cand c = C.front();
      const float worst = W.empty() ? kInf : W.front().first;
      if (c.first > worst && (Accept::kAll || W.size() >= ef)) break;  // Alg. 2 line 7
      std::pop_heap(C.begin(), C.end(), closer_first);
      C.pop_back();
      if (!C.empty()) prefetch_links(C.front().second, level);
      // Alg. 2 line 13: e joins the candidates (and results) only if closer
      // than the furthest result or the results are not yet ef: that is the
      // bound a granule-wise distance may stop at.
      score_links(s, q, fresh_links<kBuilding>(s, c.second, level), dist,
                  [&] { return W.size() < ef ? kInf : W.front().first; },
                  [&](std::uint32_t e, float d) {
                    C.emplace_back(d, e);
                    std::push_heap(C.begin(), C.end(), closer_first);
                    if (accept(e)) {
                      W.emplace_back(d, e);
                      std::push_heap(W.begin(), W.end(), further_first);
                      if (W.size() > ef) {
                        std::pop_heap(W.begin(), W.end(), further_first);
                        W.pop_back();
                      }
                    }
                  });
    }
    s.end_visit();
  }

  // Alg. 2 when every node may be returned, with one sorted array for both of
  // its sets (the candidate pool of the search-on-graph routine in C. Fu et
  // al., "Fast approximate nearest neighbor search with the navigating
  // spreading-out graph", PVLDB 12(5), 2019). Without a filter, a node enters
  // the candidates C exactly when it enters the results W, and a candidate that
  // has since left W is further than W's furthest, so the search stops before
  // expanding it (Alg. 2 line 7). So C is, in effect, the unexpanded part of W:
  // the ef best so far, sorted, each with an "expanded" flag, and the next node
  // to expand is the first unexpanded one. Same nodes, same order, same results
  // as the two heaps (up to the order among equal distances); insertion moves
  // at most ef small items instead of two heap updates of scattered loads.
  template <bool kBuilding>
  void search_pool(Scratch& s, Split q, std::uint32_t ep, float ep_dist, int level, std::size_t ef,
                   const Distance& dist) const {
    s.begin_visit(static_cast<std::size_t>(count));
    std::vector<PoolItem>& P = s.sorted;
    P.clear();
    if (P.capacity() < ef + 1) P.reserve(ef + 1);
    s.visit(ep);
    P.push_back(PoolItem{ep_dist, ep, false});
    for (std::size_t cur = 0; cur < P.size();) {
      const std::uint32_t c = P[cur].id;
      P[cur].expanded = true;
      if (cur + 1 < P.size()) prefetch_links(P[cur + 1].id, level);
      std::size_t first_new = cur + 1;  // entries before it are all expanded
      score_links(s, q, fresh_links<kBuilding>(s, c, level), dist,
                  [&] { return P.size() < ef ? kInf : P.back().distance; },
                  [&](std::uint32_t e, float d) {
                    const auto at = std::upper_bound(P.begin(), P.end(), d, [](float v, const PoolItem& item) {
                      return v < item.distance;
                    });
                    first_new = std::min(first_new, static_cast<std::size_t>(at - P.begin()));
                    P.insert(at, PoolItem{d, e, false});
                    if (P.size() > ef) P.pop_back();
                  });
      cur = first_new;
      while (cur < P.size() && P[cur].expanded) ++cur;
    }
    std::vector<Cand>& W = s.results;
    W.clear();
    for (const PoolItem& item : P) W.emplace_back(item.distance, item.id);
    s.end_visit();
  }

  // The cache lines of a node's layer-0 links (2M = 32 of them: 64 bytes
  // narrow, 128 wide), or the first of an upper list.
  void prefetch_links(std::uint32_t i, int level) const {
    const char* l = reinterpret_cast<const char*>(links(i, level));
    prefetch(l);
    if (level == 0 && (!narrow || M0 > 32)) prefetch(l + 64);
  }

  // The links of `node` on `level`; while building, other threads may be
  // writing them, so they are copied under the node's lock.
  template <bool kBuilding>
  const std::uint32_t* read_links(Scratch& s, std::uint32_t node, int level) const {
    if (level == 0 && narrow) {  // widened into the scratch list
      if constexpr (kBuilding) lock(node);
      get_links0(node, s.links.data());
      if constexpr (kBuilding) unlock(node);
      return s.links.data();
    }
    const std::uint32_t* l = links(node, level);
    if constexpr (!kBuilding) return l;
    lock(node);
    std::copy(l, l + max_links(level), s.links.data());
    unlock(node);
    return s.links.data();
  }

  // Alg. 2 with ef = 1, as a greedy walk on an upper layer: move to the
  // closest neighbour while it is strictly closer. Heads in one batch, then
  // each tail against the bound of the moment (the current distance).
  template <bool kBuilding>
  void greedy(Scratch& s, Split q, std::uint32_t& cur, float& cur_dist, int level,
              const Distance& dist) const {
    const float** rows = s.head_rows.data();
    float* head_value = s.head_values.data();
    for (bool moved = true; moved;) {
      moved = false;
      const std::uint32_t* list = read_links<kBuilding>(s, cur, level);
      std::size_t n_links = 0;
      while (n_links < M && list[n_links] != kNoLink) {
        const std::uint32_t e = list[n_links];
        if (head_dim) prefetch(head(e));
        prefetch(tail(e));
        rows[n_links++] = head(e);
      }
      dist.heads(q, rows, static_cast<std::int64_t>(n_links), head_value);
      for (std::size_t j = 0; j < n_links; ++j) {
        const float d = dist.finish(q, node(list[j]), head_value[j], cur_dist);
        dist.count(d >= cur_dist);
        if (d < cur_dist) {
          cur_dist = d;
          cur = list[j];
          moved = true;
        }
      }
    }
  }

  // --- Alg. 4 SELECT-NEIGHBORS-HEURISTIC --------------------------------------
  // `cands` sorted closest first by distance to the base element. Keeps e when
  // it is closer to the base than to every neighbour kept so far (no extension
  // of the candidates, no keeping of pruned connections: the paper's defaults).
  void select_neighbors(const std::vector<Cand>& cands, std::size_t m, std::vector<Cand>& out,
                        const Distance& dist) const {
    out.clear();
    for (const Cand& e : cands) {
      if (out.size() >= m) break;
      bool keep = true;
      for (const Cand& r : out) {
        if (dist(node(e.second), node(r.second), e.first) < e.first) {
          keep = false;
          break;
        }
      }
      if (keep) out.push_back(e);
    }
  }

  // Adds the link node -> target on `level` under node's lock; a full list is
  // re-selected by the heuristic among its links and the target (Alg. 1 l.11-16).
  void add_link(Scratch& s, std::uint32_t node, std::uint32_t target, int level,
                const Distance& dist) {
    const std::size_t cap = max_links(level);
    const bool wide_copy = level == 0 && narrow;  // work on a uint32 copy, store it back
    lock(node);
    std::uint32_t* list = wide_copy ? s.wide.data() : links(node, level);
    if (wide_copy) get_links0(node, list);
    std::size_t n = 0;
    bool present = false;
    for (; n < cap && list[n] != kNoLink; ++n) present |= list[n] == target;
    if (!present) {
      if (n < cap) {
        list[n] = target;
        if (level == 0) link_gained(target);
      } else {
        std::vector<Cand>& all = s.pool;
        all.clear();
        const Split base = this->node(node);
        all.emplace_back(dist.full(base, this->node(target)), target);
        for (std::size_t j = 0; j < n; ++j) all.emplace_back(dist.full(base, this->node(list[j])), list[j]);
        std::sort(all.begin(), all.end());
        select_neighbors(all, cap, s.selected, dist);
        set_links(list, cap, s.selected);
        if (level == 0)
          for (const Cand& c : all) {
            const bool kept = std::any_of(s.selected.begin(), s.selected.end(),
                                          [&](const Cand& k) { return k.second == c.second; });
            if (c.second == target) {
              if (kept) link_gained(target);
            } else if (!kept) {
              link_lost(s, c.second);
            }
          }
      }
      if (wide_copy) put_links0(node, list);
    }
    unlock(node);
  }

  void link_gained(std::uint32_t e) { in_degree[e].fetch_add(1, std::memory_order_relaxed); }
  void link_lost(Scratch& s, std::uint32_t e) {
    if (in_degree[e].fetch_sub(1, std::memory_order_relaxed) == 1) s.orphans.push_back(e);
  }

  // Every node no layer-0 list points to, other than the entry point, is
  // unreachable by a search. The heuristic of Alg. 4 drops a link e -> x when
  // a kept neighbour is closer to x than e is, trusting that x stays reachable
  // through it; two equal vectors inserted at the same time by two threads do
  // not see each other, so each is closer to the other (distance 0) than any
  // neighbour is, and every list that kept one drops the other. Rarely, the
  // insertion order alone does the same to an outlier. After a batch, each such
  // node is linked again as an insertion would link it, now that the whole
  // batch is in the graph: from the nearest nodes a search finds, until one
  // keeps it (an equal vector, at distance 0, always does); failing that, it
  // replaces the furthest link of its nearest node. Serial, in node order:
  // one thread's build stays reproducible.
  void repair_orphans(std::vector<std::uint32_t> queue, Scratch& s, const Distance& dist) {
    std::sort(queue.begin(), queue.end());
    queue.erase(std::unique(queue.begin(), queue.end()), queue.end());
    std::size_t budget = 4 * queue.size() + 64;  // repairs may orphan others: bounded
    for (std::size_t qi = 0; qi < queue.size() && budget > 0; ++qi, --budget) {
      const std::uint32_t o = queue[qi];
      if (o == entry || in_degree[o].load(std::memory_order_relaxed) > 0) continue;
      const Split q = node(o);
      std::uint32_t ep = entry;
      float ep_dist = dist.full(q, node(ep));
      for (int lc = max_level; lc > 0; --lc) greedy<false>(s, q, ep, ep_dist, lc, dist);
      search_layer<false>(s, q, ep, ep_dist, 0, static_cast<std::size_t>(opt.ef_construction), AcceptAll(),
                          dist);
      std::vector<Cand> found = s.results;
      std::sort(found.begin(), found.end());
      found.erase(std::remove_if(found.begin(), found.end(), [o](const Cand& c) { return c.second == o; }),
                  found.end());
      s.orphans.clear();
      for (std::size_t j = 0; j < found.size() && j < M; ++j) {
        add_link(s, found[j].second, o, 0, dist);
        if (in_degree[o].load(std::memory_order_relaxed) > 0) break;
      }
      if (in_degree[o].load(std::memory_order_relaxed) == 0 && !found.empty()) replace_furthest(s, found[0].second, o, dist);
      queue.insert(queue.end(), s.orphans.begin(), s.orphans.end());
    }
    s.orphans.clear();
  }

  // Puts target in node's layer-0 list, in place of its furthest link if it is full.
  void replace_furthest(Scratch& s, std::uint32_t node, std::uint32_t target, const Distance& dist) {
    std::uint32_t* list = s.wide.data();
    get_links0(node, list);
    const Split base = this->node(node);
    std::size_t worst = 0, n = 0;
    float worst_d = -1.f;
    for (; n < M0 && list[n] != kNoLink; ++n) {
      const float d = dist.full(base, this->node(list[n]));
      if (d > worst_d) worst_d = d, worst = n;
    }
    if (n < M0) {  // room left: just link
      list[n] = target;
    } else {
      link_lost(s, list[worst]);
      list[worst] = target;
    }
    link_gained(target);
    put_links0(node, list);
  }

  static void set_links(std::uint32_t* list, std::size_t cap, const std::vector<Cand>& chosen) {
    for (std::size_t j = 0; j < cap; ++j) list[j] = j < chosen.size() ? chosen[j].second : kNoLink;
  }

  // --- Alg. 1 INSERT ------------------------------------------------------------
  // In two phases, so that a node is reachable only once it is complete:
  //  1. top down, search each of the new node's layers and set its own lists
  //     (Alg. 1 l.5-12, the closest found entering the layer below, l.17);
  //  2. bottom up, link the chosen neighbours back to it (l.13-16).
  // The paper interleaves them layer by layer, which is the same thing with one
  // thread: a layer's search reads that layer's lists only, and the back-links
  // change only that layer's lists (same graph, bit for bit). With several
  // threads the order matters: were node i linked back on layer l+1 before its
  // own list on layer l is set, a concurrent insertion B could reach i there,
  // descend with i as its entry point on layer l, find nothing but i (whose list
  // is still empty), link only to i and add itself to i's list; i's own list,
  // set afterwards, would overwrite B's only in-link and lose B (and the nodes
  // linked only from B). Done in two phases, no thread ever sees a node whose
  // lists are not all set, and there is nothing to wait for (no deadlock): other
  // insertions reach i only through back-links or the entry point, and the entry
  // point moves to i only after phase 2. Bottom up, no other thread can have
  // reached i on layer l or above when layer l's back-links start, so i's list
  // there still holds the neighbours phase 1 chose (nothing to remember in
  // between); it is copied then, as others may add to it from the first on.
  void insert(std::uint32_t i, Scratch& s, const Distance& dist) {
    const int level = levels[i];
    const Split q = node(i);
    std::unique_lock<std::mutex> top_lock(entry_mutex);
    const int top = max_level;
    std::uint32_t ep = entry;
    if (level <= top) top_lock.unlock();  // a new top level keeps it to the end

    float ep_dist = dist.full(q, node(ep));
    for (int lc = top; lc > level; --lc) greedy<true>(s, q, ep, ep_dist, lc, dist);  // l.5-7
    const int linked_top = std::min(level, top);
    for (int lc = linked_top; lc >= 0; --lc) {  // phase 1: l.8-12 and 17
      search_layer<true>(s, q, ep, ep_dist, lc, static_cast<std::size_t>(opt.ef_construction),
                         AcceptAll(), dist);
      std::vector<Cand>& W = s.results;
      std::sort(W.begin(), W.end());
      if (W.empty()) continue;
      // The new node gets M links on every layer (as the paper's M, not Mmax0).
      std::vector<Cand>& chosen = s.chosen;  // (s.selected is add_link's)
      select_neighbors(W, M, chosen, dist);
      if (lc == 0 && narrow) {  // no lock: no other thread can reach i yet
        set_links(s.wide.data(), M0, chosen);
        put_links0(i, s.wide.data());
      } else {
        set_links(links(i, lc), max_links(lc), chosen);
      }
      if (lc == 0)
        for (const Cand& c : chosen) link_gained(c.second);
      ep = W.front().second;  // the closest found enters the next layer down
      ep_dist = W.front().first;
    }
    for (int lc = 0; lc <= linked_top; ++lc) {  // phase 2: l.13-16
      std::vector<std::uint32_t>& chosen = s.back_links;
      chosen.resize(max_links(lc));
      if (lc == 0) get_links0(i, chosen.data());
      else std::copy(links(i, lc), links(i, lc) + M, chosen.data());
      for (const std::uint32_t e : chosen) {
        if (e == kNoLink) break;
        add_link(s, e, i, lc, dist);
      }
    }
    if (level > top) {
      entry = i;
      max_level = level;
    }
  }

  // --- add ------------------------------------------------------------------------
  void add(const float* x, std::int64_t n, const std::int64_t* ids, int num_threads) {
    std::unique_lock<std::shared_mutex> write(rw);
    if (n <= 0) return;
    if (!x) throw ValueError("HNSWIndex.add: vectors is null");
    // Check everything before changing anything.
    std::vector<std::int64_t> new_ids(static_cast<std::size_t>(n));
    bool dense_batch = true;
    {
      std::unordered_set<std::int64_t> batch;
      batch.reserve(static_cast<std::size_t>(n));
      for (std::int64_t r = 0; r < n; ++r) {
        const std::int64_t id = ids ? ids[r] : count + r;
        if (id < 0) throw ValueError("HNSWIndex.add: ids must be non-negative, got " + std::to_string(id));
        const bool known = find(id) >= 0;
        if (known || !batch.insert(id).second)
          throw ValueError("HNSWIndex.add: id " + std::to_string(id) + " is already in the index" +
                           (known ? "" : " batch twice"));
        new_ids[static_cast<std::size_t>(r)] = id;
        dense_batch = dense_batch && id == count + r;
      }
    }
    const int threads = num_threads > 0 ? num_threads : get_num_threads();
    // The first batch of a rotated l2 index sets the centre (see `centre`).
    const bool new_centre = count == 0 && rotated && opt.metric == Metric::l2;
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
    run_threads(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, n / 256)), [&](int t, int nt) {
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
    run_threads(t_insert, [&](int, int) {
      std::unique_ptr<Scratch> s = acquire();
      s->orphans.clear();
      const Distance dist = distance();  // per thread: it counts evaluations
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
    if (!orphans.empty()) {
      std::unique_ptr<Scratch> s = acquire();
      repair_orphans(std::move(orphans), *s, distance());
      release(std::move(s));
    }
  }

  // The layer-0 in-degrees from the lists, once (a loaded index has none yet).
  void count_in_degrees() {
    if (in_degree_valid) return;
    std::vector<std::uint32_t> list(M0);
    for (std::int64_t i = 0; i < count; ++i) in_degree[i].store(0, std::memory_order_relaxed);
    for (std::int64_t i = 0; i < count; ++i) {
      get_links0(static_cast<std::uint32_t>(i), list.data());
      for (const std::uint32_t e : list) {
        if (e == kNoLink) break;
        in_degree[e].fetch_add(1, std::memory_order_relaxed);
      }
    }
    in_degree_valid = true;
  }

  // --- Alg. 5 K-NN-SEARCH -----------------------------------------------------------
  template <class Accept>
  void knn(Scratch& s, Split q, std::size_t ef, const Accept& accept, const Distance& dist) const {
    std::uint32_t ep = entry;
    float ep_dist = dist.full(q, node(ep));
    for (int lc = max_level; lc > 0; --lc) greedy<false>(s, q, ep, ep_dist, lc, dist);
    search_layer<false>(s, q, ep, ep_dist, 0, ef, accept, dist);
  }

  void write_results(Scratch& s, std::int64_t k, float* D, std::int64_t* I) const {
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

  void search(const float* queries, std::int64_t nq, std::int64_t k, std::int64_t ef_arg, float* D,
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
    run_threads(threads, [&](int t, int nt) {
      std::unique_ptr<Scratch> s = acquire();
      const Distance dist = distance();
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

  // --- deletion ---------------------------------------------------------------------
  void set_deleted(const std::int64_t* ids, std::int64_t n, bool value) {
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

  void set_rotation(const float* r) {
    std::unique_lock<std::shared_mutex> write(rw);
    if (count > 0) throw ValueError("HNSWIndex.set_rotation: the index is not empty");
    std::lock_guard<std::mutex> lock(packed_mutex);
    centre.clear();  // set again by the first add
    if (!r) {
      packed.reset();
      rotated = false;
      return;
    }
    check_rotation(r);
    packed = pack_rotation(r, keensight::detail::gemm_f32_kernels().nr);
    rotated = true;
  }

  // k orthonormal rows (axes, k x dim) -> V (dim x k) and T (k x k) of the
  // WY form (see PackedRotation): Householder QR of the dim x k matrix whose
  // columns are the axes (LAPACK's dgeqrf / dlarfg reflectors, then dlarft's
  // forward recurrence for T), in double precision.
  void set_pca_axes(const float* axes, std::int64_t k) {
    std::unique_lock<std::shared_mutex> write(rw);
    if (count > 0) throw ValueError("HNSWIndex.set_pca_axes: the index is not empty");
    if (k < 1 || k > dim) throw ValueError("HNSWIndex.set_pca_axes: expected 1 to dim axes, got " + std::to_string(k));
    check_orthonormal(axes, k, "axes");
    const auto n = static_cast<std::size_t>(dim);
    const auto kk = static_cast<std::size_t>(k);
    std::vector<double> A(n * kk), V(n * kk, 0.0), T(kk * kk, 0.0), tau(kk);
    for (std::size_t j = 0; j < kk; ++j)
      for (std::size_t i = 0; i < n; ++i) A[i * kk + j] = axes[j * n + i];
    for (std::size_t j = 0; j < kk; ++j) {
      double tail = 0.0;  // |x[1:]|^2 of x = A[j:, j]
      for (std::size_t i = j + 1; i < n; ++i) tail += A[i * kk + j] * A[i * kk + j];
      const double alpha = A[j * kk + j];
      V[j * kk + j] = 1.0;
      if (tail == 0.0) {  // already e_j (up to sign): H_j = I
        tau[j] = 0.0;
        continue;
      }
      const double beta = -std::copysign(std::sqrt(alpha * alpha + tail), alpha);
      tau[j] = (beta - alpha) / beta;
      for (std::size_t i = j + 1; i < n; ++i) V[i * kk + j] = A[i * kk + j] / (alpha - beta);
      A[j * kk + j] = beta;
      for (std::size_t c = j + 1; c < kk; ++c) {  // H_j applied to the remaining columns
        double dot = A[j * kk + c];
        for (std::size_t i = j + 1; i < n; ++i) dot += V[i * kk + j] * A[i * kk + c];
        dot *= tau[j];
        A[j * kk + c] -= dot;
        for (std::size_t i = j + 1; i < n; ++i) A[i * kk + c] -= dot * V[i * kk + j];
      }
    }
    for (std::size_t j = 0; j < kk; ++j) {  // T[0:j, j] = -tau_j T[0:j, 0:j] (V[:, 0:j]^T v_j)
      T[j * kk + j] = tau[j];
      std::vector<double> z(j, 0.0);
      for (std::size_t c = 0; c < j; ++c)
        for (std::size_t i = j; i < n; ++i) z[c] += V[i * kk + c] * V[i * kk + j];
      for (std::size_t r = 0; r < j; ++r) {
        double sum = 0.0;
        for (std::size_t c = r; c < j; ++c) sum += T[r * kk + c] * z[c];
        T[r * kk + j] = -tau[j] * sum;
      }
    }
    const std::vector<float> Vf(V.begin(), V.end()), Tf(T.begin(), T.end());
    std::lock_guard<std::mutex> lock(packed_mutex);
    centre.clear();  // set again by the first add
    packed = pack_wy(Vf.data(), Tf.data(), k, keensight::detail::gemm_f32_kernels().nr);
    rotated = true;
  }

  void check_rotation(const float* r) const { check_orthonormal(r, dim, "rotation"); }

  // Finite values and orthonormal rows (to 1e-3) of `rows` x dim.
  void check_orthonormal(const float* r, std::int64_t rows, const char* what) const {
    const SearchKernels& k = search::detail::search_kernels();
    const auto n = static_cast<std::size_t>(rows * dim);
    for (std::size_t j = 0; j < n; ++j)
      if (!std::isfinite(r[j])) throw ValueError(std::string("HNSWIndex: ") + what + " contains NaN or infinity");
    for (std::int64_t a = 0; a < rows; ++a)
      for (std::int64_t b = a; b < rows; ++b) {
        const float d = k.dot(r + a * dim, r + b * dim, dim);
        if (std::fabs(d - (a == b ? 1.f : 0.f)) > 1e-3f)
          throw ValueError(std::string("HNSWIndex: ") + what + " must have orthonormal rows (row " +
                           std::to_string(a) + " . row " + std::to_string(b) + " = " + std::to_string(d) + ")");
      }
  }

  std::size_t memory_usage() const {
    std::size_t bytes = sizeof(Impl) + heads.bytes() + nodes.bytes() +
                        upper.capacity() * 4 + upper_offset.capacity() * 4 + labels.capacity() * 8 +
                        levels.capacity() + deleted.capacity() + static_cast<std::size_t>(capacity) * 5 +
                        centre.capacity() * 4;
    // unordered_map: one bucket pointer per bucket, one heap node per entry
    // (next pointer + key + value, rounded up as malloc does).
    bytes += lookup.bucket_count() * sizeof(void*) + lookup.size() * 32;
    {
      std::lock_guard<std::mutex> lock(packed_mutex);  // the rotation's GEMM panels
      if (packed) bytes += packed->floats * 4;
    }
    std::lock_guard<std::mutex> g(pool_mutex);
    for (const auto& s : pool) bytes += s->bytes();
    return bytes;
  }

  // --- save / load -------------------------------------------------------------------
  void save(const std::string& path) const;
  static std::unique_ptr<Impl> load(const std::string& path);
};

// ===========================================================================
// File format (little-endian, version 3; version 2 is the same without the
// centre, version 1 also without rotation kind 2):
//   header  8 bytes magic "KEENHNSW", u32 format version, u32 header size (32),
//           u64 payload size, u64 FNV-1a 64 of the payload
//   payload u32 dim, metric, M, ef_construction, ef_search, granule,
//           early_termination, rotation kind (0 none, 1 dense, 2 reflectors);
//           u64 seed, count; i32 max_level; u32 entry;
//           [kind 1: rotation dim*dim f32; kind 2: u32 k, V dim*k f32, T k*k
//           f32 (the WY form, see PackedRotation); kinds 1 and 2: centre dim
//           f32 (zeros: none)]; labels count*i64; levels count*u8;
//           deleted count*u8; heads count*h f32 (h = min(granule, dim), 0
//           for ip: the first coordinates of each vector as stored); node
//           blocks count*(dim-h f32 rest of the vector, 2M u32 layer-0 links,
//           0xffffffff = unused); u64 n, n u32 upper links (M slots per node
//           and layer >= 1, in node order).
namespace {

class FileWriter {
 public:
  explicit FileWriter(keensight::detail::AtomicFile& file) : file_(file) {}
  void raw(const void* data, std::size_t n) { file_.write(data, n); }
  void payload(const void* data, std::size_t n) {
    raw(data, n);
    hash.update(data, n);
    bytes += n;
  }
  template <class T>
  void value(T v) { payload(&v, sizeof(T)); }
  Fnv1a64 hash;
  std::uint64_t bytes = 0;

 private:
  keensight::detail::AtomicFile& file_;
};

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

class PayloadReader {
 public:
  PayloadReader(std::FILE* f, std::uint64_t size, const std::string& path) : f_(f), left_(size), path_(path) {}
  void read(void* out, std::size_t n) {
    if (n > left_) fail("sections run past the end of the payload");
    if (n && std::fread(out, 1, n, f_) != n) fail("truncated file");
    left_ -= n;
  }
  template <class T>
  T value() {
    T v;
    read(&v, sizeof(T));
    return v;
  }
  // Throws unless n items of `item` bytes fit in what is left (checked before
  // allocating, so a corrupt count cannot ask for absurd memory).
  void need(std::uint64_t n, std::uint64_t item) {
    if (item && n > left_ / item) fail("sections run past the end of the payload");
  }
  std::uint64_t left() const { return left_; }
  [[noreturn]] void fail(const std::string& why) const {
    throw ValueError("HNSWIndex.load: " + path_ + " is not a valid keensight HNSW index (" + why + ")");
  }

 private:
  std::FILE* f_;
  std::uint64_t left_;
  std::string path_;
};

}  // namespace

void HNSWIndex::Impl::save(const std::string& path) const {
  std::shared_lock<std::shared_mutex> read(rw);
  keensight::detail::AtomicFile file(path);  // random name, exclusive create, fsync, rename
  {
    FileWriter w(file);
    char header[kHeaderBytes] = {};
    w.raw(header, sizeof(header));  // placeholder; rewritten once the checksum is known
    w.value<std::uint32_t>(static_cast<std::uint32_t>(dim));
    w.value<std::uint32_t>(static_cast<std::uint32_t>(opt.metric));
    w.value<std::uint32_t>(static_cast<std::uint32_t>(opt.M));
    w.value<std::uint32_t>(static_cast<std::uint32_t>(opt.ef_construction));
    w.value<std::uint32_t>(static_cast<std::uint32_t>(opt.ef_search));
    w.value<std::uint32_t>(static_cast<std::uint32_t>(opt.granule));
    w.value<std::uint32_t>(opt.early_termination ? 1u : 0u);
    std::shared_ptr<const PackedRotation> rot;
    {
      std::lock_guard<std::mutex> lock(packed_mutex);
      rot = packed;
    }
    w.value<std::uint32_t>(!rot ? 0u : rot->k == 0 ? 1u : 2u);
    w.value<std::uint64_t>(opt.seed);
    w.value<std::uint64_t>(static_cast<std::uint64_t>(count));
    w.value<std::int32_t>(max_level);
    w.value<std::uint32_t>(entry);
    const auto n = static_cast<std::size_t>(count);
    if (rot && rot->k == 0) {
      const std::vector<float> r = dense_rotation();
      w.payload(r.data(), r.size() * sizeof(float));
    } else if (rot) {
      const auto [V, T] = wy_factors(*rot);
      w.value<std::uint32_t>(static_cast<std::uint32_t>(rot->k));
      w.payload(V.data(), V.size() * sizeof(float));
      w.payload(T.data(), T.size() * sizeof(float));
    }
    if (rot) {
      const std::vector<float> c = centre.empty() ? std::vector<float>(static_cast<std::size_t>(dim), 0.f) : centre;
      w.payload(c.data(), c.size() * sizeof(float));
    }
    for (std::size_t i = 0; i < n; ++i) w.value<std::int64_t>(label(static_cast<std::uint32_t>(i)));
    w.payload(levels.data(), n);
    w.payload(deleted.data(), n);
    w.payload(heads.data(), n * static_cast<std::size_t>(head_dim) * sizeof(float));
    if (!narrow) {
      w.payload(nodes.data(), n * node_words * sizeof(std::uint32_t));
    } else {  // the file holds uint32 links: widened a chunk of nodes at a time
      constexpr std::size_t kChunk = 256;
      const std::size_t words = tail_dim + M0;
      std::vector<std::uint32_t> block(kChunk * words);
      for (std::size_t i0 = 0; i0 < n; i0 += kChunk) {
        const std::size_t m = std::min(kChunk, n - i0);
        for (std::size_t i = i0; i < i0 + m; ++i) {
          std::uint32_t* b = block.data() + (i - i0) * words;
          std::memcpy(b, tail(static_cast<std::uint32_t>(i)), tail_dim * sizeof(float));
          get_links0(static_cast<std::uint32_t>(i), b + tail_dim);
        }
        w.payload(block.data(), m * words * sizeof(std::uint32_t));
      }
    }
    w.value<std::uint64_t>(upper.size());
    w.payload(upper.data(), upper.size() * sizeof(std::uint32_t));

    std::memcpy(header, kMagic, 8);
    const std::uint32_t version = kFormatVersion, header_bytes = kHeaderBytes;
    std::memcpy(header + 8, &version, 4);
    std::memcpy(header + 12, &header_bytes, 4);
    std::memcpy(header + 16, &w.bytes, 8);
    std::memcpy(header + 24, &w.hash.h, 8);
    file.seek(0);
    w.raw(header, sizeof(header));
  }
  file.commit();
}

std::unique_ptr<HNSWIndex::Impl> HNSWIndex::Impl::load(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) throw FileError("HNSWIndex.load: cannot open " + path + " (" + std::strerror(errno) + ")", errno, path);
  const std::string bad = "HNSWIndex.load: " + path + " is not a valid keensight HNSW index (";
  char header[kHeaderBytes];
  if (std::fread(header, 1, kHeaderBytes, file.get()) != kHeaderBytes) throw ValueError(bad + "truncated header)");
  if (std::memcmp(header, kMagic, 8) != 0) throw ValueError(bad + "wrong magic)");
  std::uint32_t version, header_bytes;
  std::uint64_t payload_bytes, checksum;
  std::memcpy(&version, header + 8, 4);
  std::memcpy(&header_bytes, header + 12, 4);
  std::memcpy(&payload_bytes, header + 16, 8);
  std::memcpy(&checksum, header + 24, 8);
  if (version < 1 || version > kFormatVersion)
    throw ValueError(bad + "format version " + std::to_string(version) + ", this keensight reads versions 1 to " +
                     std::to_string(kFormatVersion) + ")");
  if (header_bytes != kHeaderBytes) throw ValueError(bad + "bad header size)");
  // Pass 1: size and checksum of the payload, before trusting any of it.
  {
    Fnv1a64 hash;
    std::vector<char> buf(1 << 20);
    std::uint64_t total = 0;
    for (;;) {
      const std::size_t got = std::fread(buf.data(), 1, buf.size(), file.get());
      if (got == 0) break;
      hash.update(buf.data(), got);
      total += got;
    }
    if (total < payload_bytes) throw ValueError(bad + "truncated file)");
    if (total > payload_bytes) throw ValueError(bad + "trailing bytes after the payload)");
    if (hash.h != checksum) throw ValueError(bad + "checksum mismatch: the file is corrupt)");
  }
  // Pass 2: parse, checking every field (a valid checksum does not make a
  // crafted file safe to search).
  if (std::fseek(file.get(), kHeaderBytes, SEEK_SET) != 0) throw ValueError(bad + "cannot seek)");
  PayloadReader in(file.get(), payload_bytes, path);
  const auto dim = in.value<std::uint32_t>();
  HNSWOptions o;
  const auto metric = in.value<std::uint32_t>();
  o.M = static_cast<int>(in.value<std::uint32_t>());
  o.ef_construction = static_cast<int>(in.value<std::uint32_t>());
  o.ef_search = static_cast<int>(in.value<std::uint32_t>());
  o.granule = static_cast<int>(in.value<std::uint32_t>());
  const auto early = in.value<std::uint32_t>();
  const auto has_rotation = in.value<std::uint32_t>();
  o.seed = in.value<std::uint64_t>();
  const auto count = in.value<std::uint64_t>();
  const auto max_level = in.value<std::int32_t>();
  const auto entry = in.value<std::uint32_t>();
  const auto ef_ok = [](int ef) { return ef >= 1 && ef <= kHNSWMaxEf; };
  if (metric > 2 || early > 1 || has_rotation > (version == 1 ? 1u : 2u) || o.M < 2 || o.M > 2048 ||
      !ef_ok(o.ef_construction) || !ef_ok(o.ef_search) || o.granule < 1 || o.granule > kMaxGranule || dim < 1 ||
      dim > (1u << 24))
    in.fail("bad parameters");
  o.metric = static_cast<Metric>(metric);
  o.early_termination = early == 1;
  auto impl = std::make_unique<Impl>(static_cast<std::int64_t>(dim), o);
  const std::size_t file_words = impl->tail_dim + impl->M0;  // a node block in the file
  const std::uint64_t per_node = 8 + 2 + (impl->head_dim + file_words) * 4;
  in.need(count, per_node);
  if (count == 0 ? max_level != -1 : (max_level < 0 || max_level > kMaxLevel || entry >= count))
    in.fail("bad entry point");
  if (has_rotation == 2) {
    const auto k = in.value<std::uint32_t>();
    if (k < 1 || k > dim) in.fail("bad rotation");
    in.need(std::uint64_t{dim} * k + std::uint64_t{k} * k, 4);
    std::vector<float> V(std::size_t{dim} * k), T(std::size_t{k} * k);
    in.read(V.data(), V.size() * 4);
    in.read(T.data(), T.size() * 4);
    for (std::size_t i = 0; i < dim; ++i)
      for (std::size_t j = 0; j < k; ++j) {
        const float v = V[i * k + j];
        if (!std::isfinite(v) || (i < j && v != 0.f) || (i == j && v != 1.f)) in.fail("bad rotation");
      }
    for (std::size_t i = 0; i < k; ++i)
      for (std::size_t j = 0; j < k; ++j)
        if (!std::isfinite(T[i * k + j]) || (j < i && T[i * k + j] != 0.f)) in.fail("bad rotation");
    impl->packed = impl->pack_wy(V.data(), T.data(), k, keensight::detail::gemm_f32_kernels().nr);
    impl->rotated = true;
    try {
      impl->check_rotation(impl->dense_rotation().data());  // the reflectors make a rotation
    } catch (const ValueError& e) {
      in.fail(e.what());
    }
  } else if (has_rotation == 1) {
    in.need(std::uint64_t{dim} * dim, 4);
    std::vector<float> r(static_cast<std::size_t>(dim) * dim);
    in.read(r.data(), r.size() * 4);
    try {
      impl->check_rotation(r.data());
    } catch (const ValueError& e) {
      in.fail(e.what());
    }
    impl->packed = impl->pack_rotation(r.data(), keensight::detail::gemm_f32_kernels().nr);
    impl->rotated = true;
  }
  if (has_rotation != 0 && version >= 3) {
    in.need(dim, 4);
    std::vector<float> c(dim);
    in.read(c.data(), c.size() * 4);
    const bool zero = std::all_of(c.begin(), c.end(), [](float v) { return v == 0.f; });
    if (!std::all_of(c.begin(), c.end(), [](float v) { return std::isfinite(v); }) ||
        (!zero && o.metric != Metric::l2))  // add centres l2 indexes only
      in.fail("bad centre");
    if (!zero) impl->centre = std::move(c);
  }
  impl->reserve(static_cast<std::int64_t>(count));
  const auto n = static_cast<std::size_t>(count);
  std::vector<std::int64_t> labels(n);
  in.read(labels.data(), n * 8);
  in.read(impl->levels.data(), n);
  in.read(impl->deleted.data(), n);
  in.read(impl->heads.data(), n * impl->head_dim * 4);
  if (!impl->narrow) {
    in.read(impl->nodes.data(), n * impl->node_words * 4);
  } else {  // narrowed a chunk of nodes at a time; a link must fit before it is narrowed
    constexpr std::size_t kChunk = 256;
    std::vector<std::uint32_t> block(kChunk * file_words);
    for (std::size_t i0 = 0; i0 < n; i0 += kChunk) {
      const std::size_t m = std::min(kChunk, n - i0);
      in.read(block.data(), m * file_words * 4);
      for (std::size_t i = i0; i < i0 + m; ++i) {
        const std::uint32_t* b = block.data() + (i - i0) * file_words;
        for (std::size_t j = 0; j < impl->M0; ++j)
          if (b[impl->tail_dim + j] != kNoLink && b[impl->tail_dim + j] >= count) in.fail("link to a missing node");
        std::memcpy(impl->tail(static_cast<std::uint32_t>(i)), b, impl->tail_dim * sizeof(float));
        impl->put_links0(static_cast<std::uint32_t>(i), b + impl->tail_dim);
      }
    }
  }
  const auto n_upper = in.value<std::uint64_t>();
  in.need(n_upper, 4);
  impl->upper.resize(static_cast<std::size_t>(n_upper));
  in.read(impl->upper.data(), impl->upper.size() * 4);
  if (in.left() != 0) in.fail("trailing bytes in the payload");
  impl->count = static_cast<std::int64_t>(count);

  // Structure: levels and the upper-list offsets they imply, link counts and
  // targets (in range, and on a level the target has), labels, flags, values.
  std::size_t offset = 0;
  int top = -1;
  for (std::size_t i = 0; i < n; ++i) {
    if (impl->levels[i] > kMaxLevel) in.fail("bad node level");
    if (impl->deleted[i] > 1) in.fail("bad deletion flag");
    if (labels[i] < 0) in.fail("negative id");
    top = std::max<int>(top, impl->levels[i]);
    impl->upper_offset[i] = static_cast<std::uint32_t>(offset);
    offset += impl->levels[i] * impl->M;
    if (offset > n_upper) in.fail("upper layers do not match the node levels");
  }
  if (offset != n_upper) in.fail("upper layers do not match the node levels");
  if (count > 0 && (top != max_level || impl->levels[entry] != max_level)) in.fail("bad entry point");
  // Each list holds distinct other nodes (INSERT never links a node to itself
  // or twice to one node): last_seen[t] is the last list that linked to t.
  std::vector<std::uint32_t> list0(impl->M0);
  std::vector<std::uint64_t> last_seen(n, ~std::uint64_t{0});
  std::uint64_t list_number = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (int l = 0; l <= impl->levels[i]; ++l, ++list_number) {
      const std::uint32_t* list = impl->links(static_cast<std::uint32_t>(i), l);
      if (l == 0) {
        impl->get_links0(static_cast<std::uint32_t>(i), list0.data());
        list = list0.data();
      }
      const std::size_t cap = impl->max_links(l);
      std::size_t n_links = 0;
      while (n_links < cap && list[n_links] != kNoLink) ++n_links;
      for (std::size_t j = 0; j < cap; ++j) {
        if (j >= n_links) {
          if (list[j] != kNoLink) in.fail("links after the end of a list");
          continue;
        }
        const std::uint32_t t = list[j];
        if (t >= count || impl->levels[t] < l) in.fail("link to a missing node");
        if (t == i) in.fail("a node linked to itself");
        if (last_seen[t] == list_number) in.fail("a node linked twice from one list");
        last_seen[t] = list_number;
      }
    }
    impl->n_deleted += impl->deleted[i];
  }
  // Vectors as add() stores them: finite, of norm at most kHNSWMaxNorm
  // (centred ones included: the centre was subtracted before storing), unit
  // for cosine (to the rotation's tolerance).
  const SearchKernels& kernels = search::detail::search_kernels();
  for (std::size_t i = 0; i < n; ++i) {
    const Split v = impl->node(static_cast<std::uint32_t>(i));
    for (std::int64_t j = 0; j < impl->dim; ++j)
      if (!std::isfinite(j < impl->head_dim ? v.head[j] : v.tail[j - impl->head_dim]))
        in.fail("non-finite vector");
    const float norm2 = kernels.dot(v.head, v.head, impl->head_dim) +
                        kernels.dot(v.tail, v.tail, static_cast<std::int64_t>(impl->tail_dim));
    if (!(norm2 <= kMaxNorm2)) in.fail("vector too large");
    if (o.metric == Metric::cosine && std::fabs(norm2 - 1.f) > 1e-2f) in.fail("cosine vector not of unit norm");
  }
  bool dense = true;
  for (std::size_t i = 0; i < n && dense; ++i) dense = labels[i] == static_cast<std::int64_t>(i);
  if (!dense) {
    impl->dense_ids = false;
    grow_exact(impl->labels, static_cast<std::size_t>(impl->capacity));
    impl->lookup.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      if (!impl->lookup.emplace(labels[i], static_cast<std::uint32_t>(i)).second) in.fail("duplicate id");
    std::copy(labels.begin(), labels.end(), impl->labels.begin());
  }
  impl->entry = entry;
  impl->max_level = max_level;
  return impl;
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
  return impl_->rotated;
}
std::vector<float> HNSWIndex::rotation() const {
  std::shared_lock<std::shared_mutex> read(impl_->rw);
  return impl_->dense_rotation();
}
void HNSWIndex::add(const float* vectors, std::int64_t n, const std::int64_t* ids, int num_threads) {
  impl_->add(vectors, n, ids, num_threads);
}
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
  std::vector<std::int64_t> out(static_cast<std::size_t>(impl_->count));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = impl_->label(static_cast<std::uint32_t>(i));
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
