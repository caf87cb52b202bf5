// The HNSW rotation: packing, the Householder / compact WY form, applying it
// as GEMMs, and the fit of the PCA axes (see hnsw_rotation.hpp).
#include "search/hnsw_rotation.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <string>

#include "keensight/search.hpp"
#include "search/kernels.hpp"

namespace keensight::search::detail {

namespace {

// The inverse of pack_panels for `rows` rows of `cols` values: row i is
// coordinate i % nr of panel i / nr.
std::vector<float> unpack(const float* panels, std::int64_t rows, std::int64_t cols, int nr) {
  std::vector<float> r(static_cast<std::size_t>(rows * cols));
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* panel = panels + (i / nr) * nr * cols + i % nr;
    for (std::int64_t j = 0; j < cols; ++j) r[static_cast<std::size_t>(i * cols + j)] = panel[j * nr];
  }
  return r;
}

}  // namespace

void check_orthonormal(const float* r, std::int64_t rows, std::int64_t dim, const char* what) {
  const SearchKernels& k = search_kernels();
  const auto n = static_cast<std::size_t>(rows * dim);
  for (std::size_t j = 0; j < n; ++j)
    if (!std::isfinite(r[j])) throw ValueError(std::string("HNSWIndex: ") + what + " contains NaN or infinity");
  for (std::int64_t a = 0; a < rows; ++a)
    for (std::int64_t b = a; b < rows; ++b) {
      const float d = k.dot(r + a * dim, r + b * dim, dim);
      if (std::fabs(d - (a == b ? 1.f : 0.f)) > 1e-3f)
        throw ValueError(std::string("HNSWIndex: ") + what + " must have orthonormal rows (row " +
                         std::to_string(a) + " . row " + std::to_string(b) + " = " + std::to_string(d) + ")");
    }
}

// --- holding it ---------------------------------------------------------------
void HNSWRotation::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  packed_.reset();
  active_ = false;
}

void HNSWRotation::set_dense(const float* r) {
  check_orthonormal(r, dim_, dim_, "rotation");
  auto p = pack_dense(r, keensight::detail::gemm_f32_kernels().nr);
  std::lock_guard<std::mutex> lock(mutex_);
  packed_ = std::move(p);
  active_ = true;
}

// k orthonormal rows (axes, k x dim) -> V (dim x k) and T (k x k) of the WY
// form: Householder QR of the dim x k matrix whose columns are the axes
// (LAPACK's dgeqrf / dlarfg reflectors, then dlarft's forward recurrence for
// T), in double precision.
void HNSWRotation::set_axes(const float* axes, std::int64_t k) {
  check_orthonormal(axes, k, dim_, "axes");
  const auto n = static_cast<std::size_t>(dim_);
  const auto kk = static_cast<std::size_t>(k);
  std::vector<double> A(n * kk), V(n * kk, 0.0), T(kk * kk, 0.0), tau(kk);
  for (std::size_t j = 0; j < kk; ++j)
    for (std::size_t i = 0; i < n; ++i) A[i * kk + j] = axes[j * n + i];
  for (std::size_t j = 0; j < kk; ++j) {
    double tail = 0.0;  // |x[1:]|^2 of x = A[j:, j]
    for (std::size_t i = j + 1; i < n; ++i) tail += A[i * kk + j] * A[i * kk + j];
    const double alpha = A[j * kk + j];
    V[j * kk + j] = 1.0;
    if (tail == 0.0) {  // already e_j (up to sign): H_j = I
      tau[j] = 0.0;
      continue;
    }
    const double beta = -std::copysign(std::sqrt(alpha * alpha + tail), alpha);
    tau[j] = (beta - alpha) / beta;
    for (std::size_t i = j + 1; i < n; ++i) V[i * kk + j] = A[i * kk + j] / (alpha - beta);
    A[j * kk + j] = beta;
    for (std::size_t c = j + 1; c < kk; ++c) {  // H_j applied to the remaining columns
      double dot = A[j * kk + c];
      for (std::size_t i = j + 1; i < n; ++i) dot += V[i * kk + j] * A[i * kk + c];
      dot *= tau[j];
      A[j * kk + c] -= dot;
      for (std::size_t i = j + 1; i < n; ++i) A[i * kk + c] -= dot * V[i * kk + j];
    }
  }
  for (std::size_t j = 0; j < kk; ++j) {  // T[0:j, j] = -tau_j T[0:j, 0:j] (V[:, 0:j]^T v_j)
    T[j * kk + j] = tau[j];
    std::vector<double> z(j, 0.0);
    for (std::size_t c = 0; c < j; ++c)
      for (std::size_t i = j; i < n; ++i) z[c] += V[i * kk + c] * V[i * kk + j];
    for (std::size_t r = 0; r < j; ++r) {
      double sum = 0.0;
      for (std::size_t c = r; c < j; ++c) sum += T[r * kk + c] * z[c];
      T[r * kk + j] = -tau[j] * sum;
    }
  }
  const std::vector<float> Vf(V.begin(), V.end()), Tf(T.begin(), T.end());
  auto p = pack_wy(Vf.data(), Tf.data(), k, keensight::detail::gemm_f32_kernels().nr);
  std::lock_guard<std::mutex> lock(mutex_);
  packed_ = std::move(p);
  active_ = true;
}

void HNSWRotation::set_wy(const float* V, const float* T, std::int64_t k) {
  {
    auto p = pack_wy(V, T, k, keensight::detail::gemm_f32_kernels().nr);
    std::lock_guard<std::mutex> lock(mutex_);
    packed_ = std::move(p);
    active_ = true;
  }
  try {
    check_orthonormal(dense().data(), dim_, dim_, "rotation");  // the reflectors make a rotation
  } catch (...) {
    clear();
    throw;
  }
}

std::shared_ptr<HNSWRotation::Packed> HNSWRotation::pack_dense(const float* r, int nr) const {
  auto p = std::make_shared<Packed>();
  p->nr = nr;
  p->floats = static_cast<std::size_t>(keensight::detail::packed_size(dim_, dim_, nr));
  p->panels.resize(static_cast<std::int64_t>(p->floats));
  keensight::detail::pack_panels(r, dim_, dim_, dim_, nr, nullptr, nullptr, p->panels.get());
  return p;
}

// From V (dim x k, row-major) and T (k x k, upper triangular, row-major).
std::shared_ptr<HNSWRotation::Packed> HNSWRotation::pack_wy(const float* V, const float* T, std::int64_t k,
                                                            int nr) const {
  const std::int64_t dim = dim_;
  auto p = std::make_shared<Packed>();
  p->nr = nr;
  p->k = k;
  std::vector<float> vt(static_cast<std::size_t>(k * dim)), tt(static_cast<std::size_t>(k * k));
  for (std::int64_t i = 0; i < dim; ++i)
    for (std::int64_t j = 0; j < k; ++j) vt[static_cast<std::size_t>(j * dim + i)] = V[i * k + j];
  for (std::int64_t i = 0; i < k; ++i)
    for (std::int64_t j = 0; j < k; ++j) tt[static_cast<std::size_t>(j * k + i)] = T[i * k + j];
  const std::int64_t n_vt = keensight::detail::packed_size(k, dim, nr), n_tt = keensight::detail::packed_size(k, k, nr), n_v = keensight::detail::packed_size(dim, k, nr);
  p->vt.resize(n_vt);
  p->tt.resize(n_tt);
  p->v.resize(n_v);
  keensight::detail::pack_panels(vt.data(), dim, k, dim, nr, nullptr, nullptr, p->vt.get());
  keensight::detail::pack_panels(tt.data(), k, k, k, nr, nullptr, nullptr, p->tt.get());
  keensight::detail::pack_panels(V, k, dim, k, nr, nullptr, nullptr, p->v.get());
  p->floats = static_cast<std::size_t>(n_vt + n_tt + n_v);
  return p;
}

std::pair<std::vector<float>, std::vector<float>> HNSWRotation::wy_factors(const Packed& p) const {
  std::vector<float> V = unpack(p.v.get(), dim_, p.k, p.nr);
  const std::vector<float> tt = unpack(p.tt.get(), p.k, p.k, p.nr);
  std::vector<float> T(tt.size());
  for (std::int64_t i = 0; i < p.k; ++i)
    for (std::int64_t j = 0; j < p.k; ++j)
      T[static_cast<std::size_t>(i * p.k + j)] = tt[static_cast<std::size_t>(j * p.k + i)];
  return {std::move(V), std::move(T)};
}

std::pair<std::vector<float>, std::vector<float>> HNSWRotation::wy_factors() const {
  const auto p = snapshot();
  return wy_factors(*p);
}

std::shared_ptr<const HNSWRotation::Packed> HNSWRotation::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return packed_;
}

std::int64_t HNSWRotation::reflectors() const {
  const auto p = snapshot();
  return p ? p->k : 0;
}

std::size_t HNSWRotation::bytes() const {
  const auto p = snapshot();
  return p ? p->floats * 4 : 0;
}

std::vector<float> HNSWRotation::dense() const {
  const std::shared_ptr<const Packed> p = snapshot();
  if (!p) return {};
  const std::int64_t dim = dim_;
  if (p->k == 0) return unpack(p->panels.get(), dim, dim, p->nr);
  std::vector<float> eye(static_cast<std::size_t>(dim * dim), 0.f), q(eye.size()), r(eye.size());
  for (std::int64_t i = 0; i < dim; ++i) eye[static_cast<std::size_t>(i * dim + i)] = 1.f;
  rotate_rows(eye.data(), dim, q.data());
  for (std::int64_t i = 0; i < dim; ++i)
    for (std::int64_t j = 0; j < dim; ++j) r[static_cast<std::size_t>(i * dim + j)] = q[static_cast<std::size_t>(j * dim + i)];
  return r;
}

std::shared_ptr<const HNSWRotation::Packed> HNSWRotation::current(const keensight::detail::GemmF32Kernels& g) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (packed_->nr != g.nr) {  // the ISA level changed: repack for its tile width
    const Packed& p = *packed_;
    if (p.k == 0) {
      packed_ = pack_dense(unpack(p.panels.get(), dim_, dim_, p.nr).data(), g.nr);
    } else {
      const auto [V, T] = wy_factors(p);
      packed_ = pack_wy(V.data(), T.data(), p.k, g.nr);
    }
  }
  return packed_;
}

// --- applying it ----------------------------------------------------------------
void HNSWRotation::rotate_rows(const float* x, std::int64_t n, float* out) const {
  const std::int64_t dim = dim_;
  const keensight::detail::GemmF32Kernels& g = keensight::detail::gemm_f32_kernels();
  const std::shared_ptr<const Packed> rot = current(g);
  const std::int64_t mc = keensight::detail::round_up(keensight::detail::kGemmMC, g.mr);
  const std::int64_t ldc = keensight::detail::round_up(dim, g.nr);
  keensight::detail::AlignedFloats c(mc * ldc);
  const std::int64_t k = rot->k, ldw = keensight::detail::round_up(std::max<std::int64_t>(k, 1), g.nr);
  keensight::detail::AlignedFloats w(k ? mc * ldw : 0), w2(k ? mc * ldw : 0);
  for (std::int64_t i0 = 0; i0 < n; i0 += mc) {
    const std::int64_t m = std::min(mc, n - i0);
    const float* src = x + i0 * dim;
    float* dst = out + i0 * dim;
    if (k == 0) {
      keensight::detail::gemm_rows(g, src, dim, m, rot->panels.get(), dim, dim, c.get(), ldc);
      for (std::int64_t r = 0; r < m; ++r) std::copy(c.get() + r * ldc, c.get() + r * ldc + dim, dst + r * dim);
      continue;
    }
    keensight::detail::gemm_rows(g, src, dim, m, rot->vt.get(), k, dim, w.get(), ldw);     // x V
    keensight::detail::gemm_rows(g, w.get(), ldw, m, rot->tt.get(), k, k, w2.get(), ldw);  // (x V) T
    keensight::detail::gemm_rows(g, w2.get(), ldw, m, rot->v.get(), dim, k, c.get(), ldc); // ((x V) T) V^T
    for (std::int64_t r = 0; r < m; ++r)
      for (std::int64_t j = 0; j < dim; ++j) dst[r * dim + j] = src[r * dim + j] - c.get()[r * ldc + j];
  }
}

// --- fitting the PCA axes ---------------------------------------------------------
namespace {

// The rows of [0, n) numpy.linspace(0, n - 1, count).astype(int64) picks.
std::vector<std::int64_t> evenly_spaced(std::int64_t n, std::int64_t count) {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(count));
  const double step = static_cast<double>(n - 1) / static_cast<double>(count - 1);
  for (std::int64_t j = 0; j < count; ++j) rows[static_cast<std::size_t>(j)] = static_cast<std::int64_t>(j * step);
  rows.back() = n - 1;
  return rows;
}

// Enough rows for the shape of the spectrum (the early-termination savings
// barely move between 1000 x 10 of 10k rows and 4000 x 30 of 30k rows), a
// fraction of a second for 784-d data.
constexpr std::int64_t kPcaReferenceRows = 10000;
constexpr std::int64_t kPcaSampleRows = 1000;
constexpr std::int64_t kPcaNeighbours = 10;

}  // namespace

std::vector<float> fit_pca_axes(const float* x, std::int64_t n, std::int64_t dim, std::vector<double>* variances) {
  const auto d = static_cast<std::size_t>(dim);
  // At most `count` evenly spaced rows of src (n_src rows): src itself when it
  // has no more, else a copy into `copy`.
  const auto subsample = [&](const float* src, std::int64_t n_src, std::int64_t count, std::vector<float>& copy) {
    if (n_src <= count) return std::make_pair(src, n_src);
    const std::vector<std::int64_t> rows = evenly_spaced(n_src, count);
    copy.resize(rows.size() * d);
    for (std::size_t r = 0; r < rows.size(); ++r)
      std::copy(src + rows[r] * dim, src + (rows[r] + 1) * dim, copy.begin() + static_cast<std::ptrdiff_t>(r * d));
    return std::make_pair(static_cast<const float*>(copy.data()), count);
  };
  std::vector<float> ref_rows, sample_rows;
  const auto [ref, n_ref] = subsample(x, n, kPcaReferenceRows, ref_rows);
  const auto [sample, n_sample] = subsample(ref, n_ref, kPcaSampleRows, sample_rows);
  const std::int64_t k = std::min(kPcaNeighbours, n_ref - 1);
  std::vector<double> cov(d * d, 0.0);
  if (k >= 1) {
    // k + 1 neighbours: the row itself (or an equal row) is among them and adds a zero difference.
    const std::int64_t kk = k + 1;
    std::vector<float> dist(static_cast<std::size_t>(n_sample * kk));
    std::vector<std::int64_t> nbr(dist.size());
    knn(sample, n_sample, ref, n_ref, dim, kk, Metric::l2, dist.data(), nbr.data());
    // cov = sum of diff^T diff over the differences (float32, as stored): a
    // float32 GEMM per block of kCovBlock differences (one summation slice:
    // kCovBlock <= keensight::detail::kGemmKC), the blocks added in double. Measured at 784-d:
    // 0.1 s instead of 2-3 s for the same sums in double, scalar; the float
    // blocks round each entry to ~1e-6 of its size, which moves an axis only
    // where eigenvalues are that close (there the axes are not determined anyway).
    constexpr std::int64_t kCovBlock = keensight::detail::kGemmKC;
    const keensight::detail::GemmF32Kernels& g = keensight::detail::gemm_f32_kernels();
    const std::int64_t ldc = keensight::detail::round_up(dim, g.nr), rows_c = keensight::detail::round_up(dim, g.mr);
    std::vector<float> dt(static_cast<std::size_t>(dim * kCovBlock));  // the block's differences, transposed
    keensight::detail::AlignedFloats packed(keensight::detail::packed_size(dim, kCovBlock, g.nr)), c(rows_c * ldc);
    const std::int64_t n_diff = n_sample * kk;
    for (std::int64_t b0 = 0; b0 < n_diff; b0 += kCovBlock) {
      const std::int64_t m = std::min(kCovBlock, n_diff - b0);
      for (std::int64_t r = 0; r < m; ++r) {
        const std::int64_t s = (b0 + r) / kk;
        const float* a = ref + nbr[static_cast<std::size_t>(b0 + r)] * dim;
        const float* b = sample + s * dim;
        for (std::size_t col = 0; col < d; ++col) dt[col * kCovBlock + static_cast<std::size_t>(r)] = a[col] - b[col];
      }
      keensight::detail::pack_panels(dt.data(), kCovBlock, dim, m, g.nr, nullptr, nullptr, packed.get());
      keensight::detail::gemm_rows(g, dt.data(), kCovBlock, dim, packed.get(), dim, m, c.get(), ldc);
      for (std::size_t r = 0; r < d; ++r)
        for (std::size_t col = r; col < d; ++col) cov[r * d + col] += c.get()[r * static_cast<std::size_t>(ldc) + col];
    }
    for (std::size_t r = 0; r < d; ++r)  // symmetric: the lower triangle from the upper
      for (std::size_t col = 0; col < r; ++col) cov[r * d + col] = cov[col * d + r];
  }
  std::vector<double> values, vectors;
  symmetric_eigen(std::move(cov), dim, values, vectors);
  // By decreasing variance (eigh's ascending order reversed).
  std::vector<float> axes(d * d);
  for (std::size_t r = 0; r < d; ++r)
    for (std::size_t c = 0; c < d; ++c) axes[r * d + c] = static_cast<float>(vectors[(d - 1 - r) * d + c]);
  if (variances) variances->assign(values.rbegin(), values.rend());
  return axes;
}

// Householder tridiagonalisation, then the implicit symmetric QL iteration
// with Wilkinson's shift on the tridiagonal matrix (G. H. Golub, C. F. Van
// Loan, "Matrix Computations", 4th ed., Alg. 8.3.1 and 8.3.3; the QL form as
// in J. H. Wilkinson, C. Reinsch, "Handbook for Automatic Computation II",
// procedures tred2 / tql2). O(n^3), about 5 n^3 flops with the vectors.
void symmetric_eigen(std::vector<double> a, std::int64_t n64, std::vector<double>& values,
                     std::vector<double>& vectors) {
  const auto n = static_cast<std::size_t>(n64);
  // q holds Q^T: row i is column i of Q, A = Q T Q^T.
  std::vector<double> q(n * n, 0.0), d(n), e(n, 0.0), v(n), p(n), w(n);
  for (std::size_t i = 0; i < n; ++i) q[i * n + i] = 1.0;
  for (std::size_t k = 0; k + 2 < n; ++k) {
    // The reflector H = I - 2 v v^T (on coordinates k+1..n-1) that maps
    // A[k+1:, k] onto a multiple of e_{k+1}.
    double norm2 = 0.0;
    for (std::size_t i = k + 1; i < n; ++i) norm2 += a[i * n + k] * a[i * n + k];
    const double x0 = a[(k + 1) * n + k];
    const double alpha = -std::copysign(std::sqrt(norm2), x0);
    double vnorm2 = norm2 - x0 * x0 + (x0 - alpha) * (x0 - alpha);
    if (norm2 == 0.0 || vnorm2 == 0.0) continue;  // already tridiagonal in this column
    const double scale = 1.0 / std::sqrt(vnorm2);
    for (std::size_t i = k + 1; i < n; ++i) v[i] = a[i * n + k] * scale;
    v[k + 1] = (x0 - alpha) * scale;
    // A' = H A H = A - v w^T - w v^T, w = 2 p - 2 (v^T p) v, p = A v.
    double vp = 0.0;
    for (std::size_t i = k + 1; i < n; ++i) {
      double s = 0.0;
      const double* row = a.data() + i * n;
      for (std::size_t j = k + 1; j < n; ++j) s += row[j] * v[j];
      p[i] = s;
      vp += v[i] * s;
    }
    for (std::size_t i = k + 1; i < n; ++i) w[i] = 2.0 * p[i] - 2.0 * vp * v[i];
    for (std::size_t i = k + 1; i < n; ++i) {
      double* row = a.data() + i * n;
      for (std::size_t j = k + 1; j < n; ++j) row[j] -= v[i] * w[j] + w[i] * v[j];
    }
    a[(k + 1) * n + k] = a[k * n + k + 1] = alpha;
    for (std::size_t i = k + 2; i < n; ++i) a[i * n + k] = a[k * n + i] = 0.0;
    // Q' = Q H: Q^T' = H Q^T, rows k+1.. of Q^T minus 2 v (v^T Q^T).
    std::fill(p.begin(), p.end(), 0.0);
    for (std::size_t i = k + 1; i < n; ++i) {
      const double* row = q.data() + i * n;
      for (std::size_t j = 0; j < n; ++j) p[j] += v[i] * row[j];
    }
    for (std::size_t i = k + 1; i < n; ++i) {
      double* row = q.data() + i * n;
      for (std::size_t j = 0; j < n; ++j) row[j] -= 2.0 * v[i] * p[j];
    }
  }
  for (std::size_t i = 0; i < n; ++i) d[i] = a[i * n + i];
  for (std::size_t i = 0; i + 1 < n; ++i) e[i] = a[(i + 1) * n + i];  // e[i] couples d[i] and d[i+1]

  // Implicit QL: for each l, chase the bulge from the bottom of the unreduced
  // block [l, m] up to l with Givens rotations until e[l] is negligible.
  for (std::size_t l = 0; l < n; ++l) {
    for (int iteration = 0;; ++iteration) {
      std::size_t m = l;
      for (; m + 1 < n; ++m) {
        const double dd = std::fabs(d[m]) + std::fabs(d[m + 1]);
        if (std::fabs(e[m]) <= DBL_EPSILON * dd) break;
      }
      if (m == l) break;
      if (iteration == 100) throw ValueError("HNSWIndex: the PCA eigen-solver did not converge");
      double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
      double r = std::hypot(g, 1.0);
      g = d[m] - d[l] + e[l] / (g + std::copysign(r, g));  // Wilkinson's shift, folded in
      double s = 1.0, c = 1.0, shift = 0.0;
      bool deflated = false;
      for (std::size_t i = m; i-- > l;) {
        double f = s * e[i];
        const double b = c * e[i];
        r = std::hypot(f, g);
        e[i + 1] = r;
        if (r == 0.0) {  // underflow: the block splits here
          d[i + 1] -= shift;
          e[m] = 0.0;
          deflated = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - shift;
        r = (d[i] - g) * s + 2.0 * c * b;
        shift = s * r;
        d[i + 1] = g + shift;
        g = c * r - b;
        double* zi = q.data() + i * n;  // the rotation on eigenvectors i, i+1 (rows of Q^T)
        double* zj = zi + n;
        for (std::size_t t = 0; t < n; ++t) {
          f = zj[t];
          zj[t] = s * zi[t] + c * f;
          zi[t] = c * zi[t] - s * f;
        }
      }
      if (deflated) continue;
      d[l] -= shift;
      e[l] = g;
      e[m] = 0.0;
    }
  }
  // Ascending; equal values keep their order.
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t i, std::size_t j) { return d[i] < d[j]; });
  values.resize(n);
  vectors.resize(n * n);
  for (std::size_t r = 0; r < n; ++r) {
    values[r] = d[order[r]];
    std::copy(q.begin() + static_cast<std::ptrdiff_t>(order[r] * n),
              q.begin() + static_cast<std::ptrdiff_t>((order[r] + 1) * n), vectors.begin() + static_cast<std::ptrdiff_t>(r * n));
  }
}

}  // namespace keensight::search::detail
