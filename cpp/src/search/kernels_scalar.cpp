// Portable reference kernels of the search area (the reference in tests).
#include <algorithm>
#include <cmath>
#include <limits>

#include "search/kernels.hpp"

namespace keensight::search::detail {
namespace {

// Four partial sums, as the SIMD kernels keep several accumulators: the
// summation order stays close to theirs and the loop pipelines.
float l2_sq(const float* a, const float* b, std::int64_t n) {
  float s[4] = {0.f, 0.f, 0.f, 0.f};
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) {
      const float d = a[i + j] - b[i + j];
      s[j] += d * d;
    }
  for (; i < n; ++i) {
    const float d = a[i] - b[i];
    s[0] += d * d;
  }
  return (s[0] + s[1]) + (s[2] + s[3]);
}

float dot(const float* a, const float* b, std::int64_t n) {
  float s[4] = {0.f, 0.f, 0.f, 0.f};
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) s[j] += a[i + j] * b[i + j];
  for (; i < n; ++i) s[0] += a[i] * b[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

float l1(const float* a, const float* b, std::int64_t n) {
  float s = 0.f;
  for (std::int64_t i = 0; i < n; ++i) s += std::fabs(a[i] - b[i]);
  return s;
}

float chi2(const float* a, const float* b, std::int64_t n) {
  float s = 0.f;
  for (std::int64_t i = 0; i < n; ++i) {
    const float sum = a[i] + b[i];
    if (sum > 0.f) {
      const float d = a[i] - b[i];
      s += d * d / sum;
    }
  }
  return s;
}

// Granule-by-granule L2 for HNSW early abandoning (see kernels.hpp); same
// four partial sums as l2_sq. Checked and returned values are the same
// function of sums that only grow: hence exactness.
float l2_sq_bounded(const float* a, const float* b, std::int64_t n, std::int64_t granule,
                    float bound, float init) {
  if (granule <= 0) granule = n;
  const bool check = bound < std::numeric_limits<float>::infinity();
  float s[4] = {0.f, 0.f, 0.f, 0.f};
  std::int64_t i = 0;
  for (;;) {
    const std::int64_t end = std::min(n, i + granule);
    for (; i + 4 <= end; i += 4)
      for (int j = 0; j < 4; ++j) {
        const float d = a[i + j] - b[i + j];
        s[j] += d * d;
      }
    for (; i < end; ++i) {
      const float d = a[i] - b[i];
      s[0] += d * d;
    }
    if (i >= n) break;
    if (check) {
      const float partial = init + ((s[0] + s[1]) + (s[2] + s[3]));
      if (partial >= bound) return partial;
    }
  }
  return init + ((s[0] + s[1]) + (s[2] + s[3]));
}

void l2_sq_rows(const float* q, const float* rows, std::int64_t nrows, std::int64_t width, float* acc) {
  for (std::int64_t i = 0; i < nrows; ++i) acc[i] += l2_sq(q, rows + i * width, width);
}

// Eight independent running minima: a single chain would wait on each compare.
float min_value(const float* v, std::int64_t n) {
  float m[8];
  for (float& x : m) x = std::numeric_limits<float>::infinity();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) m[j] = v[i + j] < m[j] ? v[i + j] : m[j];
  for (; i < n; ++i) m[0] = v[i] < m[0] ? v[i] : m[0];
  for (int j = 1; j < 8; ++j) m[0] = m[j] < m[0] ? m[j] : m[0];
  return m[0];
}

SearchKernels make_table() {
  SearchKernels t{};  // by member name: see core/dispatch.hpp
  t.l2_sq = l2_sq;
  t.dot = dot;
  t.l1 = l1;
  t.chi2 = chi2;
  t.l2_sq_bounded = l2_sq_bounded;
  t.l2_sq_rows = l2_sq_rows;
  t.min_value = min_value;
  t.l2_sq_many = l2_sq_many_by_rows<l2_sq>;
  t.l2_sq_bounded_many = l2_sq_bounded_many_by_rows<l2_sq_bounded>;
  return t;
}

}  // namespace

const SearchKernels& search_kernels_scalar() {
  static const SearchKernels table = make_table();
  return table;
}

}  // namespace keensight::search::detail
