#include "search/kernels.hpp"

#include "core/dispatch.hpp"
#include "search/gemm_kernels.hpp"

namespace keensight::search::detail {

namespace {

const keensight::detail::KernelTables<SearchKernels>& search_tables() {
  static const keensight::detail::KernelTables<SearchKernels> registry("search", {
      {Isa::scalar, search_kernels_scalar},
#ifdef KEENSIGHT_HAVE_AVX2
      {Isa::avx2, search_kernels_avx2},
#endif
#ifdef KEENSIGHT_HAVE_AVX512
      {Isa::avx512, search_kernels_avx512},
#endif
  });
  return registry;
}

// AVX-512 runs the AVX2 tile: no AVX-512 GEMM table.
const keensight::detail::KernelTables<GemmKernels>& gemm_tables() {
  static const keensight::detail::KernelTables<GemmKernels> registry("gemm", {
      {Isa::scalar, gemm_kernels_scalar},
#ifdef KEENSIGHT_HAVE_AVX2
      {Isa::avx2, gemm_kernels_avx2},
#endif
  });
  return registry;
}

}  // namespace

const SearchKernels& search_kernels(Isa isa) { return search_tables().at(isa); }

const SearchKernels& search_kernels() { return search_tables().select(); }

const GemmKernels& gemm_kernels(Isa isa) { return gemm_tables().at(isa); }

const GemmKernels& gemm_kernels() { return gemm_tables().select(); }

}  // namespace keensight::search::detail
