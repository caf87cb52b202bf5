// Sequential three-way decisions over PCA granules (A. V. Savchenko,
// "Sequential three-way decisions in multi-category image recognition with deep
// features based on distance factor", Information Sciences 489, 2019; and the
// lecture "Efficient image recognition with convolutional neural networks", 2018).
//
// The references are PCA-transformed training features, coordinates ordered by
// decreasing eigenvalue. Granule l holds the first d(l) = l * m coordinates
// (the last granule: all of them). Distances are additive over coordinates, so
// the distance of a query to each reference is accumulated granule by granule:
//   rho^(l+1)(x, r) = rho^(l)(x, r) + sum_{d(l) < j <= d(l+1)} rho(x_j, r_j).
// After granule l, per class c: rho_c = min over its remaining references;
// leader c1 = argmin_c rho_c. Three-way decision: classes with
// rho_c <= delta * rho_c1 stay (boundary region) and go to the next granule,
// the others are rejected and their references never touched again. Stop when
// one class is left or after the last granule; the leader is the prediction.
#pragma once

#include <cstdint>
#include <vector>

#include "keensight/core.hpp"

namespace keensight::search {

enum class Metric : int;

class SequentialQuery;

class SequentialIndex {
 public:
  // refs: n x dim row-major (PCA-transformed), labels in [0, n_classes);
  // granule: coordinates per granule (m >= 1); metric: l2 (squared) or l1.
  // Optionally the PCA itself (components: dim x input_dim row-major, mean:
  // input_dim, scale: dim or null), as pca_transform takes it: predict then
  // takes queries in the input space and projects each only on the components
  // its granules use (most queries stop after the first granule: the full
  // projection would cost more than the first granule's distances).
  // Throws ValueError on bad arguments.
  SequentialIndex(const float* refs, std::int64_t n, std::int64_t dim, const std::int64_t* labels,
                  std::int64_t n_classes, std::int64_t granule, Metric metric, const float* mean = nullptr,
                  const float* components = nullptr, std::int64_t input_dim = 0, const float* scale = nullptr);

  // Not copyable: the packed panels sit at an aligned offset inside their buffer.
  SequentialIndex(const SequentialIndex&) = delete;
  SequentialIndex& operator=(const SequentialIndex&) = delete;
  SequentialIndex(SequentialIndex&&) = default;
  SequentialIndex& operator=(SequentialIndex&&) = default;

  std::int64_t size() const { return n_; }
  std::int64_t dim() const { return dim_; }
  // Columns of a query: input_dim with a projection, else dim.
  std::int64_t input_dim() const { return input_dim_; }
  std::int64_t n_classes() const { return n_classes_; }
  std::int64_t n_levels() const { return static_cast<std::int64_t>(level_end_.size()); }
  // The references as given to the constructor (n x dim, original order), put
  // back together from the granules: what a copy of the index is rebuilt from.
  void copy_references(float* out) const;

  // For nq queries (nq x input_dim()) and delta >= 1 (inf: never
  // reject): class_distances (nq x n_classes) = rho_c at the granule where the
  // query stopped, +inf for rejected classes; the k nearest surviving
  // references (nq x k: distance, original index; -1 / +inf past the
  // survivors); and per query the granules used, the coordinates used, the
  // reference-granule distances evaluated, and the coordinate terms summed
  // (the work done: n * dim is exhaustive search). Threads split the queries; results do not depend on
  // their number.
  void predict(const float* queries, std::int64_t nq, double delta, std::int64_t k,
               float* class_distances, float* neighbor_distances, std::int64_t* neighbor_indices,
               std::int64_t* levels, std::int64_t* components, std::int64_t* evaluations,
               std::int64_t* terms) const;

 private:
  friend class SequentialQuery;  // one query's pass over the later granules (sequential.cpp)
  std::int64_t n_ = 0, dim_ = 0, n_classes_ = 0, granule_ = 0;
  Metric metric_;
  std::vector<std::int64_t> original_;     // class-sorted position -> original index
  std::vector<std::int64_t> class_begin_;  // class c: positions [class_begin_[c], class_begin_[c+1])
  std::vector<std::int64_t> level_end_;    // d(l), l = 1..L
  std::vector<float> granules_;            // granule l: n x (d(l) - d(l-1)), class-sorted rows
  std::vector<std::int64_t> granule_offset_;  // where granule l starts in granules_
  Isa packed_isa_ = Isa::scalar;          // the GEMM tile the first granule is packed for
  std::vector<float> first_norms_;         // squared norms of the first granule (l2)
  std::vector<float> first_packed_;        // first granule packed for the GEMM tile (l2),
                                           // from a 64-byte aligned offset (packed_first())
  const float* packed_first() const;

  // The projection (empty without one): z_j = ((x - mean) . components_j) *
  // scale_j, pca_transform's arithmetic for the first granule.
  std::int64_t input_dim_ = 0;
  std::vector<float> components_;          // dim x input_dim, row-major
  std::vector<float> components_packed_;   // the same in GEMM panels (first granule), aligned offset
  std::vector<float> mean_;                // the PCA mean (input_dim); queries are centred first
  std::vector<float> scale_;               // empty: 1
  bool projects() const { return !components_.empty(); }
  const float* packed_components() const;
};

}  // namespace keensight::search
