// keensight core: errors, CPU feature detection and ISA dispatch level, threads,
// and the plain image view that every kernel takes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace keensight {

// ---------------------------------------------------------------------------
// Errors. The Python bindings map ValueError -> ValueError, TypeError -> TypeError.
struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
// A failed file operation, with the C errno that caused it (ENOENT, EACCES, ...).
// The Python bindings raise OSError(errno, message, path): FileNotFoundError,
// PermissionError, IsADirectoryError ... as the errno says.
struct FileError : std::runtime_error {
  FileError(const std::string& message, int error_number, std::string file)
      : std::runtime_error(message), errno_value(error_number), path(std::move(file)) {}
  int errno_value;
  std::string path;
};

// ---------------------------------------------------------------------------
// Instruction-set levels, ordered: a level implies every lower one.
enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // throws ValueError

struct CpuInfo {
  std::string arch;           // "x86_64", "aarch64", ...
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false, popcnt = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false,
       avx512vpopcntdq = false;
  bool avx512vnni = false, avxvnni = false;  // vpdpbusd on zmm (AVX512-VNNI) / ymm (AVX-VNNI)
  Isa detected = Isa::scalar;  // best level this CPU (and OS) supports
  Isa compiled = Isa::scalar;  // best level this build contains
  Isa active = Isa::scalar;    // level the kernels use now
  std::string forced;          // value of KEENSIGHT_ISA at start-up, "" if unset
  bool forced_valid = false;   // whether `forced` names a level (case-insensitive);
                               // an unknown name forces nothing
};

// Detected once (thread-safe). active = min(detected, compiled, KEENSIGHT_ISA).
const CpuInfo& cpu_info_at_startup();
CpuInfo cpu_info();

// The level every dispatching kernel uses now.
Isa active_isa();
// Lower (or restore) the active level for the whole process, like a thread setting.
// Levels above what the CPU and build support are clamped. Returns the level set.
Isa set_isa(Isa isa);

// ---------------------------------------------------------------------------
// Threads (OpenMP). n <= 0 restores the default (OMP_NUM_THREADS or all cores);
// n above kMaxThreads is clamped to it.
constexpr int kMaxThreads = 256;
void set_num_threads(int n);
int get_num_threads();
bool has_openmp();

// ---------------------------------------------------------------------------
// Pixel depths and image views. Rows may be padded (any positive row stride);
// within a row the pixels are contiguous and channels are interleaved.
enum class Depth : int { u8 = 0, u16 = 1, s16 = 2, f32 = 3 };

const char* depth_name(Depth d);
std::size_t depth_size(Depth d);

struct ImageView {
  void* data = nullptr;
  Depth depth = Depth::u8;
  std::int64_t rows = 0, cols = 0, channels = 1;
  std::int64_t row_stride = 0;  // bytes between the starts of consecutive rows

  std::int64_t row_elems() const { return cols * channels; }
  std::uint8_t* row(std::int64_t y) const {
    return static_cast<std::uint8_t*>(data) + y * row_stride;
  }
};

// Throws ValueError naming `what` if the view is empty or its strides overlap rows.
void check_image(const ImageView& v, const char* what);

}  // namespace keensight
