// Internal: this CPU's single-thread floating-point peak, measured (the denominator of
// the benchmarks' "% of FMA peak"). Each level's kernel is a loop of independent FMA
// chains that touch no memory: enough chains (accumulators) that the FMA latency times
// the number of FMA ports is covered, so every port issues one FMA a cycle. What it
// measures is what the GEMM and convolution kernels of that level could reach at most.
#pragma once

#include <cstdint>

#include "keensight/core.hpp"

namespace keensight::detail {

struct FmaPeakKernels {
  // Runs `iterations` rounds of the kernel's unrolled block; returns the floating-point
  // operations done (2 per lane of each FMA). `sink` receives one value that depends
  // on every chain, so the compiler cannot drop any of them.
  std::int64_t (*run)(std::int64_t iterations, float* sink);
  const char* name;  // e.g. "fma_peak_24x16_avx512": chains x lanes, level
};

const FmaPeakKernels& fma_peak_scalar();
#ifdef KEENSIGHT_HAVE_AVX2
const FmaPeakKernels& fma_peak_avx2();
#endif
#ifdef KEENSIGHT_HAVE_AVX512
const FmaPeakKernels& fma_peak_avx512();
#endif

// Best GFLOP/s of the kernel of `level` (the table it falls back to along its chain)
// over runs of about a millisecond each, for about `seconds` in all, on the calling
// thread. Throws ValueError when this CPU cannot run `level`, or seconds is not in
// (0, 60].
double fma_peak_gflops(Isa level, double seconds);
// The same at the active level (the one the kernels use now).
double fma_peak_gflops(double seconds);
// The name of the kernel fma_peak_gflops(level, ...) runs.
const char* fma_peak_kernel_name(Isa level);

}  // namespace keensight::detail
