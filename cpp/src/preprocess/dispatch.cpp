#include "preprocess/kernels.hpp"

#include "core/dispatch.hpp"

namespace keensight::preprocess::detail {

namespace {

// No AVX-512 variant: a batch of 224x224 inputs costs well under a millisecond per image
// at AVX2; decoding and the network dominate.
const keensight::detail::KernelTables<PreprocessKernels>& tables() {
  static const keensight::detail::KernelTables<PreprocessKernels> registry("preprocess", {
      {Isa::scalar, preprocess_kernels_scalar},
#ifdef KEENSIGHT_HAVE_AVX2
      {Isa::avx2, preprocess_kernels_avx2},
#endif
  });
  return registry;
}

}  // namespace

const PreprocessKernels& preprocess_kernels() { return tables().select(); }

const PreprocessKernels& preprocess_kernels(Isa isa) { return tables().at(isa); }

}  // namespace keensight::preprocess::detail
