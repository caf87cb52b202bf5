#include "preprocess/kernels.hpp"

namespace keensight::preprocess::detail {

const PreprocessKernels& preprocess_kernels() {
#ifdef KEENSIGHT_HAVE_AVX2
  // No AVX-512 variant: a batch of 224x224 inputs costs well under a millisecond per image
  // at AVX2; decoding and the network dominate.
  if (active_isa() >= Isa::avx2) return preprocess_kernels_avx2();
#endif
  return preprocess_kernels_scalar();
}

}  // namespace keensight::preprocess::detail
