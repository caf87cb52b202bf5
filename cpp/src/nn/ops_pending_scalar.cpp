// PLACEHOLDER ON BRANCH dw ONLY — DELETE WHEN MERGING THE OPS KERNELS.
// nn/dispatch.cpp registers the depthwise and the ops tables in one file, so the
// depthwise operator cannot link without ops_kernels_scalar / _avx2 / _avx512,
// which another branch writes. These stand-ins let this branch build; every entry
// throws. Merged together with the real ops files they collide as duplicate symbols
// at link time (loud, never a silent substitution).
#include <stdexcept>

#include "nn/kernels.hpp"

namespace keensight::nn::detail {
namespace {

[[noreturn]] void ops_pending() { throw std::logic_error("nn ops kernels are not on this branch (placeholder)"); }
void activate_pending(const Activation&, const float*, float*, std::int64_t) { ops_pending(); }
void binary_pending(const float*, const float*, float*, std::int64_t, const Activation&) { ops_pending(); }
void affine_pending(const float*, const float*, const float*, float*, std::int64_t, std::int64_t, const Activation&) {
  ops_pending();
}
void gap_pending(const float*, std::int64_t, std::int64_t, float*) { ops_pending(); }
void pool_pending(const PoolArgs&, std::int64_t, std::int64_t) { ops_pending(); }
void conv_pending(const DirectConvArgs&, std::int64_t, std::int64_t) { ops_pending(); }

const OpsKernels& ops_pending_table() {
  static const OpsKernels table = [] {
    OpsKernels t{};
    t.activate = activate_pending;
    t.add = binary_pending;
    t.mul = binary_pending;
    t.channel_affine = affine_pending;
    t.global_avg_pool = gap_pending;
    t.max_pool = pool_pending;
    t.avg_pool = pool_pending;
    t.conv_direct = conv_pending;
    return t;
  }();
  return table;
}

}  // namespace

const OpsKernels& ops_kernels_scalar() { return ops_pending_table(); }
#ifdef KEENSIGHT_HAVE_AVX2
const OpsKernels& ops_kernels_avx2() { return ops_pending_table(); }
#endif
#ifdef KEENSIGHT_HAVE_AVX512
const OpsKernels& ops_kernels_avx512() { return ops_pending_table(); }
#endif

}  // namespace keensight::nn::detail
