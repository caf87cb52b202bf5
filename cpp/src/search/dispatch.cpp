#include "search/kernels.hpp"

#include "core/dispatch.hpp"

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

}  // namespace

const SearchKernels& search_kernels(Isa isa) { return search_tables().at(isa); }

const SearchKernels& search_kernels() { return search_tables().select(); }

}  // namespace keensight::search::detail
