// FlatIndex: stored rows + exact k-NN (knn.cpp) + the index file (core/container.hpp).
#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>

#include "keensight/search.hpp"
#include "core/container.hpp"

namespace keensight::search {
namespace {

constexpr const char* kFlatMagic = "KSFLAT";
// Version 1 body: uint32 metric, uint32 reserved (0), int64 dim, int64 count,
// float32 rows [count x dim].
constexpr std::uint32_t kFlatVersion = 1;

// What add() refuses, and load() too: a file must not hold what add could not.
void check_rows(Metric metric, const float* rows, std::int64_t count, const char* name) {
  for (std::int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(rows[i]))
      throw ValueError(std::string(name) + ": contains NaN or infinity (flat position " + std::to_string(i) + ")");
    if (metric == Metric::chi2 && rows[i] < 0.f)
      throw ValueError(std::string(name) + ": the chi2 metric needs non-negative features, found " +
                       std::to_string(rows[i]));
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

std::int64_t FlatIndex::copy_rows(float* out, std::int64_t count) const {
  std::shared_lock<std::shared_mutex> lock(*mutex_);
  const std::int64_t rows = std::min(count, size_);
  std::copy(data_.begin(), data_.begin() + rows * dim_, out);
  return rows;
}

void FlatIndex::add(const float* rows, std::int64_t n) {
  if (n < 0) throw ValueError("x: negative row count");
  if (n == 0) return;
  check_rows(metric_, rows, n * dim_, "x");  // before the lock: searches go on meanwhile
  std::unique_lock<std::shared_mutex> lock(*mutex_);
  data_.insert(data_.end(), rows, rows + n * dim_);
  size_ += n;
}

void FlatIndex::search(const float* queries, std::int64_t nq, std::int64_t k, float* distances,
                       std::int64_t* indices) const {
  std::shared_lock<std::shared_mutex> lock(*mutex_);
  if (size_ == 0) throw ValueError("FlatIndex.search: the index is empty (add rows first)");
  knn(queries, nq, data_.data(), size_, dim_, k, metric_, distances, indices);
}

void FlatIndex::reset() {
  std::unique_lock<std::shared_mutex> lock(*mutex_);
  data_.clear();
  data_.shrink_to_fit();
  size_ = 0;
}

void FlatIndex::save(const std::string& path) const {
  std::shared_lock<std::shared_mutex> lock(*mutex_);
  keensight::detail::ContainerWriter out(path, kFlatMagic, kFlatVersion);
  out.write_value(static_cast<std::uint32_t>(metric_));
  out.write_value(std::uint32_t{0});
  out.write_value(dim_);
  out.write_value(size_);
  out.write(data_.data(), data_.size() * sizeof(float));
  out.commit();
}

FlatIndex FlatIndex::load(const std::string& path) {
  keensight::detail::ContainerReader in(path, kFlatMagic, "FlatIndex");
  in.require_version(kFlatVersion);
  const auto metric = in.read_value<std::uint32_t>();
  in.read_value<std::uint32_t>();
  const auto dim = in.read_value<std::int64_t>();
  const auto count = in.read_value<std::int64_t>();
  if (metric > static_cast<std::uint32_t>(Metric::chi2))
    throw ValueError("FlatIndex file '" + path + "': unknown metric code " + std::to_string(metric));
  if (dim < 1 || count < 0 || (count > 0 && static_cast<std::uint64_t>(count) >
                                                 in.remaining() / sizeof(float) / static_cast<std::uint64_t>(dim)))
    throw ValueError("FlatIndex file '" + path + "': inconsistent sizes (dim " + std::to_string(dim) + ", count " +
                     std::to_string(count) + ")");
  FlatIndex index(dim, static_cast<Metric>(metric));
  index.data_.resize(static_cast<std::size_t>(count * dim));
  in.read(index.data_.data(), index.data_.size() * sizeof(float));
  in.finish();
  check_rows(index.metric_, index.data_.data(), count * dim, ("FlatIndex file '" + path + "'").c_str());
  index.size_ = count;
  return index;
}

}  // namespace keensight::search
