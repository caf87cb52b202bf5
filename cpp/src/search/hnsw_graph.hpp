// Internal: the HNSW graph algorithm, Yu. A. Malkov, D. A. Yashunin,
// "Efficient and robust approximate nearest neighbor search using Hierarchical
// Navigable Small World graphs" (arXiv:1603.09320, 2016; IEEE TPAMI 2020):
// Alg. 1 INSERT, Alg. 2 SEARCH-LAYER, Alg. 4 SELECT-NEIGHBORS-HEURISTIC,
// Alg. 5 K-NN-SEARCH, over the storage of hnsw_storage.hpp with the bounded
// distances of hnsw_distance.hpp. hnsw_graph.cpp reads in the paper's order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "search/hnsw_distance.hpp"
#include "search/hnsw_storage.hpp"

namespace keensight::search::detail {

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
  std::size_t bytes() const;
};

// The graph: the storage plus the entry point, and the paper's algorithms.
// Building: add() (hnsw.cpp) stores the vectors, then calls insert() from
// several threads and repair_orphans() once; searching: knn().
struct HNSWGraph : HNSWStorage {
  double level_mult;             // m_L = 1 / ln(M) (paper, section 4.1)
  std::uint32_t entry = 0;
  int max_level = -1;
  std::mutex entry_mutex;  // guards entry / max_level while inserting

  HNSWGraph(std::int64_t d, const HNSWOptions& o);

  // The level of the node inserted index-th (Alg. 1 line 4).
  int draw_level(std::uint64_t index) const;
  // Alg. 1 INSERT of stored node i (its level in levels[i]), thread-safe.
  // replacing: i is a reused slot already in the graph (add's replace_deleted):
  // it is left out of its own candidates and its old lists are overwritten.
  void insert(std::uint32_t i, Scratch& s, const Distance& dist, bool replacing = false);
  // Before slot i, whose vector was just replaced, is inserted again: every
  // node its old lists pointed to re-selects its list on that layer (Alg. 4)
  // among i's neighbours and theirs (two hops; hnswlib's updatePoint does the same: the
  // neighbours of the old vector lose a link that no longer leads near them
  // and gain its neighbours as candidates). Serial (the caller owns the index).
  void relink_neighbours(std::uint32_t i, Scratch& s, const Distance& dist);
  // Links again every node of `queue` that no layer-0 list points to.
  void link_from_nearest(std::uint32_t o, Scratch& s, const Distance& dist);
  void repair_orphans(std::vector<std::uint32_t> queue, Scratch& s, const Distance& dist);
  // Nodes no layer-0 path from the entry point reaches (breadth-first over the
  // layer-0 lists), in node order.
  std::vector<std::uint32_t> unreachable_nodes() const;
  // Links each of `islands` (unreachable nodes, whatever their in-degree) from the
  // nearest reachable nodes, as repair_orphans does for orphans.
  void repair_islands(const std::vector<std::uint32_t>& islands, Scratch& s, const Distance& dist);
  // Alg. 5 K-NN-SEARCH: the ef closest accepted nodes to q into s.results.
  template <class Accept>
  void knn(Scratch& s, Split q, std::size_t ef, const Accept& accept, const Distance& dist) const;

 private:
  // Defined in hnsw_graph.cpp, inline as they were in one class before: the inliner
  // weighs functions declared inline higher (measured: without it, searches take 5% more
  // instructions).
  template <bool kBuilding, class Accept>
  inline void search_layer(Scratch& s, Split q, std::uint32_t ep, float ep_dist, int level, std::size_t ef,
                    const Accept& accept, const Distance& dist) const;
  template <bool kBuilding>
  inline void search_pool(Scratch& s, Split q, std::uint32_t ep, float ep_dist, int level, std::size_t ef,
                   const Distance& dist) const;
  template <class Bound, class Take>
  inline void score_links(Scratch& s, Split q, std::uint32_t n_fresh, const Distance& dist, const Bound& bound,
                   const Take& take) const;
  template <class Link>
  inline std::uint32_t gather_fresh(Scratch& s, const Link* list, std::size_t cap) const;
  template <bool kBuilding>
  inline std::uint32_t fresh_links(Scratch& s, std::uint32_t node, int level) const;
  template <bool kBuilding>
  inline const std::uint32_t* read_links(Scratch& s, std::uint32_t node, int level) const;
  inline void prefetch_links(std::uint32_t i, int level) const;
  template <bool kBuilding>
  inline void greedy(Scratch& s, Split q, std::uint32_t& cur, float& cur_dist, int level, const Distance& dist) const;
  inline void select_neighbors(const std::vector<Cand>& cands, std::size_t m, std::vector<Cand>& out,
                        const Distance& dist) const;
  inline void add_link(Scratch& s, std::uint32_t node, std::uint32_t target, int level, const Distance& dist);
  inline void replace_furthest(Scratch& s, std::uint32_t node, std::uint32_t target, const Distance& dist);
  void link_lost(Scratch& s, std::uint32_t e) {
    if (in_degree[e].fetch_sub(1, std::memory_order_relaxed) == 1) s.orphans.push_back(e);
  }
  static void set_links(std::uint32_t* list, std::size_t cap, const std::vector<Cand>& chosen) {
    for (std::size_t j = 0; j < cap; ++j) list[j] = j < chosen.size() ? chosen[j].second : kNoLink;
  }
};

extern template void HNSWGraph::knn(Scratch&, Split, std::size_t, const AcceptAll&, const Distance&) const;
extern template void HNSWGraph::knn(Scratch&, Split, std::size_t, const AcceptLive&, const Distance&) const;
extern template void HNSWGraph::knn(Scratch&, Split, std::size_t, const AcceptMask&, const Distance&) const;

}  // namespace keensight::search::detail
