// Internal: the HNSW index's storage layout (the per-node arrays, the links,
// the per-node spin locks, the in-degree counters, the id maps).
//
// Indexed by internal id (0, 1, ... in insertion order). A vector as stored
// (normalised for cosine, rotated when a rotation is set) is split in two: its
// first h = min(granule, dim) coordinates, the head, and the rest, the tail
// (for ip, h = 0: everything is tail).
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
// is built by several threads (a thread holds at most one node lock).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/buffer.hpp"
#include "keensight/search/hnsw.hpp"

namespace keensight::search::detail {

constexpr int kMaxLevel = 30;
constexpr int kMaxGranule = 1 << 24;  // the largest dim: a larger granule means the same
constexpr std::uint32_t kNoLink = 0xffffffffu;  // an unused link slot
// kHNSWMaxNorm squared: the bound on the squared norm of a vector as stored or a query.
constexpr float kMaxNorm2 = static_cast<float>(kHNSWMaxNorm * kHNSWMaxNorm);
// While an index has room for at most kNarrowNodes nodes, its layer-0 links
// are stored as uint16 (0xffff: unused), half the bytes: at M=16 a node's 2M
// links fill one cache line instead of two, and 60k nodes' links take 3.8 MB
// instead of 7.7 MB (4% of a 784-d index). Searches read them in place
// (gather_fresh); everything else sees uint32 lists (get_links0 / put_links0).
constexpr std::uint32_t kNarrowNodes = 0xffff;
constexpr std::uint16_t kNoLink16 = 0xffff;

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

// A vector as stored: its first coordinates (the head, in the dense head
// table) and the rest (the tail, in the node block). Queries split the same way.
struct Split {
  const float* head;
  const float* tail;
};

struct HNSWStorage {
  using Floats = keensight::detail::AlignedBuffer<float>;
  using Words = keensight::detail::AlignedBuffer<std::uint32_t>;

  std::int64_t dim;
  HNSWOptions opt;
  std::size_t M, M0;             // max links on layers >= 1 / on layer 0
  std::int64_t head_dim;         // coordinates in the head table: min(granule, dim); 0 for ip
  std::size_t tail_dim;          // dim - head_dim
  bool narrow = true;            // layer-0 links are uint16 (capacity <= kNarrowNodes)
  std::size_t node_words;        // 4-byte words per node block: tail_dim + M0 (narrow: M0 / 2)

  std::int64_t count = 0, capacity = 0, n_deleted = 0;
  Floats heads{keensight::detail::Pages::huge_when_large};  // count x head_dim: first coordinates
  Words nodes{keensight::detail::Pages::huge_when_large};   // count blocks of node_words (tail, layer-0 links)
  std::vector<std::uint32_t> upper;
  std::vector<std::uint32_t> upper_offset;
  std::vector<std::int64_t> labels;
  std::vector<std::uint8_t> levels;
  std::vector<std::uint8_t> deleted;
  std::unique_ptr<std::atomic<std::uint8_t>[]> locks;  // one spin lock per node
  // Layer-0 in-degree of every node (how many lists point to it), maintained
  // while the graph is built (see HNSWGraph::repair_orphans); counted by one
  // scan on the first add after a load (in_degree_valid).
  std::unique_ptr<std::atomic<std::uint32_t>[]> in_degree;
  bool in_degree_valid = false;
  std::unordered_map<std::int64_t, std::uint32_t> lookup;
  bool dense_ids = true;  // id == internal id for every node: labels and lookup unused

  HNSWStorage(std::int64_t d, const HNSWOptions& o);

  float* head(std::uint32_t i) { return heads.data() + static_cast<std::size_t>(i) * head_dim; }
  float* tail(std::uint32_t i) {
    return reinterpret_cast<float*>(nodes.data() + static_cast<std::size_t>(i) * node_words);
  }
  const float* head(std::uint32_t i) const { return const_cast<HNSWStorage*>(this)->head(i); }
  const float* tail(std::uint32_t i) const { return const_cast<HNSWStorage*>(this)->tail(i); }
  Split node(std::uint32_t i) const {
    auto* self = const_cast<HNSWStorage*>(this);
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
  const std::uint32_t* links(std::uint32_t i, int level) const {
    return const_cast<HNSWStorage*>(this)->links(i, level);
  }
  std::uint16_t* links16(std::uint32_t i) {
    return reinterpret_cast<std::uint16_t*>(nodes.data() + static_cast<std::size_t>(i) * node_words + tail_dim);
  }
  const std::uint16_t* links16(std::uint32_t i) const { return const_cast<HNSWStorage*>(this)->links16(i); }
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

  // Back to no nodes (the arrays freed; options, dims and head layout stay).
  void clear_storage();
  // Room for n nodes (grows by half at least); widens the layer-0 links to
  // uint32 when n outgrows kNarrowNodes.
  void reserve(std::int64_t n);

  std::int64_t label(std::uint32_t i) const { return dense_ids ? i : labels[i]; }
  // The internal id of `id`, or -1.
  std::int64_t find(std::int64_t id) const {
    if (dense_ids) return id >= 0 && id < count ? id : std::int64_t{-1};
    const auto it = lookup.find(id);
    return it == lookup.end() ? std::int64_t{-1} : static_cast<std::int64_t>(it->second);
  }
  // Ids stop being 0, 1, 2, ...: keep them explicitly from now on.
  void make_ids_sparse();

  void link_gained(std::uint32_t e) { in_degree[e].fetch_add(1, std::memory_order_relaxed); }
  // The layer-0 in-degrees from the lists, once (a loaded index has none yet).
  void count_in_degrees();

  // Bytes held by the arrays above (memory_usage adds the rest of the index).
  std::size_t bytes() const;
};

}  // namespace keensight::search::detail
