// Internal: the k best (distance, index) pairs of a stream, for every index and
// every partial search (threads over row ranges, shards of a sharded index). Order: smaller distance first, ties broken by smaller index,
// so results never depend on the order candidates arrive in (blocks, threads).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace keensight::detail {

class TopK {
 public:
  explicit TopK(std::int64_t k) : k_(k) { heap_.reserve(static_cast<std::size_t>(k)); }

  // The worst kept distance once k are kept (candidates at or beyond it can be
  // skipped unless they tie with a smaller index); +inf before that.
  float threshold() const {
    return static_cast<std::int64_t>(heap_.size()) < k_ ? std::numeric_limits<float>::infinity()
                                                         : heap_.front().first;
  }
  bool full() const { return static_cast<std::int64_t>(heap_.size()) >= k_; }
  std::int64_t size() const { return static_cast<std::int64_t>(heap_.size()); }

  void push(float distance, std::int64_t index) {
    if (k_ <= 0) return;
    const Item item{distance, index};
    if (static_cast<std::int64_t>(heap_.size()) < k_) {
      heap_.push_back(item);
      std::push_heap(heap_.begin(), heap_.end());
    } else if (item < heap_.front()) {
      std::pop_heap(heap_.begin(), heap_.end());
      heap_.back() = item;
      std::push_heap(heap_.begin(), heap_.end());
    }
  }

  // Writes the kept pairs best first; slots beyond size() get (fill, -1).
  void write_sorted(float* distances, std::int64_t* indices, float fill) {
    std::sort_heap(heap_.begin(), heap_.end());
    for (std::int64_t j = 0; j < k_; ++j) {
      if (j < static_cast<std::int64_t>(heap_.size())) {
        distances[j] = heap_[static_cast<std::size_t>(j)].first;
        indices[j] = heap_[static_cast<std::size_t>(j)].second;
      } else {
        distances[j] = fill;
        indices[j] = -1;
      }
    }
    heap_.clear();
  }

  // Tie-aware merge of a partial result (count pairs, e.g. one shard's or one
  // thread's sorted top-k): pairs with index < 0 (unfilled slots) are skipped.
  // Pushing under the total order (distance, index) makes the merged k exactly
  // the k best of the union, whatever the order partial results arrive in:
  // a tie at the k-th distance keeps the smaller index, as one search over all
  // rows would.
  void merge(const float* distances, const std::int64_t* indices, std::int64_t count) {
    for (std::int64_t j = 0; j < count; ++j)
      if (indices[j] >= 0) push(distances[j], indices[j]);
  }

  void clear() { heap_.clear(); }

 private:
  using Item = std::pair<float, std::int64_t>;  // lexicographic: distance, then index
  std::int64_t k_;
  std::vector<Item> heap_;  // max-heap: the worst kept pair on top
};

// Merges `parts` result tables of nq queries x k (row-major, best first, index
// -1 for unfilled slots, as every index's search writes them) into one nq x k
// table under the total order (distance, index). Used by sharded search: with
// exact shards the result equals one exact search over all rows.
inline void merge_results(const float* const* distances, const std::int64_t* const* indices, std::int64_t parts,
                          std::int64_t nq, std::int64_t k, float* out_distances, std::int64_t* out_indices,
                          float fill) {
  TopK heap(k);
  for (std::int64_t q = 0; q < nq; ++q) {
    for (std::int64_t p = 0; p < parts; ++p) heap.merge(distances[p] + q * k, indices[p] + q * k, k);
    heap.write_sorted(out_distances + q * k, out_indices + q * k, fill);
  }
}

}  // namespace keensight::detail
