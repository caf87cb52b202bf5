// PCA projection (x - mean) · componentsᵀ, optionally whitened: the blocked
// GEMM of search/gemm.hpp reading the input rows in place (no packing: with
// tens of components, packing the rows would cost about as much as the
// products), with the centring applied after the projection as
// x · componentsᵀ - mean · componentsᵀ, as scikit-learn's PCA.transform does.
#include <algorithm>
#include <string>
#include <vector>

#include "core/parallel.hpp"
#include "keensight/search.hpp"
#include "search/gemm.hpp"

namespace keensight::search {

void pca_transform(const float* x, std::int64_t n, std::int64_t dim, const float* mean, const float* components,
                   std::int64_t n_components, const float* scale, float* out) {
  if (dim < 1) throw ValueError("dim: expected at least 1, got " + std::to_string(dim));
  if (n_components < 1) throw ValueError("n_components: expected at least 1, got " + std::to_string(n_components));
  if (n < 0) throw ValueError("x: negative row count");
  if (n == 0) return;
  if (!x || !mean || !components || !out) throw ValueError("pca_transform: null pointer");

  const search_detail::GemmKernels& kern = search_detail::gemm_kernels();
  const int mr = kern.mr, nr = kern.nr;
  const std::int64_t mc = search_detail::round_up(search_detail::kGemmMC, mr);
  const std::int64_t ldc = search_detail::round_up(n_components, nr);
  // The components are packed once and shared by every thread.
  search_detail::AlignedFloats b(search_detail::packed_size(n_components, dim, nr));
  search_detail::pack_panels(components, dim, n_components, dim, nr, nullptr, nullptr, b.get());

  // mean · componentsᵀ in double: the one term that every output shares.
  std::vector<float> centre(static_cast<std::size_t>(n_components));
  for (std::int64_t j = 0; j < n_components; ++j) {
    double sum = 0.0;
    for (std::int64_t i = 0; i < dim; ++i) sum += static_cast<double>(mean[i]) * components[j * dim + i];
    centre[j] = static_cast<float>(sum);
  }

  detail::parallel_chunks(n, mc, [&](std::int64_t begin, std::int64_t end) {
    search_detail::AlignedFloats c(search_detail::round_up(mc, mr) * ldc);
    for (std::int64_t i0 = begin; i0 < end; i0 += mc) {
      const std::int64_t m = std::min(mc, end - i0);
      search_detail::gemm_rows(kern, x + i0 * dim, dim, m, b.get(), n_components, dim, c.get(), ldc);
      for (std::int64_t i = 0; i < m; ++i) {
        const float* ci = c.get() + i * ldc;
        float* o = out + (i0 + i) * n_components;
        if (scale)
          for (std::int64_t j = 0; j < n_components; ++j) o[j] = (ci[j] - centre[j]) * scale[j];
        else
          for (std::int64_t j = 0; j < n_components; ++j) o[j] = ci[j] - centre[j];
      }
    }
  });
}

}  // namespace keensight::search
