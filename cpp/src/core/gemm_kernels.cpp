// The GEMM kernel tables: which per-ISA tile each type uses at each ISA level
// (numpy / faiss style: the level is chosen once per process, KEENSIGHT_ISA or
// set_isa() may lower it), and the list of every table this build has and this
// CPU can run (the tests compare each one with the reference).
#include "core/gemm.hpp"

namespace keensight::detail {

const GemmF32Kernels& gemm_f32_kernels(Isa isa) {
#ifdef KEENSIGHT_HAVE_AVX2
  if (isa >= Isa::avx2) return gemm_f32_6x16_avx2();  // AVX-512 runs the AVX2 tile
#endif
  (void)isa;
  return gemm_f32_6x16_scalar();
}

const GemmF32Kernels& gemm_f32_kernels() { return gemm_f32_kernels(active_isa()); }

std::vector<const GemmKernels<GemmF32>*> gemm_f32_variants() {
  std::vector<const GemmKernels<GemmF32>*> v{&gemm_f32_6x16_scalar()};
  const CpuInfo& cpu = cpu_info_at_startup();
#ifdef KEENSIGHT_HAVE_AVX2
  if (cpu.detected >= Isa::avx2) v.push_back(&gemm_f32_6x16_avx2());
#endif
  (void)cpu;
  return v;
}

}  // namespace keensight::detail
