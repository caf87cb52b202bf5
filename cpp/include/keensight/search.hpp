// keensight search: recognition over feature vectors (float32, row-major).
//
// Metrics, exact k-NN, the Index protocol and FlatIndex, PCA transform,
// sequential three-way decisions and the HNSW index. All functions take plain
// pointers + sizes; rows are contiguous.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "keensight/core.hpp"

namespace keensight::detail {
class ContainerWriter;  // core/container.hpp (internal)
class ContainerReader;
}  // namespace keensight::detail

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

// ---------------------------------------------------------------------------
// The Index protocol (faiss's `Index` as the model): what every keensight index
// offers, so that code written against one works with another.
//
//   add(rows, n, ids)        append n rows; ids null: size() .. size() + n - 1.
//                            Ids are int64 labels, unique in the index; -1 is
//                            refused (it marks missing results). Duplicate or
//                            bad ids: ValueError, nothing added.
//   search(q, nq, k, d, i, allowed, n_allowed)
//                            the k best stored rows of every query (ids, best
//                            first); slots past the rows found hold id -1 and
//                            distance +inf (-inf for ip). allowed (n_allowed
//                            ids, unknown ones ignored) restricts the results
//                            to that id subset; null: every id.
//   range_search(q, nq, radius)
//                            every stored row within `radius` of each query, in
//                            faiss's RangeSearchResult form: lims (nq + 1
//                            offsets), then distances / ids of query i at
//                            [lims[i], lims[i+1]). As faiss: distance < radius
//                            strictly (l2: squared distance), similarity >
//                            radius for ip.
//   remove(ids, n)           delete those ids (unknown ones ignored); returns
//                            how many were removed.
//   reset()                  remove everything (dim and metric stay).
//   get_items(ids, n, out)   the stored rows of those ids (n x dim), in the
//                            coordinates they were added in; unknown id:
//                            ValueError.
//   size(), ids()            rows stored, and their ids in storage order.
//   save(path), to_bytes()   the index file, or exactly the same bytes in memory.
// and, per class (static, so not in the interface): T::load(path) and
// T::from_bytes(data, size), both through the validated container
// (core/container.hpp): corrupt, truncated or foreign data is a ValueError.
//
// Concurrency contract: every member may be called from many threads at once.
// Searches run concurrently with each other; a search concurrent with add,
// remove or reset sees the index before or after that write, never a part.
struct RangeSearchResult {
  std::vector<std::int64_t> lims;  // nq + 1 offsets into distances / ids
  std::vector<float> distances;
  std::vector<std::int64_t> ids;
};

class Index {
 public:
  virtual ~Index() = default;
  virtual std::int64_t dim() const = 0;
  virtual Metric metric() const = 0;
  virtual std::int64_t size() const = 0;
  virtual void add(const float* rows, std::int64_t n, const std::int64_t* ids = nullptr) = 0;
  virtual void search(const float* queries, std::int64_t nq, std::int64_t k, float* distances, std::int64_t* ids,
                      const std::int64_t* allowed = nullptr, std::int64_t n_allowed = 0) const = 0;
  virtual RangeSearchResult range_search(const float* queries, std::int64_t nq, float radius) const = 0;
  virtual std::int64_t remove(const std::int64_t* ids, std::int64_t n) = 0;
  virtual void reset() = 0;
  virtual void get_items(const std::int64_t* ids, std::int64_t n, float* out) const = 0;
  virtual std::vector<std::int64_t> ids() const = 0;
  virtual void save(const std::string& path) const = 0;
  virtual std::vector<unsigned char> to_bytes() const = 0;

 protected:
  Index() = default;
  Index(const Index&) = default;
  Index& operator=(const Index&) = default;
};

// A flat (brute-force) index: exact search, knn() over the stored rows.
// Rows are kept in insertion order (ties go to the earlier row); remove()
// compacts them, keeping that order. While the ids are the row numbers (the
// default ids and no removal), no id table is kept.
// Thread safety: as the Index contract. Searches (and size / ids / get_items /
// save / to_bytes) share a reader lock; add(), remove() and reset() take it
// exclusively and wait for the searches in flight.
class FlatIndex final : public Index {
 public:
  FlatIndex(std::int64_t dim, Metric metric);  // throws ValueError for dim < 1
  FlatIndex(FlatIndex&& other) noexcept;
  FlatIndex& operator=(FlatIndex&& other) noexcept;
  FlatIndex(const FlatIndex&) = delete;
  FlatIndex& operator=(const FlatIndex&) = delete;

  std::int64_t dim() const override { return dim_; }
  Metric metric() const override { return metric_; }
  std::int64_t size() const override;
  // Copies rows [0, min(count, size())) into out (count x dim floats), in
  // storage order; returns how many were copied.
  std::int64_t copy_rows(float* out, std::int64_t count) const;

  // Throws ValueError for NaN or infinity (every metric), negative values
  // (chi2) and bad ids (see Index); nothing is added then.
  void add(const float* rows, std::int64_t n, const std::int64_t* ids = nullptr) override;
  // knn() over the stored rows (or the allowed ones), with its k slots per
  // query (-1 / inf past the rows found). Throws ValueError if empty.
  void search(const float* queries, std::int64_t nq, std::int64_t k, float* distances, std::int64_t* ids,
              const std::int64_t* allowed = nullptr, std::int64_t n_allowed = 0) const override;
  // Distances as search() reports them (the pair kernels: l2 squared, cosine
  // 1 - cos clamped to [0, 2], ip the similarity), per query in storage order.
  RangeSearchResult range_search(const float* queries, std::int64_t nq, float radius) const override;
  std::int64_t remove(const std::int64_t* ids, std::int64_t n) override;
  void reset() override;
  void get_items(const std::int64_t* ids, std::int64_t n, float* out) const override;
  std::vector<std::int64_t> ids() const override;

  // Binary container (core/container.hpp): magic "KSFLAT", format version 2:
  // uint32 metric, uint32 flags (bit 0: ids stored), int64 dim, int64 count,
  // float32 rows, then int64 ids if flagged (else the ids are 0 .. count-1),
  // FNV-1a 64 checksum. Version 1 (no flags, no ids) is still read. save()
  // writes atomically (temp file + rename); load / from_bytes throw
  // ValueError for corrupt, truncated or wrong-version data, and for contents
  // add() would refuse (NaN, infinity, chi2 negatives, duplicate ids).
  void save(const std::string& path) const override;
  std::vector<unsigned char> to_bytes() const override;
  static FlatIndex load(const std::string& path);
  static FlatIndex from_bytes(const void* data, std::size_t size);

 private:
  void write_container(keensight::detail::ContainerWriter& out) const;
  static FlatIndex read_container(keensight::detail::ContainerReader& in, const std::string& where);
  std::int64_t id_of(std::int64_t row) const { return identity_ ? row : ids_[static_cast<std::size_t>(row)]; }
  std::int64_t row_of(std::int64_t id) const;  // -1 if absent
  void adopt_ids(std::vector<std::int64_t> ids);  // sets ids_, identity_ and the lookup table

  std::int64_t dim_;
  Metric metric_;
  std::int64_t size_ = 0;
  std::vector<float> data_;
  bool identity_ = true;                 // ids are the row numbers: ids_ and rows_by_id_ empty
  std::vector<std::int64_t> ids_;        // row -> id
  std::unordered_map<std::int64_t, std::int64_t> rows_by_id_;
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
