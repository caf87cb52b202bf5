// This CPU's single-thread FMA peak (core/fma_peak.hpp): the per-level kernels
// registered through core/dispatch.hpp, timed with a steady clock.
#include "core/fma_peak.hpp"

#include <algorithm>
#include <chrono>
#include <string>

#include "core/dispatch.hpp"

namespace keensight::detail {
namespace {

const KernelTables<FmaPeakKernels>& tables() {
  static const KernelTables<FmaPeakKernels> registry("fma_peak", {
      {Isa::scalar, fma_peak_scalar},
#ifdef KEENSIGHT_HAVE_AVX2
      {Isa::avx2, fma_peak_avx2},
#endif
#ifdef KEENSIGHT_HAVE_AVX512
      {Isa::avx512, fma_peak_avx512},
#endif
  });
  return registry;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs of about kRunSeconds each, the best rate kept: another process or an interrupt
// only ever slows a run down, so the fastest run is the closest to the machine's peak
// (what a benchmark's "% of peak" wants as its denominator). A millisecond is long
// against the clock's resolution and the call's overhead, and short against a
// scheduler's time slice, so that some runs go uninterrupted on a loaded machine.
constexpr double kRunSeconds = 1e-3;

double best_gflops(const FmaPeakKernels& kernel, double seconds) {
  if (!(seconds > 0.0 && seconds <= 60.0))
    throw ValueError("seconds: expected a duration in (0, 60], got " + std::to_string(seconds));
  float sink = 1.0f;
  // Calibrate: double the iterations until one run takes kRunSeconds (the first runs
  // also bring the core out of a low-frequency state).
  std::int64_t iterations = 64;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    kernel.run(iterations, &sink);
    if (seconds_since(t0) >= kRunSeconds || iterations >= (std::int64_t{1} << 40)) break;
    iterations *= 2;
  }
  double best = 0.0;
  const auto start = std::chrono::steady_clock::now();
  do {
    const auto t0 = std::chrono::steady_clock::now();
    const std::int64_t flops = kernel.run(iterations, &sink);
    const double dt = seconds_since(t0);
    if (dt > 0.0) best = std::max(best, static_cast<double>(flops) / dt * 1e-9);
  } while (seconds_since(start) < seconds);
  if (sink != sink) best = 0.0;  // never: reads the result so the runs are kept
  return best;
}

}  // namespace

double fma_peak_gflops(Isa level, double seconds) {
  if (!cpu_info_at_startup().levels.contains(level))
    throw ValueError(std::string("level: this CPU cannot run '") + isa_name(level) + "'");
  return best_gflops(tables().at(level), seconds);
}

double fma_peak_gflops(double seconds) { return best_gflops(tables().select(), seconds); }

const char* fma_peak_kernel_name(Isa level) { return tables().at(level).name; }

}  // namespace keensight::detail
