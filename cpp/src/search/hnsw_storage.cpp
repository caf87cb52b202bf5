// The HNSW storage layout: growing, widening and accounting (see hnsw_storage.hpp).
#include "search/hnsw_storage.hpp"

#include <limits>

#include "keensight/core.hpp"

namespace keensight::search::detail {

HNSWStorage::HNSWStorage(std::int64_t d, const HNSWOptions& o) : dim(d), opt(o) {
  M = static_cast<std::size_t>(opt.M);
  M0 = 2 * M;
  head_dim = opt.metric == Metric::ip ? 0 : std::min<std::int64_t>(opt.granule, dim);
  tail_dim = static_cast<std::size_t>(dim - head_dim);
  node_words = tail_dim + M0 / 2;  // M0 = 2M: even
}

void HNSWStorage::reserve(std::int64_t n) {
  if (n <= capacity) return;
  if (n > std::numeric_limits<std::uint32_t>::max() - 1) throw ValueError("HNSWIndex: at most 2^32 - 2 vectors");
  const std::int64_t cap = std::max<std::int64_t>(n, capacity + capacity / 2);
  const auto c = static_cast<std::size_t>(cap);
  heads.grow_keep(static_cast<std::int64_t>(c * head_dim), count * head_dim);
  if (narrow && cap > kNarrowNodes) {  // ids outgrow 16 bits: widen every list
    const std::size_t words = tail_dim + M0;
    Words wide(keensight::detail::Pages::huge_when_large);
    wide.grow_keep(static_cast<std::int64_t>(c * words), 0);
    for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(count); ++i) {
      std::copy(tail(i), tail(i) + tail_dim, reinterpret_cast<float*>(wide.data() + i * words));
      get_links0(i, wide.data() + i * words + tail_dim);
    }
    nodes = std::move(wide);
    narrow = false;
    node_words = words;
  } else {
    nodes.grow_keep(static_cast<std::int64_t>(c * node_words), count * static_cast<std::int64_t>(node_words));
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

void HNSWStorage::clear_storage() {
  count = capacity = n_deleted = 0;
  heads = Floats(keensight::detail::Pages::huge_when_large);
  nodes = Words(keensight::detail::Pages::huge_when_large);
  narrow = true;
  node_words = tail_dim + M0 / 2;
  upper = {};
  upper_offset = {};
  labels = {};
  levels = {};
  deleted = {};
  locks.reset();
  in_degree.reset();
  in_degree_valid = false;
  lookup = {};
  dense_ids = true;
}

void HNSWStorage::make_ids_sparse() {
  if (!dense_ids) return;
  grow_exact(labels, static_cast<std::size_t>(capacity));
  lookup.reserve(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    labels[static_cast<std::size_t>(i)] = i;
    lookup.emplace(i, static_cast<std::uint32_t>(i));
  }
  dense_ids = false;
}

void HNSWStorage::count_in_degrees() {
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

std::size_t HNSWStorage::bytes() const {
  // Locks and in-degrees: 1 + 4 bytes per node of capacity.
  std::size_t b = heads.bytes() + nodes.bytes() + upper.capacity() * 4 + upper_offset.capacity() * 4 +
                  labels.capacity() * 8 + levels.capacity() + deleted.capacity() +
                  static_cast<std::size_t>(capacity) * 5;
  // unordered_map: one bucket pointer per bucket, one heap node per entry
  // (next pointer + key + value, rounded up as malloc does).
  b += lookup.bucket_count() * sizeof(void*) + lookup.size() * 32;
  return b;
}

}  // namespace keensight::search::detail
