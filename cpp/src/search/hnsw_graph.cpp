// The HNSW graph algorithm (see hnsw_graph.hpp), in the paper's order:
// Alg. 1 INSERT, Alg. 2 SEARCH-LAYER (and its ef = 1
// form, the greedy walk of the upper layers), Alg. 4 SELECT-NEIGHBORS-HEURISTIC
// (and the linking it decides), Alg. 5 K-NN-SEARCH.
//
// Locking: one spin-lock byte per node guards its link lists while the graph
// is built by several threads (a thread holds at most one node lock, taken
// after the entry-point mutex when it holds that); the index holds a shared
// lock around searches and an exclusive one around add().
//
// SEARCH-LAYER scores a node's neighbours in passes: all heads first, in one
// batch, against the bound of that moment (those beyond it are rejected
// without their tails ever being fetched: still exact, because the bound only
// shrinks while the neighbours are processed, so each would be rejected in its
// turn), then the survivors' tails, prefetched a few ahead, in order (long
// tails a few at a time in lockstep, each judged by the bound of its turn).
// Without a filter, SEARCH-LAYER keeps its candidates and results in one
// sorted pool instead of Alg. 2's two heaps (search_pool: same visits).
#include "search/hnsw_graph.hpp"

#include <algorithm>
#include <cmath>

namespace keensight::search::detail {

namespace {

// A candidate whose head leaves it in the race has its tail prefetched up to
// the first check (kTailGranules granules: 512 bytes for granule 32), this
// many candidates ahead of the one being scored; the hardware streams the
// rest. Prefetching every survivor at once (up to 2M x 8 lines) overflows the
// miss queues and the prefetch instructions wait. Measured: 3 to 6 ahead is
// 8-12% faster than all at once on 128-d data; half the first check's bytes
// is 4-6% slower on 128-d and 784-d data.
constexpr std::uint32_t kTailPrefetchAhead = 4;
// SEARCH-LAYER without a filter keeps its ef best in one sorted array (see
// search_pool); insertion moves up to ef items, so very large ef use the heaps.
constexpr std::size_t kPoolMaxEf = 1024;

// score_links is instantiated once per caller (for its lambdas) and belongs
// inlined in it, as it was while the whole index was one class in one file:
// out of line (the instantiations are visible outside this file now, so GCC
// no longer inlines them as called-once local functions), building took 1.1%
// more instructions and searching 5.4% more (callgrind, 5000 x 64).
#if defined(__GNUC__) || defined(__clang__)
#define KEENSIGHT_HNSW_INLINE __attribute__((always_inline)) inline
#elif defined(_MSC_VER)
#define KEENSIGHT_HNSW_INLINE __forceinline
#else
#define KEENSIGHT_HNSW_INLINE inline
#endif

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

std::size_t Scratch::bytes() const {
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

HNSWGraph::HNSWGraph(std::int64_t d, const HNSWOptions& o)
    : HNSWStorage(d, o), level_mult(1.0 / std::log(static_cast<double>(o.M))) {}

int HNSWGraph::draw_level(std::uint64_t index) const {
  // Exponentially decaying level, floor(-ln(U) m_L) (paper, Alg. 1 line 4),
  // with U drawn from the node's insertion index: reproducible, thread-free.
  const std::uint64_t x = splitmix64(opt.seed * 0x2545f4914f6cdd1dULL + index);
  const double u = static_cast<double>((x >> 11) + 1) * 0x1.0p-53;  // (0, 1]
  return std::min(kMaxLevel, static_cast<int>(-std::log(u) * level_mult));
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
void HNSWGraph::insert(std::uint32_t i, Scratch& s, const Distance& dist, bool replacing) {
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
    if (replacing) W.erase(std::remove_if(W.begin(), W.end(), [i](const Cand& c) { return c.second == i; }), W.end());
    std::sort(W.begin(), W.end());
    if (W.empty()) continue;
    // The new node gets M links on every layer (as the paper's M, not Mmax0).
    std::vector<Cand>& chosen = s.chosen;  // (s.selected is add_link's)
    select_neighbors(W, M, chosen, dist);
    if (replacing && lc == 0) {  // the slot's old layer-0 links go
      get_links0(i, s.wide.data());
      for (std::size_t j = 0; j < M0 && s.wide[j] != kNoLink; ++j) link_lost(s, s.wide[j]);
    }
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

void HNSWGraph::relink_neighbours(std::uint32_t i, Scratch& s, const Distance& dist) {
  std::vector<std::uint32_t> old, current, hop;
  std::vector<Cand> all;
  for (int lc = levels[i]; lc >= 0; --lc) {
    const std::size_t cap = max_links(lc);
    old.resize(cap);
    current.resize(cap);
    auto read_list = [&](std::uint32_t node, std::uint32_t* out) {
      if (lc == 0) get_links0(node, out);
      else std::copy(links(node, lc), links(node, lc) + cap, out);
    };
    read_list(i, old.data());
    // The candidates: i's neighbours and theirs (two hops, as hnswlib's updatePoint).
    hop.clear();
    for (const std::uint32_t e : old) {
      if (e == kNoLink) break;
      hop.push_back(e);
      read_list(e, current.data());
      for (const std::uint32_t x : current) {
        if (x == kNoLink) break;
        hop.push_back(x);
      }
    }
    std::sort(hop.begin(), hop.end());
    hop.erase(std::unique(hop.begin(), hop.end()), hop.end());
    for (const std::uint32_t e : old) {
      if (e == kNoLink) break;
      read_list(e, current.data());
      all.clear();
      const Split base = node(e);
      for (const std::uint32_t x : hop)
        if (x != e) all.emplace_back(dist.full(base, node(x)), x);
      std::sort(all.begin(), all.end());
      select_neighbors(all, cap, s.selected, dist);
      if (lc == 0) {  // in-degrees follow the change of e's list
        for (const std::uint32_t x : current) {
          if (x == kNoLink) break;
          if (std::none_of(s.selected.begin(), s.selected.end(), [x](const Cand& c) { return c.second == x; }))
            link_lost(s, x);
        }
        for (const Cand& c : s.selected)
          if (std::find(current.begin(), current.end(), c.second) == current.end()) link_gained(c.second);
        set_links(s.wide.data(), cap, s.selected);
        put_links0(e, s.wide.data());
      } else {
        set_links(links(e, lc), cap, s.selected);
      }
    }
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
KEENSIGHT_HNSW_INLINE void HNSWGraph::score_links(Scratch& s, Split q, std::uint32_t n_fresh, const Distance& dist, const Bound& bound,
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
  constexpr std::uint32_t kGroup = static_cast<std::uint32_t>(kBoundedLockstep);
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
inline std::uint32_t HNSWGraph::gather_fresh(Scratch& s, const Link* list, std::size_t cap) const {
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
inline std::uint32_t HNSWGraph::fresh_links(Scratch& s, std::uint32_t node, int level) const {
  if (!kBuilding && level == 0 && narrow) return gather_fresh(s, links16(node), M0);
  return gather_fresh(s, read_links<kBuilding>(s, node, level), max_links(level));
}

// Best-first search of one layer from `ep`, keeping the ef closest accepted
// nodes in s.results (a max-heap). kBuilding: other threads may be writing
// links, so each list is copied under its node's lock. As in hnswlib, nodes
// that may not be returned (deleted, filtered out) still enter the candidate
// queue, and the stop rule waits for ef accepted results when filtering.
template <bool kBuilding, class Accept>
inline void HNSWGraph::search_layer(Scratch& s, Split q, std::uint32_t ep, float ep_dist, int level,
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
inline void HNSWGraph::search_pool(Scratch& s, Split q, std::uint32_t ep, float ep_dist, int level, std::size_t ef,
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
inline void HNSWGraph::prefetch_links(std::uint32_t i, int level) const {
  const char* l = reinterpret_cast<const char*>(links(i, level));
  prefetch(l);
  if (level == 0 && (!narrow || M0 > 32)) prefetch(l + 64);
}

// The links of `node` on `level`; while building, other threads may be
// writing them, so they are copied under the node's lock.
template <bool kBuilding>
inline const std::uint32_t* HNSWGraph::read_links(Scratch& s, std::uint32_t node, int level) const {
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
inline void HNSWGraph::greedy(Scratch& s, Split q, std::uint32_t& cur, float& cur_dist, int level,
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
inline void HNSWGraph::select_neighbors(const std::vector<Cand>& cands, std::size_t m, std::vector<Cand>& out,
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
inline void HNSWGraph::add_link(Scratch& s, std::uint32_t node, std::uint32_t target, int level,
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

// Links node o again as an insertion would: from the nearest nodes an
// insertion-time search (ef_construction) finds, o itself left out, until one
// list keeps it (its in-degree grows); failing that, o replaces the furthest link
// of its nearest node. Nodes this cuts off are left in s.orphans for the caller.
void HNSWGraph::link_from_nearest(std::uint32_t o, Scratch& s, const Distance& dist) {
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
  const std::uint32_t before = in_degree[o].load(std::memory_order_relaxed);
  s.orphans.clear();
  for (std::size_t j = 0; j < found.size() && j < M; ++j) {
    add_link(s, found[j].second, o, 0, dist);
    if (in_degree[o].load(std::memory_order_relaxed) > before) return;
  }
  if (!found.empty()) replace_furthest(s, found[0].second, o, dist);
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
void HNSWGraph::repair_orphans(std::vector<std::uint32_t> queue, Scratch& s, const Distance& dist) {
  std::sort(queue.begin(), queue.end());
  queue.erase(std::unique(queue.begin(), queue.end()), queue.end());
  std::size_t budget = 4 * queue.size() + 64;  // repairs may orphan others: bounded
  for (std::size_t qi = 0; qi < queue.size() && budget > 0; ++qi, --budget) {
    const std::uint32_t o = queue[qi];
    if (o == entry || in_degree[o].load(std::memory_order_relaxed) > 0) continue;
    link_from_nearest(o, s, dist);
    queue.insert(queue.end(), s.orphans.begin(), s.orphans.end());
  }
  s.orphans.clear();
}

// In-degree counts miss one case of a threaded build: exact duplicates inserted at
// the same time can end up linked only to each other (each list that kept one
// dropped the other, and the copies kept each other), an island no search enters
// although every member has an in-link. After a threaded batch the layer-0 graph
// is walked from the entry point (links only, no distances; measured on a 100k-node
// graph: an add of 256 vectors took 28 ms on 2 threads against 20 ms on one, the walk
// most of the difference; a large batch does not notice it), and each unreached node is linked from the
// nearest reachable nodes a search finds; one member linked makes its island
// reachable.
std::vector<std::uint32_t> HNSWGraph::unreachable_nodes() const {
  const auto n = static_cast<std::size_t>(count);
  std::vector<std::uint32_t> out;
  if (n == 0) return out;
  std::vector<unsigned char> seen(n, 0);
  std::vector<std::uint32_t> frontier{entry}, list(M0);
  seen[entry] = 1;
  while (!frontier.empty()) {
    const std::uint32_t v = frontier.back();
    frontier.pop_back();
    get_links0(v, list.data());
    for (const std::uint32_t u : list) {
      if (u == kNoLink) break;
      if (u < n && !seen[u]) {
        seen[u] = 1;
        frontier.push_back(u);
      }
    }
  }
  for (std::size_t i = 0; i < n; ++i)
    if (!seen[i]) out.push_back(static_cast<std::uint32_t>(i));
  return out;
}

void HNSWGraph::repair_islands(const std::vector<std::uint32_t>& islands, Scratch& s, const Distance& dist) {
  for (const std::uint32_t o : islands) {
    link_from_nearest(o, s, dist);
    if (!s.orphans.empty()) {
      std::vector<std::uint32_t> orphans = std::move(s.orphans);
      s.orphans.clear();
      repair_orphans(std::move(orphans), s, dist);
    }
  }
  s.orphans.clear();
}

// Puts target in node's layer-0 list, in place of its furthest link if it is full.
inline void HNSWGraph::replace_furthest(Scratch& s, std::uint32_t node, std::uint32_t target, const Distance& dist) {
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


// --- Alg. 5 K-NN-SEARCH -----------------------------------------------------------
template <class Accept>
void HNSWGraph::knn(Scratch& s, Split q, std::size_t ef, const Accept& accept, const Distance& dist) const {
  std::uint32_t ep = entry;
  float ep_dist = dist.full(q, node(ep));
  for (int lc = max_level; lc > 0; --lc) greedy<false>(s, q, ep, ep_dist, lc, dist);
  search_layer<false>(s, q, ep, ep_dist, 0, ef, accept, dist);
}

template void HNSWGraph::knn(Scratch&, Split, std::size_t, const AcceptAll&, const Distance&) const;
template void HNSWGraph::knn(Scratch&, Split, std::size_t, const AcceptLive&, const Distance&) const;
template void HNSWGraph::knn(Scratch&, Split, std::size_t, const AcceptMask&, const Distance&) const;

}  // namespace keensight::search::detail
