#include "filters/kernels.hpp"

namespace keensight::filters_detail {

const FilterKernels& filter_kernels(Isa isa) {
#ifdef KEENSIGHT_HAVE_AVX2
  if (isa >= Isa::avx2) return filter_kernels_avx2();  // no AVX-512 variant: AVX2 is memory-bound enough here
#endif
  (void)isa;
  return filter_kernels_scalar();
}

const FilterKernels& filter_kernels() { return filter_kernels(active_isa()); }

}  // namespace keensight::filters_detail
