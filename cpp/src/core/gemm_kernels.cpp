// The GEMM kernel tables: which per-ISA tile each type uses at each ISA level
// (numpy / faiss style: the level is chosen once per process, KEENSIGHT_ISA or
// set_isa() may lower it; features beyond the level, VNNI and VPOPCNTDQ, are
// used where the CPU reports them), and the list of every table this build has
// and this CPU can run (the tests compare each one with the reference).
#include "core/gemm.hpp"

namespace keensight::detail {
namespace {

// What this CPU (and OS) can run, whatever the active level.
bool cpu_avx2() { return cpu_info_at_startup().detected >= Isa::avx2; }
bool cpu_avx512() { return cpu_info_at_startup().detected >= Isa::avx512; }
bool cpu_avx2_vnni() { return cpu_avx2() && cpu_info_at_startup().avxvnni; }
bool cpu_avx512_vnni() { return cpu_avx512() && cpu_info_at_startup().avx512vnni; }
bool cpu_avx512_vpopcntdq() { return cpu_avx512() && cpu_info_at_startup().avx512vpopcntdq; }

}  // namespace

const GemmF32Kernels& gemm_f32_kernels(Isa isa) {
#ifdef KEENSIGHT_HAVE_AVX512
  if (isa >= Isa::avx512) return gemm_f32_12x32_avx512();
#endif
#ifdef KEENSIGHT_HAVE_AVX2
  if (isa >= Isa::avx2) return gemm_f32_6x16_avx2();
#endif
  (void)isa;
  return gemm_f32_6x16_scalar();
}

// The AVX2 level takes AVX-VNNI where the CPU has it (Alder Lake and later:
// AVX-VNNI without AVX-512); the plain AVX2 tile otherwise.
const GemmKernels<GemmU8S8>& gemm_u8s8_kernels(Isa isa) {
#ifdef KEENSIGHT_HAVE_AVX512_VNNI
  if (isa >= Isa::avx512 && cpu_avx512_vnni()) return gemm_u8s8_12x32_avx512_vnni();
#endif
#ifdef KEENSIGHT_HAVE_AVX2_VNNI
  if (isa >= Isa::avx2 && cpu_avx2_vnni()) return gemm_u8s8_6x16_avx2_vnni();
#endif
#ifdef KEENSIGHT_HAVE_AVX2
  if (isa >= Isa::avx2) return gemm_u8s8_6x16_avx2();
#endif
  (void)isa;
  return gemm_u8s8_6x16_scalar();
}

const GemmKernels<GemmXnor>& gemm_xnor_kernels(Isa isa) {
#ifdef KEENSIGHT_HAVE_AVX512_VPOPCNTDQ
  if (isa >= Isa::avx512 && cpu_avx512_vpopcntdq()) return gemm_xnor_8x16_avx512_vpopcntdq();
#endif
#ifdef KEENSIGHT_HAVE_AVX2
  if (isa >= Isa::avx2) return gemm_xnor_4x8_avx2();
#endif
  (void)isa;
  return gemm_xnor_6x16_scalar();
}

const GemmF32Kernels& gemm_f32_kernels() { return gemm_f32_kernels(active_isa()); }
const GemmKernels<GemmU8S8>& gemm_u8s8_kernels() { return gemm_u8s8_kernels(active_isa()); }
const GemmKernels<GemmXnor>& gemm_xnor_kernels() { return gemm_xnor_kernels(active_isa()); }

std::vector<const GemmKernels<GemmF32>*> gemm_f32_variants() {
  std::vector<const GemmKernels<GemmF32>*> v{&gemm_f32_6x16_scalar()};
#ifdef KEENSIGHT_HAVE_AVX2
  if (cpu_avx2()) v.push_back(&gemm_f32_6x16_avx2());
#endif
#ifdef KEENSIGHT_HAVE_AVX512
  if (cpu_avx512()) v.push_back(&gemm_f32_12x32_avx512());
#endif
  return v;
}

std::vector<const GemmKernels<GemmU8S8>*> gemm_u8s8_variants() {
  std::vector<const GemmKernels<GemmU8S8>*> v{&gemm_u8s8_6x16_scalar()};
#ifdef KEENSIGHT_HAVE_AVX2
  if (cpu_avx2()) v.push_back(&gemm_u8s8_6x16_avx2());
#endif
#ifdef KEENSIGHT_HAVE_AVX2_VNNI
  if (cpu_avx2_vnni()) v.push_back(&gemm_u8s8_6x16_avx2_vnni());
#endif
#ifdef KEENSIGHT_HAVE_AVX512_VNNI
  if (cpu_avx512_vnni()) v.push_back(&gemm_u8s8_12x32_avx512_vnni());
#endif
  return v;
}

std::vector<const GemmKernels<GemmXnor>*> gemm_xnor_variants() {
  std::vector<const GemmKernels<GemmXnor>*> v{&gemm_xnor_6x16_scalar()};
#ifdef KEENSIGHT_HAVE_AVX2
  if (cpu_avx2()) v.push_back(&gemm_xnor_4x8_avx2());
#endif
#ifdef KEENSIGHT_HAVE_AVX512_VPOPCNTDQ
  if (cpu_avx512_vpopcntdq()) v.push_back(&gemm_xnor_8x16_avx512_vpopcntdq());
#endif
  return v;
}

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
