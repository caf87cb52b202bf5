// FlatIndex: stored rows + user ids + exact k-NN (knn.cpp), range search with
// the pair kernels (search/kernels.hpp), and the index container
// (core/container.hpp), in a file or in memory.
#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <unordered_set>
#include <utility>

#include "core/container.hpp"
#include "core/parallel.hpp"
#include "keensight/search.hpp"
#include "search/kernels.hpp"

namespace keensight::search {
namespace {

constexpr const char* kFlatMagic = "KSFLAT";
// Version 1 body: uint32 metric, uint32 reserved (0), int64 dim, int64 count,
// float32 rows [count x dim] (ids: the row numbers).
// Version 2: the reserved field holds flags; kFlagIds: int64 ids [count]
// follow the rows.
constexpr std::uint32_t kFlatVersion = 2;
constexpr std::uint32_t kFlagIds = 1;
// Base rows per block of range_search: 256 KiB stays in L2 while every query
// of a worker passes over it (as knn's pair path).
constexpr std::int64_t kRangeBlockBytes = std::int64_t{256} << 10;

// What add() refuses, and load() too: a file must not hold what add could not.
void check_rows(Metric metric, const float* rows, std::int64_t count, const std::string& name) {
  for (std::int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(rows[i]))
      throw ValueError(name + ": contains NaN or infinity (flat position " + std::to_string(i) + ")");
    if (metric == Metric::chi2 && rows[i] < 0.f)
      throw ValueError(name + ": the chi2 metric needs non-negative features, found " + std::to_string(rows[i]));
  }
}

// Ids of one batch: no -1 (the missing-result marker), no repeats.
void check_new_ids(const std::int64_t* ids, std::int64_t n, const std::string& name) {
  std::unordered_set<std::int64_t> seen;
  seen.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    if (ids[i] == -1) throw ValueError(name + ": id -1 is reserved (it marks missing results)");
    if (!seen.insert(ids[i]).second) throw ValueError(name + ": duplicate id " + std::to_string(ids[i]));
  }
}

}  // namespace

FlatIndex::FlatIndex(std::int64_t dim, Metric metric)
    : dim_(dim), metric_(metric), mutex_(std::make_unique<std::shared_mutex>()) {
  if (dim < 1) throw ValueError("dim: expected a positive int, got " + std::to_string(dim));
  metric_name(metric);  // (any enum value is named)
}

FlatIndex::FlatIndex(FlatIndex&& other) noexcept = default;
FlatIndex& FlatIndex::operator=(FlatIndex&& other) noexcept = default;

std::int64_t FlatIndex::size() const {
  std::shared_lock<std::shared_mutex> lock(*mutex_);
  return size_;
}

std::int64_t FlatIndex::row_of(std::int64_t id) const {
  if (identity_) return id >= 0 && id < size_ ? id : -1;
  const auto it = rows_by_id_.find(id);
  return it == rows_by_id_.end() ? -1 : it->second;
}

void FlatIndex::adopt_ids(std::vector<std::int64_t> ids) {
  bool identity = true;
  for (std::size_t i = 0; i < ids.size() && identity; ++i) identity = ids[i] == static_cast<std::int64_t>(i);
  identity_ = identity;
  rows_by_id_.clear();
  if (identity) {
    ids_.clear();
    ids_.shrink_to_fit();
    return;
  }
  ids_ = std::move(ids);
  rows_by_id_.reserve(ids_.size());
  for (std::size_t i = 0; i < ids_.size(); ++i) rows_by_id_.emplace(ids_[i], static_cast<std::int64_t>(i));
}

std::int64_t FlatIndex::copy_rows(float* out, std::int64_t count) const {
  std::shared_lock<std::shared_mutex> lock(*mutex_);
  const std::int64_t rows = std::min(count, size_);
  std::copy(data_.begin(), data_.begin() + rows * dim_, out);
  return rows;
}

std::vector<std::int64_t> FlatIndex::ids() const {
  std::shared_lock<std::shared_mutex> lock(*mutex_);
  std::vector<std::int64_t> out(static_cast<std::size_t>(size_));
  for (std::int64_t i = 0; i < size_; ++i) out[static_cast<std::size_t>(i)] = id_of(i);
  return out;
}

void FlatIndex::add(const float* rows, std::int64_t n, const std::int64_t* ids) {
  if (n < 0) throw ValueError("x: negative row count");
  if (n == 0) return;
  check_rows(metric_, rows, n * dim_, "x");  // before the lock: searches go on meanwhile
  if (ids) check_new_ids(ids, n, "ids");
  std::unique_lock<std::shared_mutex> lock(*mutex_);
  // The default ids, size_ .. size_ + n - 1, may meet ids given earlier (never
  // while the ids are the row numbers).
  for (std::int64_t i = 0; (ids || !identity_) && i < n; ++i) {
    const std::int64_t id = ids ? ids[i] : size_ + i;
    if (row_of(id) >= 0)
      throw ValueError(std::string(ids ? "ids" : "ids (default: len(index) + arange(n))") + ": id " +
                       std::to_string(id) + " is already in the index");
  }
  bool stays_identity = identity_;
  for (std::int64_t i = 0; ids && i < n && stays_identity; ++i) stays_identity = ids[i] == size_ + i;
  if (!stays_identity) {
    std::vector<std::int64_t> all(static_cast<std::size_t>(size_ + n));
    for (std::int64_t i = 0; i < size_; ++i) all[static_cast<std::size_t>(i)] = id_of(i);
    for (std::int64_t i = 0; i < n; ++i) all[static_cast<std::size_t>(size_ + i)] = ids ? ids[i] : size_ + i;
    data_.reserve(data_.size() + static_cast<std::size_t>(n * dim_));  // may throw: nothing changed yet
    adopt_ids(std::move(all));
  }
  data_.insert(data_.end(), rows, rows + n * dim_);
  size_ += n;
}

void FlatIndex::search(const float* queries, std::int64_t nq, std::int64_t k, float* distances,
                       std::int64_t* indices, const std::int64_t* allowed, std::int64_t n_allowed) const {
  std::shared_lock<std::shared_mutex> lock(*mutex_);
  if (size_ == 0) throw ValueError("FlatIndex.search: the index is empty (add rows first)");
  if (k < 1) throw ValueError("k: expected a positive int, got " + std::to_string(k));
  if (!allowed) {
    knn(queries, nq, data_.data(), size_, dim_, k, metric_, distances, indices);
    if (!identity_)
      for (std::int64_t j = 0; j < nq * k; ++j)
        if (indices[j] >= 0) indices[j] = ids_[static_cast<std::size_t>(indices[j])];
    return;
  }
  // The allowed subset: its rows in storage order (so ties still go to the
  // earlier row), gathered and searched exactly.
  std::vector<std::int64_t> rows;
  rows.reserve(static_cast<std::size_t>(std::min(n_allowed, size_)));
  for (std::int64_t j = 0; j < n_allowed; ++j) {
    const std::int64_t row = row_of(allowed[j]);
    if (row >= 0) rows.push_back(row);
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  const std::int64_t m = static_cast<std::int64_t>(rows.size());
  if (m == 0) {
    const float pad = metric_is_similarity(metric_) ? -std::numeric_limits<float>::infinity()
                                                    : std::numeric_limits<float>::infinity();
    std::fill(distances, distances + nq * k, pad);
    std::fill(indices, indices + nq * k, std::int64_t{-1});
    if (metric_ == Metric::chi2) check_rows(metric_, queries, nq * dim_, "queries");
    return;
  }
  std::vector<float> subset(static_cast<std::size_t>(m * dim_));
  for (std::int64_t r = 0; r < m; ++r)
    std::copy(data_.begin() + rows[r] * dim_, data_.begin() + (rows[r] + 1) * dim_, subset.begin() + r * dim_);
  knn(queries, nq, subset.data(), m, dim_, k, metric_, distances, indices);
  for (std::int64_t j = 0; j < nq * k; ++j)
    if (indices[j] >= 0) indices[j] = id_of(rows[static_cast<std::size_t>(indices[j])]);
}

RangeSearchResult FlatIndex::range_search(const float* queries, std::int64_t nq, float radius) const {
  if (nq < 0) throw ValueError("queries: negative row count");
  if (std::isnan(radius)) throw ValueError("radius: expected a number, got NaN");
  check_rows(metric_, queries, nq * dim_, "queries");
  std::shared_lock<std::shared_mutex> lock(*mutex_);
  const search::detail::SearchKernels& sk = search::detail::search_kernels();
  const std::int64_t dim = dim_, n = size_;
  const float* base = data_.data();
  const Metric metric = metric_;
  std::vector<float> inverse_norms;  // cosine: as knn, a zero row stays zero (distance 1)
  if (metric == Metric::cosine) {
    inverse_norms.resize(static_cast<std::size_t>(n));
    for (std::int64_t r = 0; r < n; ++r) {
      const float norm = std::sqrt(sk.dot(base + r * dim, base + r * dim, dim));
      inverse_norms[static_cast<std::size_t>(r)] = norm > 0.f ? 1.f / norm : 0.f;
    }
  }
  // The value search() reports for the pair: the same kernels and the same
  // expression as knn's pair path (cosine: 1 - (q.b / |q|) / |b|, clamped).
  const auto value = [&](const float* q, float q_scale, std::int64_t r) -> float {
    const float* b = base + r * dim;
    switch (metric) {
      case Metric::l2: return sk.l2_sq(q, b, dim);
      case Metric::ip: return sk.dot(q, b, dim);
      case Metric::cosine:
        return std::min(2.f, std::max(0.f, 1.f + -(sk.dot(q, b, dim) * q_scale) * inverse_norms[static_cast<std::size_t>(r)]));
      case Metric::l1: return sk.l1(q, b, dim);
      case Metric::chi2: return sk.chi2(q, b, dim);
    }
    return 0.f;
  };
  const bool similarity = metric_is_similarity(metric);

  std::vector<std::vector<std::pair<float, std::int64_t>>> hits(static_cast<std::size_t>(nq));
  const std::int64_t block = std::max<std::int64_t>(1, kRangeBlockBytes / (dim * 4));
  keensight::detail::parallel_for(nq, 4, [&](std::int64_t q0, std::int64_t q1) {
    std::vector<float> q_scales(static_cast<std::size_t>(q1 - q0), 1.f);
    if (metric == Metric::cosine)
      for (std::int64_t i = q0; i < q1; ++i) {
        const float norm = std::sqrt(sk.dot(queries + i * dim, queries + i * dim, dim));
        q_scales[static_cast<std::size_t>(i - q0)] = norm > 0.f ? 1.f / norm : 0.f;
      }
    for (std::int64_t b0 = 0; b0 < n; b0 += block) {
      const std::int64_t b1 = std::min(n, b0 + block);
      for (std::int64_t i = q0; i < q1; ++i) {
        const float* q = queries + i * dim;
        auto& out = hits[static_cast<std::size_t>(i)];
        for (std::int64_t r = b0; r < b1; ++r) {
          const float v = value(q, q_scales[static_cast<std::size_t>(i - q0)], r);
          if (similarity ? v > radius : v < radius) out.emplace_back(v, r);  // strict, as faiss
        }
      }
    }
  });
  RangeSearchResult result;
  result.lims.resize(static_cast<std::size_t>(nq + 1), 0);
  for (std::int64_t i = 0; i < nq; ++i)
    result.lims[static_cast<std::size_t>(i + 1)] =
        result.lims[static_cast<std::size_t>(i)] + static_cast<std::int64_t>(hits[static_cast<std::size_t>(i)].size());
  result.distances.reserve(static_cast<std::size_t>(result.lims.back()));
  result.ids.reserve(static_cast<std::size_t>(result.lims.back()));
  for (auto& h : hits) {
    for (const auto& [v, r] : h) {
      result.distances.push_back(v);
      result.ids.push_back(id_of(r));
    }
    std::vector<std::pair<float, std::int64_t>>().swap(h);
  }
  return result;
}

std::int64_t FlatIndex::remove(const std::int64_t* ids, std::int64_t n) {
  if (n < 0) throw ValueError("ids: negative count");
  std::unique_lock<std::shared_mutex> lock(*mutex_);
  std::vector<char> drop(static_cast<std::size_t>(size_), 0);
  std::int64_t removed = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    const std::int64_t row = row_of(ids[j]);
    if (row >= 0 && !drop[static_cast<std::size_t>(row)]) drop[static_cast<std::size_t>(row)] = 1, ++removed;
  }
  if (removed == 0) return 0;
  // Compact in place, keeping storage order.
  std::vector<std::int64_t> kept_ids;
  kept_ids.reserve(static_cast<std::size_t>(size_ - removed));
  std::int64_t w = 0;
  for (std::int64_t r = 0; r < size_; ++r) {
    if (drop[static_cast<std::size_t>(r)]) continue;
    if (w != r) std::copy(data_.begin() + r * dim_, data_.begin() + (r + 1) * dim_, data_.begin() + w * dim_);
    kept_ids.push_back(id_of(r));
    ++w;
  }
  data_.resize(static_cast<std::size_t>(w * dim_));
  size_ = w;
  adopt_ids(std::move(kept_ids));
  return removed;
}

void FlatIndex::reset() {
  std::unique_lock<std::shared_mutex> lock(*mutex_);
  data_.clear();
  data_.shrink_to_fit();
  size_ = 0;
  adopt_ids({});
}

void FlatIndex::get_items(const std::int64_t* ids, std::int64_t n, float* out) const {
  if (n < 0) throw ValueError("ids: negative count");
  std::shared_lock<std::shared_mutex> lock(*mutex_);
  for (std::int64_t j = 0; j < n; ++j)
    if (row_of(ids[j]) < 0) throw ValueError("ids: id " + std::to_string(ids[j]) + " is not in the index");
  for (std::int64_t j = 0; j < n; ++j) {
    const std::int64_t row = row_of(ids[j]);
    std::copy(data_.begin() + row * dim_, data_.begin() + (row + 1) * dim_, out + j * dim_);
  }
}

// ---------------------------------------------------------------------------
void FlatIndex::write_container(keensight::detail::ContainerWriter& out) const {
  out.write_value(static_cast<std::uint32_t>(metric_));
  out.write_value(identity_ ? std::uint32_t{0} : kFlagIds);
  out.write_value(dim_);
  out.write_value(size_);
  out.write(data_.data(), data_.size() * sizeof(float));
  if (!identity_) out.write(ids_.data(), ids_.size() * sizeof(std::int64_t));
  out.commit();
}

void FlatIndex::save(const std::string& path) const {
  std::shared_lock<std::shared_mutex> lock(*mutex_);
  keensight::detail::ContainerWriter out(path, kFlatMagic, kFlatVersion);
  write_container(out);
}

std::vector<unsigned char> FlatIndex::to_bytes() const {
  std::shared_lock<std::shared_mutex> lock(*mutex_);
  std::vector<unsigned char> bytes;
  keensight::detail::ContainerWriter out(bytes, kFlatMagic, kFlatVersion);
  write_container(out);
  return bytes;
}

FlatIndex FlatIndex::read_container(keensight::detail::ContainerReader& in, const std::string& where) {
  in.require_version(kFlatVersion);
  const auto metric = in.read_value<std::uint32_t>();
  const auto flags = in.read_value<std::uint32_t>();
  const auto dim = in.read_value<std::int64_t>();
  const auto count = in.read_value<std::int64_t>();
  if (metric > static_cast<std::uint32_t>(Metric::chi2))
    throw ValueError(where + ": unknown metric code " + std::to_string(metric));
  if ((in.version() == 1 && flags != 0) || (flags & ~kFlagIds) != 0)
    throw ValueError(where + ": unknown flags " + std::to_string(flags));
  const std::uint64_t row_bytes = sizeof(float) * static_cast<std::uint64_t>(dim > 0 ? dim : 1) +
                                  ((flags & kFlagIds) ? sizeof(std::int64_t) : 0);
  if (dim < 1 || dim > (std::int64_t{1} << 40) || count < 0 ||
      (count > 0 && static_cast<std::uint64_t>(count) > in.remaining() / row_bytes))
    throw ValueError(where + ": inconsistent sizes (dim " + std::to_string(dim) + ", count " +
                     std::to_string(count) + ")");
  FlatIndex index(dim, static_cast<Metric>(metric));
  index.data_.resize(static_cast<std::size_t>(count * dim));
  in.read(index.data_.data(), index.data_.size() * sizeof(float));
  std::vector<std::int64_t> ids;
  if (flags & kFlagIds) {
    ids.resize(static_cast<std::size_t>(count));
    in.read(ids.data(), ids.size() * sizeof(std::int64_t));
  }
  in.finish();
  check_rows(index.metric_, index.data_.data(), count * dim, where);
  if (flags & kFlagIds) {
    check_new_ids(ids.data(), count, where + ": ids");
    index.adopt_ids(std::move(ids));
  }
  index.size_ = count;
  return index;
}

FlatIndex FlatIndex::load(const std::string& path) {
  keensight::detail::ContainerReader in(path, kFlatMagic, "FlatIndex");
  return read_container(in, "FlatIndex file '" + path + "'");
}

FlatIndex FlatIndex::from_bytes(const void* data, std::size_t size) {
  keensight::detail::ContainerReader in(data, size, kFlatMagic, "FlatIndex");
  return read_container(in, "FlatIndex bytes");
}

}  // namespace keensight::search
