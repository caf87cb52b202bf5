// CPU feature detection and the process-wide ISA level (numpy/faiss style:
// detect once, pick the best compiled level, allow KEENSIGHT_ISA to force lower).
#include "keensight/core.hpp"

#include <atomic>
#include <cctype>
#include <cstdlib>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define KEENSIGHT_ON_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace keensight {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "unknown";
}

Isa isa_from_name(const std::string& name) {
  std::string key;  // case does not matter: "AVX2" is avx2
  for (const char ch : name) key += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (key == "scalar") return Isa::scalar;
  if (key == "avx2") return Isa::avx2;
  if (key == "avx512") return Isa::avx512;
  throw ValueError("isa: expected 'scalar', 'avx2' or 'avx512' (any case), got '" + name + "'");
}

namespace {

#ifdef KEENSIGHT_ON_X86
void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
#if defined(_MSC_VER)
  int out[4];
  __cpuidex(out, static_cast<int>(leaf), static_cast<int>(sub));
  for (int i = 0; i < 4; ++i) r[i] = static_cast<unsigned>(out[i]);
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

std::uint64_t xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
#endif
}
#endif

Isa compiled_level() {
#if defined(KEENSIGHT_HAVE_AVX512)
  return Isa::avx512;
#elif defined(KEENSIGHT_HAVE_AVX2)
  return Isa::avx2;
#else
  return Isa::scalar;
#endif
}

CpuInfo detect() {
  CpuInfo info;
#if defined(__x86_64__) || defined(_M_X64)
  info.arch = "x86_64";
#elif defined(__i386__) || defined(_M_IX86)
  info.arch = "x86";
#elif defined(__aarch64__) || defined(_M_ARM64)
  info.arch = "aarch64";
#else
  info.arch = "unknown";
#endif
#ifdef KEENSIGHT_ON_X86
  unsigned r[4];
  cpuid(0, 0, r);
  const unsigned max_leaf = r[0];
  cpuid(1, 0, r);
  info.sse42 = (r[2] >> 20) & 1;
  info.popcnt = (r[2] >> 23) & 1;
  info.fma = (r[2] >> 12) & 1;
  info.f16c = (r[2] >> 29) & 1;
  const bool osxsave = (r[2] >> 27) & 1;
  const bool avx_hw = (r[2] >> 28) & 1;
  std::uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;              // XMM + YMM state saved
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;            // + opmask, ZMM_Hi256, Hi16_ZMM
  info.avx = avx_hw && os_ymm;
  if (max_leaf >= 7) {
    cpuid(7, 0, r);
    info.avx2 = info.avx && ((r[1] >> 5) & 1);
    info.avx512f = os_zmm && ((r[1] >> 16) & 1);
    info.avx512dq = os_zmm && ((r[1] >> 17) & 1);
    info.avx512bw = os_zmm && ((r[1] >> 30) & 1);
    info.avx512vl = os_zmm && ((r[1] >> 31) & 1);
    info.avx512vpopcntdq = os_zmm && ((r[2] >> 14) & 1);
    info.avx512vnni = os_zmm && ((r[2] >> 11) & 1);
    const unsigned max_sub = r[0];
    if (max_sub >= 1) {
      cpuid(7, 1, r);
      info.avxvnni = info.avx2 && ((r[0] >> 4) & 1);
    }
  }
  info.fma = info.fma && info.avx;
  info.f16c = info.f16c && info.avx;
  if (info.avx2 && info.fma && info.f16c && info.popcnt) info.detected = Isa::avx2;
  if (info.detected == Isa::avx2 && info.avx512f && info.avx512bw && info.avx512dq &&
      info.avx512vl)
    info.detected = Isa::avx512;
#endif
  info.compiled = compiled_level();
  Isa level = info.detected < info.compiled ? info.detected : info.compiled;
  if (const char* env = std::getenv("KEENSIGHT_ISA")) {
    info.forced = env;
    if (!info.forced.empty()) {
      // An unknown name forces nothing (the Python package warns, naming the
      // choices; cpu_info().forced_valid tells C++ callers).
      try {
        const Isa want = isa_from_name(info.forced);
        info.forced_valid = true;
        if (want < level) level = want;
      } catch (const ValueError&) {
        info.forced_valid = false;
      }
    }
  }
  info.active = level;
  return info;
}

std::atomic<int>& active_level() {
  static std::atomic<int> level{static_cast<int>(cpu_info_at_startup().active)};
  return level;
}

}  // namespace

const CpuInfo& cpu_info_at_startup() {
  static const CpuInfo info = detect();
  return info;
}

CpuInfo cpu_info() {
  CpuInfo info = cpu_info_at_startup();
  info.active = active_isa();
  return info;
}

Isa active_isa() { return static_cast<Isa>(active_level().load(std::memory_order_relaxed)); }

Isa set_isa(Isa isa) {
  const CpuInfo& info = cpu_info_at_startup();
  Isa cap = info.detected < info.compiled ? info.detected : info.compiled;
  Isa level = isa < cap ? isa : cap;
  active_level().store(static_cast<int>(level), std::memory_order_relaxed);
  return level;
}

}  // namespace keensight
