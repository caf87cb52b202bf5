// keensight search: the HNSW approximate nearest-neighbour index.
//
// Hierarchical Navigable Small World graphs: Yu. A. Malkov, D. A. Yashunin,
// "Efficient and robust approximate nearest neighbor search using Hierarchical
// Navigable Small World graphs", IEEE TPAMI 42(4), 2020 (arXiv:1603.09320, 2016).
//
// Beyond the paper, the index can store its vectors rotated by an orthonormal
// matrix (e.g. the principal axes of the data: HNSWOptions::pca), so
// that most of the variance sits in the first coordinates, and computes L2
// distances granule by granule, abandoning a candidate as soon as its partial
// distance reaches the bound at which the search would reject it anyway
// (Savchenko's granules applied to graph search). Abandoning is exact: the
// search visits the same nodes and returns the same results, bit for bit, as
// with abandoning switched off.
//
// Vectors are float32 rows; ids are caller-chosen non-negative int64 labels.
// Thread safety: search() may run concurrently from many threads; add(),
// mark_deleted() and the setters take an exclusive lock and wait for searches.
// Determinism: a search of a given graph returns the same results whatever the
// thread count; a build with one thread is reproducible (same seed, same
// batches: the same graph, bit for bit); a build with several threads inserts
// in an order that depends on timing, so its graph (and the approximate results
// searched on it) varies from run to run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "keensight/search.hpp"

namespace keensight::search {

// The largest candidate list (ef_construction, ef_search, the ef of search()):
// far more than any search needs, and small enough that no value of it can ask
// for a huge allocation.
constexpr int kHNSWMaxEf = 1 << 20;
// The largest norm of a vector as stored (l2 with a rotation: of the vector
// minus the centre) or of a query: below it no squared distance (<= (|a| +
// |b|)^2 <= 2^126) or inner product overflows float32 (whose largest finite
// value is just under 2^128). Larger vectors are refused with a ValueError.
constexpr double kHNSWMaxNorm = 0x1.0p62;

struct HNSWOptions {
  Metric metric = Metric::l2;       // l2, ip or cosine
  int M = 16;                       // links per node on layers >= 1 (2*M on layer 0)
  int ef_construction = 200;        // candidate list size while inserting (<= kHNSWMaxEf)
  int ef_search = 64;               // default candidate list size of search() (<= kHNSWMaxEf)
  int granule = 32;                 // coordinates of the first early-abandoning check (the
                                    // head); the rest is checked every 4 granules (<= 2^24)
  bool early_termination = true;    // abandon L2 distances early (exact; l2 and cosine)
  std::uint64_t seed = 100;         // seeds the level of each node
  bool pca = false;                 // the first add() of an empty, unrotated index fits a
                                    // rotation onto the principal axes of its near-neighbour
                                    // differences (see set_pca_axes; saved in the file's flags)
  bool pca_auto = false;            // with pca: keep that rotation only where it pays (below)
};

// pca_auto's rule, from benchmarks/report_hnsw_pca.py (QPS at recall@10 >=
// 0.95, pca on / off, one thread): the rotation pays when dim >= 512 and the
// first five granules of the rotated near-neighbour differences (the head
// and the first tail check, where a rejection can stop the distance) carry at
// least 70% of their variance: Fashion-MNIST pixels (77%: 1.20x), power-law
// clusters at 784-d (71%: 1.04x); not on 784-d Gaussian classes with a linear
// decay (55%: 0.97x) or isotropic ones (39%: 0.97x), nor at 16 to 256
// dimensions on any of them (0.93x to 1.04x: the rotation of every query and
// the fit cost as much as the early stops save). Never for ip (no early
// termination).
constexpr std::int64_t kHNSWPcaAutoMinDim = 512;
constexpr double kHNSWPcaAutoShare = 0.7;

// Work counters of one search() call (summed over queries).
struct HNSWSearchStats {
  std::int64_t distances = 0;  // distance evaluations
  std::int64_t rejected = 0;   // of which compared with a finite bound and found >= it:
                               // the ones early termination may stop short
  std::int64_t head_only = 0;  // of which decided on the head table alone (early
                               // termination on): their tails were never read
};

// A member of the Index protocol (keensight/search.hpp): remove() is
// hnswlib's mark_deleted (the node stays in the graph to guide searches and
// its slot can be reused by add(..., replace_deleted = true)); size() and ids()
// count the live vectors only; range_search() is approximate (see there).
class HNSWIndex final : public Index {
 public:
  // Throws ValueError for dim outside [1, 2^24], M outside [2, 2048],
  // ef_construction or ef_search outside [1, kHNSWMaxEf], granule outside
  // [1, 2^24] or a metric other than l2 / ip / cosine.
  HNSWIndex(std::int64_t dim, const HNSWOptions& options = HNSWOptions());
  ~HNSWIndex();
  HNSWIndex(HNSWIndex&&) noexcept;
  HNSWIndex& operator=(HNSWIndex&&) noexcept;
  HNSWIndex(const HNSWIndex&) = delete;
  HNSWIndex& operator=(const HNSWIndex&) = delete;

  // Stores every vector (and query) as R x: `rotation` is dim x dim, row-major,
  // orthonormal rows (checked to 1e-3). Only while the index is empty.
  void set_rotation(const float* rotation);
  // The same with a rotation whose first k rows are the k given orthonormal
  // axes (k x dim, row-major; checked to 1e-3) and the rest an orthonormal
  // basis of their complement: k Householder reflectors, held in compact WY
  // form (2 k dim + k^2 floats, as many multiply-adds per vector rotated).
  // For PCA: the first coordinates stored are the projections on the axes (up
  // to sign). Only while the index is empty.
  void set_pca_axes(const float* axes, std::int64_t k);
  bool has_rotation() const;
  std::vector<float> rotation() const;  // empty if none

  // Inserts n vectors (n x dim, row-major) with ids (n labels; nullptr = size(),
  // size()+1, ...). Ids must be non-negative and new; vectors finite, of norm at
  // most kHNSWMaxNorm (cosine: non-zero). Batched, multi-threaded (num_threads
  // <= 0: keensight's thread setting), incremental. Alg. 1 INSERT. With a
  // rotation and the l2 metric, the first batch's mean becomes the index's
  // centre: vectors and queries are stored and searched as R (x - centre),
  // which leaves L2 distances unchanged and keeps the rotation's float32
  // rounding relative to the spread of the data, not to its distance from the
  // origin (data far from the origin would otherwise lose its precision).
  //
  // replace_deleted (hnswlib's replace_deleted): a new vector takes the slot of
  // a deleted one while there are any (a removed id added again always takes
  // its own slot back), so memory does not grow: the slot's vector and id
  // change, the old node's neighbours get their lists re-selected from their
  // own and its neighbours (the removed vector no longer counts), and the slot
  // is linked in again as a new node at its level (Malkov & Yashunin's INSERT).
  void add(const float* vectors, std::int64_t n, const std::int64_t* ids, int num_threads,
           bool replace_deleted = false);
  void add(const float* rows, std::int64_t n, const std::int64_t* ids = nullptr) override {
    add(rows, n, ids, 0, false);
  }

  // k nearest neighbours of each of nq queries: distances (nq x k, best first;
  // for ip: inner products, largest first) and ids (nq x k; -1 and +inf (ip:
  // -inf) fill slots when fewer than k are found). ef <= 0: ef_search; the
  // effective ef is max(ef, k). allowed: when not null, only these ids (n_allowed
  // of them; unknown ids are ignored) may be returned. Deleted ids never are.
  // Throws ValueError on an empty index, k <= 0, ef > kHNSWMaxEf, or queries
  // that are not finite or of norm above kHNSWMaxNorm (l2 with a centre: their
  // distance to it).
  void search(const float* queries, std::int64_t nq, std::int64_t k, std::int64_t ef,
              float* distances, std::int64_t* ids, const std::int64_t* allowed = nullptr,
              std::int64_t n_allowed = 0, int num_threads = 0,
              HNSWSearchStats* stats = nullptr) const;

  // The Index search: ef_search, keensight's thread setting.
  void search(const float* queries, std::int64_t nq, std::int64_t k, float* distances, std::int64_t* ids,
              const std::int64_t* allowed = nullptr, std::int64_t n_allowed = 0) const override {
    search(queries, nq, k, 0, distances, ids, allowed, n_allowed, 0, nullptr);
  }

  // Every live vector found within `radius` (as FlatIndex: distance <
  // radius strictly, similarity > radius for ip; distances as search()
  // reports them), best first, ties by id. Approximate, as faiss's
  // IndexHNSW: a K-NN-SEARCH with ef = max(ef_search, 32); while every one of
  // the ef candidates it returns is within the radius (there may be more),
  // again with twice the ef, up to kHNSWMaxEf or the whole graph. A query on
  // an empty index has no results.
  RangeSearchResult range_search(const float* queries, std::int64_t nq, float radius) const override {
    return range_search(queries, nq, radius, 0);
  }
  RangeSearchResult range_search(const float* queries, std::int64_t nq, float radius, int num_threads) const;

  // Excluded from results from now on, still used to navigate the graph.
  // Throws ValueError for an unknown id.
  void mark_deleted(const std::int64_t* ids, std::int64_t n);
  void unmark_deleted(const std::int64_t* ids, std::int64_t n);
  // The Index remove: mark_deleted of the live ones among ids (unknown or
  // already deleted ids are ignored); returns how many were marked.
  std::int64_t remove(const std::int64_t* ids, std::int64_t n) override;
  // Forgets every vector, id and deletion mark, and the centre; a rotation
  // fitted by pca is dropped too (the next add fits one again), one given by
  // set_rotation / set_pca_axes stays. Options stay.
  void reset() override;
  // The vectors of live ids as added (n x dim): un-rotated and un-centred, so
  // equal to what was added up to the rotation's float32 rounding (cosine:
  // the unit vector, as stored). ValueError for an unknown or deleted id.
  void get_items(const std::int64_t* ids, std::int64_t n, float* out) const override;

  // Versioned, checksummed file; written to a temporary file in the same folder
  // and renamed over `path`, so a failure never leaves a partial index behind.
  void save(const std::string& path) const override;
  // Exactly the bytes save() writes (the container's memory sink), and an
  // index from them, validated as load() validates a file (format 4 only).
  std::vector<unsigned char> to_bytes() const override;
  static HNSWIndex from_bytes(const void* data, std::size_t size);
  // Throws FileError if it cannot be read, ValueError for a truncated, corrupt
  // (checksum) or foreign file, and for any content add() would never have
  // produced, even under a valid checksum: parameters out of range, non-finite
  // or too large vectors (cosine: not unit), negative or duplicate ids, links
  // out of range, to the node itself, twice in one list or to a node without
  // that layer, levels that do not match max_level, a bad entry point, rotation
  // or centre.
  static HNSWIndex load(const std::string& path);

  std::int64_t dim() const override;
  Metric metric() const override;
  std::int64_t size() const override;  // live vectors (stored and not deleted)
  std::int64_t slots() const;          // vectors stored, deleted ones included
  std::int64_t n_deleted() const;
  const HNSWOptions& options() const;
  void set_ef_search(int ef_search);  // ValueError outside [1, kHNSWMaxEf]
  void set_early_termination(bool on);
  std::vector<std::int64_t> ids() const override;  // the live ids, in slot order
  int max_level() const;
  std::size_t memory_usage() const;  // bytes held by the index and its scratch buffers

 private:
  struct Impl;
  explicit HNSWIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace keensight::search
