// keensight search: recognition over feature vectors (float32, row-major).
//
// Metrics, exact k-NN, PCA transform, sequential three-way decisions and the
// HNSW index. All functions take plain pointers + sizes; rows are contiguous.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "keensight/core.hpp"

namespace keensight::search {

// l2: squared Euclidean distance; ip: inner product (a similarity: larger is
// closer); cosine: 1 - cos(a, b); l1: sum |a - b|; chi2: sum (a - b)^2 / (a + b)
// over the coordinates where a + b > 0 (features must be non-negative).
enum class Metric : int { l2 = 0, ip = 1, cosine = 2, l1 = 3, chi2 = 4 };

Metric metric_from_name(const std::string& name);  // throws ValueError
const char* metric_name(Metric metric);

// True for metrics whose values are similarities (sorted descending).
inline bool metric_is_similarity(Metric metric) { return metric == Metric::ip; }

// ---------------------------------------------------------------------------
// Exact k-nearest neighbours (brute force, blocked and SIMD).
//
// For every query row, the k base rows closest under `metric`, best first:
// ascending distance (l2, cosine, l1, chi2) or descending similarity (ip), ties
// broken by the lower base index. distances and indices are nq x k, row-major.
// When k > n the slots past n hold index -1 and distance +inf (-inf for ip).
// l2, ip and cosine run as a blocked GEMM (||q||^2 - 2 q.b + ||b||^2, clamped at
// 0; cosine on unit-normalised rows, a zero row having cosine distance 1); l1
// and chi2 run pair kernels (as do all metrics for fewer than 8 queries, where
// packing the base would not pay). Results do not depend on the thread count.
// Throws ValueError for dim < 1, n < 1, k < 1, nq < 0, or (chi2) a negative value.
void knn(const float* queries, std::int64_t nq, const float* base, std::int64_t n, std::int64_t dim,
         std::int64_t k, Metric metric, float* distances, std::int64_t* indices);

// A flat (brute-force) index: rows appended in order, ids are insertion order.
// search() is knn() over the stored rows.
// Thread safety: every member may be called from many threads at once.
// Searches (and size / copy_rows / save) share a reader lock and run
// concurrently; add() and reset() take it exclusively and wait for the searches
// in flight (a search sees the rows before or after an add, never a part).
class FlatIndex {
 public:
  FlatIndex(std::int64_t dim, Metric metric);  // throws ValueError for dim < 1
  FlatIndex(FlatIndex&& other) noexcept;
  FlatIndex& operator=(FlatIndex&& other) noexcept;
  FlatIndex(const FlatIndex&) = delete;
  FlatIndex& operator=(const FlatIndex&) = delete;

  std::int64_t dim() const { return dim_; }
  Metric metric() const { return metric_; }
  std::int64_t size() const;
  // Copies rows [0, min(count, size())) into out (count x dim floats); returns
  // how many were copied.
  std::int64_t copy_rows(float* out, std::int64_t count) const;

  // Throws ValueError for NaN or infinity (every metric) and negative values
  // (chi2); nothing is added then.
  void add(const float* rows, std::int64_t n);
  // knn() over the stored rows, with its k slots per query (-1 / inf past the
  // rows stored). Throws ValueError if empty.
  void search(const float* queries, std::int64_t nq, std::int64_t k, float* distances,
              std::int64_t* indices) const;
  void reset();

  // Binary file: magic "KSFLAT", format version, metric, dim, count, float32
  // rows, FNV-1a 64 checksum (core/container.hpp). Written atomically (temp
  // file + rename); load throws ValueError for a corrupt, truncated or
  // wrong-version file, and for contents add() would refuse (NaN, infinity,
  // chi2 negatives).
  void save(const std::string& path) const;
  static FlatIndex load(const std::string& path);

 private:
  std::int64_t dim_;
  Metric metric_;
  std::int64_t size_ = 0;
  std::vector<float> data_;
  std::unique_ptr<std::shared_mutex> mutex_;
};

// ---------------------------------------------------------------------------
// PCA projection: out[i, c] = (sum_j (x[i, j] - mean[j]) * components[c, j]) * scale[c]
// for n rows of dim values onto n_components rows of `components`; scale may be
// null (no whitening). out is n x n_components, row-major. Blocked SIMD GEMM
// on the rows in place, centred after the product (x.c - mean.c, as
// scikit-learn does).
void pca_transform(const float* x, std::int64_t n, std::int64_t dim, const float* mean,
                   const float* components, std::int64_t n_components, const float* scale, float* out);

}  // namespace keensight::search

#include "keensight/search/hnsw.hpp"
#include "keensight/search/sequential.hpp"
