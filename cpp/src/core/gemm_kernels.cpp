// The GEMM kernel tables: which per-ISA tile each operand type uses at each
// feature-set level (selected through core/dispatch.hpp like every area's tables;
// KEENSIGHT_ISA or set_isa() restrict the levels), and the list of every table
// this build has and this CPU can run (the tests compare each with the reference).
#include "core/gemm.hpp"

#include "core/dispatch.hpp"

namespace keensight::detail {
namespace {

// One registry per operand type (core/dispatch.hpp): the best registered level that
// is enabled now, falling back along the level's chain. u8s8 has no plain-avx512
// table: at the avx512 level (VNNI disabled or absent) it falls back to avx2; the
// AVX-VNNI tile is reached where avx2_vnni is enabled and avx512_vnni is not.
const KernelTables<GemmF32Kernels>& f32_tables() {
  static const KernelTables<GemmF32Kernels> registry("gemm_f32", {
      {Isa::scalar, gemm_f32_6x16_scalar},
#ifdef KEENSIGHT_HAVE_AVX2
      {Isa::avx2, gemm_f32_6x16_avx2},
#endif
#ifdef KEENSIGHT_HAVE_AVX512
      {Isa::avx512, gemm_f32_12x32_avx512},
#endif
  });
  return registry;
}

const KernelTables<GemmKernels<GemmU8S8>>& u8s8_tables() {
  static const KernelTables<GemmKernels<GemmU8S8>> registry("gemm_u8s8", {
      {Isa::scalar, gemm_u8s8_6x16_scalar},
#ifdef KEENSIGHT_HAVE_AVX2
      {Isa::avx2, gemm_u8s8_6x16_avx2},
#endif
#ifdef KEENSIGHT_HAVE_AVX2_VNNI
      {Isa::avx2_vnni, gemm_u8s8_6x16_avx2_vnni},
#endif
#ifdef KEENSIGHT_HAVE_AVX512_VNNI
      {Isa::avx512_vnni, gemm_u8s8_12x32_avx512_vnni},
#endif
  });
  return registry;
}

const KernelTables<GemmKernels<GemmXnor>>& xnor_tables() {
  static const KernelTables<GemmKernels<GemmXnor>> registry("gemm_xnor", {
      {Isa::scalar, gemm_xnor_6x16_scalar},
#ifdef KEENSIGHT_HAVE_AVX2
      {Isa::avx2, gemm_xnor_4x8_avx2},
#endif
#ifdef KEENSIGHT_HAVE_AVX512_VPOPCNTDQ
      {Isa::avx512_vpopcntdq, gemm_xnor_8x16_avx512_vpopcntdq},
#endif
  });
  return registry;
}

// Every table of a registry whose level this CPU has (what the tests compare with
// the scalar reference).
template <class Table>
std::vector<const GemmKernels<typename Table::Types>*> variants(const KernelTables<Table>& registry) {
  std::vector<const GemmKernels<typename Table::Types>*> v;
  for (int i = 0; i < kIsaCount; ++i) {
    const Isa level = static_cast<Isa>(i);
    if (registry.registered(level) && cpu_info_at_startup().levels.contains(level)) v.push_back(&registry.at(level));
  }
  return v;
}

}  // namespace

const GemmF32Kernels& gemm_f32_kernels(Isa isa) { return f32_tables().at(isa); }
const GemmKernels<GemmU8S8>& gemm_u8s8_kernels(Isa isa) { return u8s8_tables().at(isa); }
const GemmKernels<GemmXnor>& gemm_xnor_kernels(Isa isa) { return xnor_tables().at(isa); }

const GemmF32Kernels& gemm_f32_kernels() { return f32_tables().select(); }
const GemmKernels<GemmU8S8>& gemm_u8s8_kernels() { return u8s8_tables().select(); }
const GemmKernels<GemmXnor>& gemm_xnor_kernels() { return xnor_tables().select(); }

std::vector<const GemmKernels<GemmF32>*> gemm_f32_variants() { return variants(f32_tables()); }
std::vector<const GemmKernels<GemmU8S8>*> gemm_u8s8_variants() { return variants(u8s8_tables()); }
std::vector<const GemmKernels<GemmXnor>*> gemm_xnor_variants() { return variants(xnor_tables()); }

template void gemm<GemmF32>(const GemmKernels<GemmF32>&, const float*, std::int64_t, const float*, std::int64_t,
                            float*, std::int64_t, std::int64_t, std::int64_t, std::int64_t, const GemmEpilogue<float>&,
                            int);
template void gemm<GemmU8S8>(const GemmKernels<GemmU8S8>&, const std::uint8_t*, std::int64_t, const std::int8_t*,
                             std::int64_t, std::int32_t*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                             const GemmEpilogue<std::int32_t>&, int);
template void gemm<GemmXnor>(const GemmKernels<GemmXnor>&, const std::uint8_t*, std::int64_t, const std::uint8_t*,
                             std::int64_t, std::int32_t*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                             const GemmEpilogue<std::int32_t>&, int);

}  // namespace keensight::detail
