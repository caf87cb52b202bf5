// The nn area's kernel tables on the core dispatch: one registry per family.
#include "core/dispatch.hpp"
#include "nn/kernels.hpp"

namespace keensight::nn::detail {

namespace {

const keensight::detail::KernelTables<DepthwiseKernels>& depthwise_tables() {
  static const keensight::detail::KernelTables<DepthwiseKernels> registry("nn depthwise", {
      {Isa::scalar, depthwise_kernels_scalar},
#ifdef KEENSIGHT_HAVE_AVX2
      {Isa::avx2, depthwise_kernels_avx2},
#endif
#ifdef KEENSIGHT_HAVE_AVX512
      {Isa::avx512, depthwise_kernels_avx512},
#endif
  });
  return registry;
}

const keensight::detail::KernelTables<OpsKernels>& ops_tables() {
  static const keensight::detail::KernelTables<OpsKernels> registry("nn ops", {
      {Isa::scalar, ops_kernels_scalar},
#ifdef KEENSIGHT_HAVE_AVX2
      {Isa::avx2, ops_kernels_avx2},
#endif
#ifdef KEENSIGHT_HAVE_AVX512
      {Isa::avx512, ops_kernels_avx512},
#endif
  });
  return registry;
}

}  // namespace

const DepthwiseKernels& depthwise_kernels() { return depthwise_tables().select(); }
const DepthwiseKernels& depthwise_kernels_at(Isa level) { return depthwise_tables().at(level); }
const OpsKernels& ops_kernels() { return ops_tables().select(); }
const OpsKernels& ops_kernels_at(Isa level) { return ops_tables().at(level); }

}  // namespace keensight::nn::detail
