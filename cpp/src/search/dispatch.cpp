#include "search/kernels.hpp"

namespace keensight::search::detail {

const SearchKernels& search_kernels(Isa isa) {
#ifdef KEENSIGHT_HAVE_AVX512
  if (isa >= Isa::avx512) return search_kernels_avx512();
#endif
#ifdef KEENSIGHT_HAVE_AVX2
  if (isa >= Isa::avx2) return search_kernels_avx2();
#endif
  (void)isa;
  return search_kernels_scalar();
}

const SearchKernels& search_kernels() { return search_kernels(active_isa()); }

}  // namespace keensight::search::detail
