// Internal: the k best (distance, index) pairs of a stream, for every index in
// the search area. Order: smaller distance first, ties broken by smaller index,
// so results never depend on the order candidates arrive in (blocks, threads).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace keensight::search_detail {

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

  void clear() { heap_.clear(); }

 private:
  using Item = std::pair<float, std::int64_t>;  // lexicographic: distance, then index
  std::int64_t k_;
  std::vector<Item> heap_;  // max-heap: the worst kept pair on top
};

}  // namespace keensight::search_detail
