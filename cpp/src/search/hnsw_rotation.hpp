// Internal: the HNSW index's rotation (vectors stored as R x, so that with PCA
// axes the first coordinates carry the variance early termination needs), and
// the fit of those axes for pca=true.
//
// The rotation is held only in the form rotate_rows applies it in: GEMM
// panels for the active ISA's tile width, repacked if that changes.
//  - dense (set_dense): R, dim x dim (2.4 MB at 784-d);
//  - principal axes (set_axes, k of them): R = Q^T for the product of k
//    Householder reflectors Q = H_1 ... H_k that maps the axes onto the first
//    k coordinates, in compact WY form Q = I - V T V^T (R. Schreiber, C. Van
//    Loan, "A storage-efficient WY representation for products of Householder
//    transformations", SIAM J. Sci. Stat. Comput. 10(1), 1989): a row x goes
//    to x Q = x - ((x V) T) V^T, three GEMMs of 2 k dim + k^2 multiply-adds
//    per row instead of dim^2 (k = 128 at 784-d: a third), and V^T, T^T and
//    V take 2 k dim + k^2 floats (0.9 MB). The first k coordinates are the
//    projections on the axes (up to sign), the rest an orthonormal basis of
//    their complement.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/gemm.hpp"

namespace keensight::search::detail {

// Throws ValueError ("HNSWIndex: <what> ...") unless the `rows` x dim values
// are finite and the rows orthonormal (to 1e-3).
void check_orthonormal(const float* r, std::int64_t rows, std::int64_t dim, const char* what);

class HNSWRotation {
 public:
  explicit HNSWRotation(std::int64_t dim) : dim_(dim) {}

  // Set while the owner holds its index exclusively; read under its shared lock.
  bool active() const { return active_; }
  void clear();
  // R (dim x dim, orthonormal rows: checked).
  void set_dense(const float* r);
  // k orthonormal axes (k x dim: checked) completed by Householder reflectors.
  void set_axes(const float* axes, std::int64_t k);
  // The WY factors as wy_factors() gives them (from a file): V dim x k, T k x k.
  // Throws ValueError if they do not make a rotation.
  void set_wy(const float* V, const float* T, std::int64_t k);

  std::int64_t reflectors() const;  // k of the WY form; 0 for a dense rotation
  // R, dim x dim: the images of the unit vectors, transposed (R x = x Q); empty if none.
  std::vector<float> dense() const;
  // V (dim x k) and T (k x k, upper triangular) of a WY rotation, row-major.
  std::pair<std::vector<float>, std::vector<float>> wy_factors() const;
  // n rows of x times the rotation into out (n x dim). Each row's result
  // depends only on the row, never on n (the blocking, the thread count).
  void rotate_rows(const float* x, std::int64_t n, float* out) const;
  std::size_t bytes() const;  // the GEMM panels

 private:
  struct Packed {
    int nr = 0;
    std::int64_t k = 0;                  // 0: dense
    keensight::detail::AlignedFloats panels;                // dense: R (dim rows)
    keensight::detail::AlignedFloats vt, tt, v;             // WY: V^T (k rows of dim), T^T (k rows of k), V (dim rows of k)
    std::size_t floats = 0;
  };
  std::shared_ptr<Packed> pack_dense(const float* r, int nr) const;
  std::shared_ptr<Packed> pack_wy(const float* V, const float* T, std::int64_t k, int nr) const;
  std::pair<std::vector<float>, std::vector<float>> wy_factors(const Packed& p) const;
  std::shared_ptr<const Packed> current(const keensight::detail::GemmF32Kernels& g) const;  // repacked for g's tile width
  std::shared_ptr<const Packed> snapshot() const;

  std::int64_t dim_;
  bool active_ = false;
  mutable std::mutex mutex_;
  mutable std::shared_ptr<const Packed> packed_;  // set iff active_
};

// pca=true: the principal axes (dim x dim, rows by decreasing variance, signs
// arbitrary) of the differences between rows of x (n x dim) and their nearest
// neighbours. Early termination compares a query with candidates near it, so
// the first coordinates should carry the variance of near-neighbour
// differences, not that of the data: on clustered data the data's own
// principal axes are the ones that separate the clusters, while the
// differences inside a cluster, which decide whether a near candidate is
// rejected, spread over other directions (on clustered 128-d data the first
// granule alone then rejects 20 times more candidates). Deterministic: evenly
// spaced rows, exact neighbours (search::knn).
// variances (optional): the variance of the differences along each axis, in
// the same (decreasing) order.
std::vector<float> fit_pca_axes(const float* x, std::int64_t n, std::int64_t dim,
                                std::vector<double>* variances = nullptr);

// The eigen-decomposition of the symmetric n x n matrix a (row-major, double):
// eigenvalues ascending into values, the orthonormal eigenvectors as the rows
// of vectors (n x n), as numpy.linalg.eigh gives them (as columns).
void symmetric_eigen(std::vector<double> a, std::int64_t n, std::vector<double>& values,
                     std::vector<double>& vectors);

}  // namespace keensight::search::detail
