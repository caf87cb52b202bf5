// PCA projection (x - mean) · componentsᵀ, optionally whitened: the blocked
// GEMM of core/gemm.hpp over blocks of centred rows (no packing: with tens
// of components, packing the rows would cost about as much as the products).
// The rows are centred before the product, not after it as scikit-learn's
// PCA.transform does (x · componentsᵀ - mean · componentsᵀ): for data far from
// the origin the two products nearly cancel in float32 (1e5 +- 1 loses
// everything), while the subtraction costs one pass over a block in cache
// (~1/64 of the multiply-adds at 784 -> 64).
#include <algorithm>
#include <string>
#include <vector>

#include "core/parallel.hpp"
#include "keensight/search.hpp"
#include "core/gemm.hpp"

namespace keensight::search {

void pca_transform(const float* x, std::int64_t n, std::int64_t dim, const float* mean, const float* components,
                   std::int64_t n_components, const float* scale, float* out) {
  if (dim < 1) throw ValueError("dim: expected at least 1, got " + std::to_string(dim));
  if (n_components < 1) throw ValueError("n_components: expected at least 1, got " + std::to_string(n_components));
  if (n < 0) throw ValueError("x: negative row count");
  if (n == 0) return;
  if (!x || !mean || !components || !out) throw ValueError("pca_transform: null pointer");

  const keensight::detail::GemmF32Kernels& kern = keensight::detail::gemm_f32_kernels();
  const int mr = kern.mr, nr = kern.nr;
  const std::int64_t mc = keensight::detail::round_up(keensight::detail::kGemmMC, mr);
  const std::int64_t ldc = keensight::detail::round_up(n_components, nr);
  // The components are packed once and shared by every thread.
  keensight::detail::AlignedFloats b(keensight::detail::packed_size(n_components, dim, nr));
  keensight::detail::pack_panels(components, dim, n_components, dim, nr, nullptr, nullptr, b.get());

  keensight::detail::parallel_for(n, mc, [&](std::int64_t begin, std::int64_t end) {
    keensight::detail::AlignedFloats c(keensight::detail::round_up(mc, mr) * ldc);
    std::vector<float> centred(static_cast<std::size_t>(mc * dim));
    for (std::int64_t i0 = begin; i0 < end; i0 += mc) {
      const std::int64_t m = std::min(mc, end - i0);
      for (std::int64_t i = 0; i < m; ++i) {
        const float* row = x + (i0 + i) * dim;
        float* dst = centred.data() + i * dim;
        for (std::int64_t j = 0; j < dim; ++j) dst[j] = row[j] - mean[j];
      }
      keensight::detail::gemm_rows(kern, centred.data(), dim, m, b.get(), n_components, dim, c.get(), ldc);
      for (std::int64_t i = 0; i < m; ++i) {
        const float* ci = c.get() + i * ldc;
        float* o = out + (i0 + i) * n_components;
        if (scale)
          for (std::int64_t j = 0; j < n_components; ++j) o[j] = ci[j] * scale[j];
        else
          std::copy(ci, ci + n_components, o);
      }
    }
  });
}

}  // namespace keensight::search
