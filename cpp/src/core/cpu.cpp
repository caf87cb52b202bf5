// CPU feature detection and the process-wide set of enabled ISA levels (numpy/faiss
// style: detect once, enable what the CPU and build both have, let KEENSIGHT_ISA or
// set_isa restrict the kernels to one level's fallback chain).
#include "keensight/core.hpp"

#include "core/dispatch.hpp"

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

namespace {

constexpr const char* kIsaNames[kIsaCount] = {"scalar", "avx2", "avx2_vnni", "avx512", "avx512_vnni",
                                              "avx512_vpopcntdq"};

// The level each level adds its features to (scalar: none): the tree of inclusion.
constexpr Isa kParent[kIsaCount] = {Isa::scalar, Isa::scalar, Isa::avx2, Isa::avx2, Isa::avx512, Isa::avx512};

}  // namespace

Isa IsaSet::best() const {
  for (int i = kIsaCount - 1; i > 0; --i)
    if (contains(static_cast<Isa>(i))) return static_cast<Isa>(i);
  return Isa::scalar;
}

const char* isa_name(Isa isa) {
  const int i = static_cast<int>(isa);
  return i >= 0 && i < kIsaCount ? kIsaNames[i] : "unknown";
}

Isa isa_from_name(const std::string& name) {
  std::string key;  // case does not matter: "AVX2" is avx2
  for (const char ch : name) key += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string choices;
  for (int i = 0; i < kIsaCount; ++i) {
    if (key == kIsaNames[i]) return static_cast<Isa>(i);
    choices += (i ? (i + 1 == kIsaCount ? " or '" : ", '") : "'") + std::string(kIsaNames[i]) + "'";
  }
  throw ValueError("isa: expected " + choices + " (any case), got '" + name + "'");
}

IsaSet isa_chain(Isa isa) {
  IsaSet chain = IsaSet{}.with(Isa::scalar);
  if (static_cast<int>(isa) < 0 || static_cast<int>(isa) >= kIsaCount) return chain;
  for (Isa level = isa; level != Isa::scalar; level = kParent[static_cast<int>(level)]) chain = chain.with(level);
  return chain;
}

std::vector<std::pair<const char*, bool>> CpuInfo::features() const {
  return {{"sse4_2", sse42},         {"avx", avx},
          {"avx2", avx2},            {"fma", fma},
          {"f16c", f16c},            {"popcnt", popcnt},
          {"bmi1", bmi1},            {"bmi2", bmi2},
          {"avxvnni", avxvnni},      {"avx512f", avx512f},
          {"avx512bw", avx512bw},    {"avx512dq", avx512dq},
          {"avx512vl", avx512vl},    {"avx512cd", avx512cd},
          {"avx512vnni", avx512vnni}, {"avx512vpopcntdq", avx512vpopcntdq},
          {"avx512bitalg", avx512bitalg}, {"avx512vbmi", avx512vbmi}};
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

bool bit(unsigned reg, int b) { return (reg >> b) & 1u; }
#endif

// The levels this build compiled flags for (CMakeLists.txt defines KEENSIGHT_HAVE_*).
IsaSet compiled_levels() {
  IsaSet s = IsaSet{}.with(Isa::scalar);
#if defined(KEENSIGHT_HAVE_AVX2)
  s = s.with(Isa::avx2);
#endif
#if defined(KEENSIGHT_HAVE_AVX2_VNNI)
  s = s.with(Isa::avx2_vnni);
#endif
#if defined(KEENSIGHT_HAVE_AVX512)
  s = s.with(Isa::avx512);
#endif
#if defined(KEENSIGHT_HAVE_AVX512_VNNI)
  s = s.with(Isa::avx512_vnni);
#endif
#if defined(KEENSIGHT_HAVE_AVX512_VPOPCNTDQ)
  s = s.with(Isa::avx512_vpopcntdq);
#endif
  return s;
}

// The levels whose whole feature set the CPU has.
IsaSet levels_of(const CpuInfo& f) {
  IsaSet s = IsaSet{}.with(Isa::scalar);
  if (!(f.avx2 && f.fma && f.f16c && f.popcnt)) return s;
  s = s.with(Isa::avx2);
  if (f.avxvnni) s = s.with(Isa::avx2_vnni);
  if (!(f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl)) return s;
  s = s.with(Isa::avx512);
  if (f.avx512vnni) s = s.with(Isa::avx512_vnni);
  if (f.avx512vpopcntdq) s = s.with(Isa::avx512_vpopcntdq);
  return s;
}

// What set_isa(want) enables among the usable levels, and the level it reports.
IsaSet enabled_for(Isa want, IsaSet usable, Isa* level) {
  const Isa clamped = (isa_chain(want) & usable).best();
  *level = clamped;
  // The best usable level stands for "everything usable" (the start-up default).
  return clamped == usable.best() ? usable : (isa_chain(clamped) & usable);
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
  info.sse42 = bit(r[2], 20);
  info.popcnt = bit(r[2], 23);
  info.fma = bit(r[2], 12);
  info.f16c = bit(r[2], 29);
  const bool osxsave = bit(r[2], 27);
  const bool avx_hw = bit(r[2], 28);
  const std::uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;    // XMM + YMM state saved
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  info.avx = avx_hw && os_ymm;
  if (max_leaf >= 7) {
    cpuid(7, 0, r);
    const unsigned max_subleaf = r[0];
    info.bmi1 = bit(r[1], 3);
    info.bmi2 = bit(r[1], 8);
    info.avx2 = info.avx && bit(r[1], 5);
    info.avx512f = os_zmm && bit(r[1], 16);
    info.avx512dq = os_zmm && bit(r[1], 17);
    info.avx512cd = os_zmm && bit(r[1], 28);
    info.avx512bw = os_zmm && bit(r[1], 30);
    info.avx512vl = os_zmm && bit(r[1], 31);
    info.avx512vbmi = os_zmm && bit(r[2], 1);
    info.avx512vnni = os_zmm && bit(r[2], 11);
    info.avx512bitalg = os_zmm && bit(r[2], 12);
    info.avx512vpopcntdq = os_zmm && bit(r[2], 14);
    if (max_subleaf >= 1) {
      cpuid(7, 1, r);
      info.avxvnni = info.avx && bit(r[0], 4);  // VEX-encoded: YMM state suffices
    }
  }
  info.fma = info.fma && info.avx;
  info.f16c = info.f16c && info.avx;
#endif
  info.levels = levels_of(info);
  info.compiled_levels = compiled_levels();
  info.detected = info.levels.best();
  info.compiled = info.compiled_levels.best();
  const IsaSet usable = info.levels & info.compiled_levels;
  info.enabled = usable;
  if (const char* env = std::getenv("KEENSIGHT_ISA")) {
    info.forced = env;
    if (!info.forced.empty()) {
      // An unknown name forces nothing (the Python package warns, naming the
      // choices; cpu_info().forced_valid tells C++ callers).
      try {
        const Isa want = isa_from_name(info.forced);
        info.forced_valid = true;
        Isa level;
        info.enabled = enabled_for(want, usable, &level);
      } catch (const ValueError&) {
        info.forced_valid = false;
      }
    }
  }
  info.active = info.enabled.best();
  return info;
}

std::atomic<std::uint32_t>& enabled_bits() {
  static std::atomic<std::uint32_t> bits{cpu_info_at_startup().enabled.bits};
  return bits;
}

}  // namespace

const CpuInfo& cpu_info_at_startup() {
  static const CpuInfo info = detect();
  return info;
}

CpuInfo cpu_info() {
  CpuInfo info = cpu_info_at_startup();
  info.enabled = enabled_isas();
  info.active = info.enabled.best();
  return info;
}

IsaSet enabled_isas() { return IsaSet{enabled_bits().load(std::memory_order_relaxed)}; }

Isa active_isa() { return enabled_isas().best(); }

Isa set_isa(Isa isa) {
  const CpuInfo& info = cpu_info_at_startup();
  Isa level;
  const IsaSet enabled = enabled_for(isa, info.levels & info.compiled_levels, &level);
  enabled_bits().store(enabled.bits, std::memory_order_relaxed);
  return level;
}

}  // namespace keensight

namespace keensight::detail {

void incomplete_kernel_table(const char* area, Isa level) {
  // A build defect, not bad input: a table member was added without filling it.
  throw std::logic_error(std::string("keensight: the ") + area + " kernel table for " + isa_name(level) +
                         " has an unset entry");
}

}  // namespace keensight::detail
