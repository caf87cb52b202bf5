// Internal: the state behind keensight::search::HNSWIndex. The graph (its
// storage and algorithms: hnsw_graph.hpp), the rotation (hnsw_rotation.hpp),
// the centre, the locks and the scratch pool; hnsw.cpp holds the operations,
// hnsw_io.cpp the file format.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "keensight/search/hnsw.hpp"
#include "search/hnsw_graph.hpp"
#include "search/hnsw_rotation.hpp"

namespace keensight::search {

namespace detail {
class HNSWFileBody;  // hnsw_io.cpp
}

struct HNSWIndex::Impl : detail::HNSWGraph {
  detail::HNSWRotation rotation;
  // l2 with a rotation: the first batch's mean, subtracted from every vector and
  // query before it is rotated (see add); else empty. Rotating x itself, far
  // from the origin, would round each coordinate relative to |x|, not to the
  // distances: at an offset of 1e4 from the origin, distances were 0.1% off.
  std::vector<float> centre;
  // pca_auto: the variance share of the first five granules the first
  // batch's fit measured (-1: not fitted; not saved).
  double pca_head_share = -1.0;

  mutable std::shared_mutex rw;  // searches share it, mutations own it
  mutable std::mutex pool_mutex;
  mutable std::vector<std::unique_ptr<detail::Scratch>> pool;

  // Throws ValueError for parameters out of range (see HNSWIndex::HNSWIndex).
  Impl(std::int64_t d, const HNSWOptions& o);
  static const HNSWOptions& checked(std::int64_t dim, const HNSWOptions& opt);  // o, or ValueError
  static void check_ef(std::int64_t ef, const char* name);

  std::unique_ptr<detail::Scratch> acquire() const;
  void release(std::unique_ptr<detail::Scratch> s) const;

  void check_rows(const float* x, std::int64_t n, const char* what, const float* centre) const;
  std::vector<float> mean_row(const float* x, std::int64_t n) const;
  void fit_pca(const float* x, std::int64_t n);
  void transform_rows(const float* x, std::int64_t n, float* out) const;

  void add(const float* x, std::int64_t n, const std::int64_t* ids, int num_threads, bool replace_deleted);
  void add_locked(const float* x, std::int64_t n, const std::int64_t* ids, int num_threads, bool replace_deleted);
  RangeSearchResult range_search(const float* queries, std::int64_t nq, float radius, int num_threads) const;
  std::int64_t remove(const std::int64_t* ids, std::int64_t n);
  void reset();
  void get_items(const std::int64_t* ids, std::int64_t n, float* out) const;
  void write_results(detail::Scratch& s, std::int64_t k, float* D, std::int64_t* I) const;
  void search(const float* queries, std::int64_t nq, std::int64_t k, std::int64_t ef_arg, float* D,
              std::int64_t* I, const std::int64_t* allowed, std::int64_t n_allowed, int num_threads,
              HNSWSearchStats* stats) const;
  void set_deleted(const std::int64_t* ids, std::int64_t n, bool value);
  void set_rotation(const float* r);
  void set_pca_axes(const float* axes, std::int64_t k);
  std::size_t memory_usage() const;

  void save(const std::string& path) const;              // hnsw_io.cpp
  void write_container(keensight::detail::ContainerWriter& w) const;
  std::vector<unsigned char> to_bytes() const;
  static std::unique_ptr<Impl> from_bytes(const void* data, std::size_t size);
  static std::unique_ptr<Impl> load(const std::string& path);
  static std::unique_ptr<Impl> parse(detail::HNSWFileBody& in, std::uint32_t version);
};

}  // namespace keensight::search
