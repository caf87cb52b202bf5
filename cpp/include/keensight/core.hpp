// keensight core: errors, CPU feature detection and ISA dispatch levels, threads,
// and the plain image and tensor views that every kernel takes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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
// Instruction-set levels. A level is a SET of CPU features, not a point on a line:
// a CPU may have avx512_vpopcntdq without avx512_vnni (or the reverse), and
// avx512_vnni does not imply avx2_vnni (AVX-VNNI is the separate VEX encoding).
//   scalar            plain C++ (always)
//   avx2              AVX2 + FMA + F16C + POPCNT
//   avx2_vnni         avx2 + AVX-VNNI (CPUID.(7,1):EAX[4])
//   avx512            avx2 + AVX-512 F/BW/DQ/VL
//   avx512_vnni       avx512 + AVX512_VNNI (CPUID.(7,0):ECX[11])
//   avx512_vpopcntdq  avx512 + AVX512_VPOPCNTDQ (CPUID.(7,0):ECX[14])
// Level L *includes* level M when M's features are a subset of L's. Inclusion forms a
// tree rooted at scalar, so the levels a level includes form one chain, its fallback
// chain: avx512_vnni -> avx512 -> avx2 -> scalar, avx2_vnni -> avx2 -> scalar.
// "Best" is the enum order (a later level is preferred); it decides what `active`
// reports and, between incomparable levels, which table an area picks.
enum class Isa : int { scalar = 0, avx2 = 1, avx2_vnni = 2, avx512 = 3, avx512_vnni = 4, avx512_vpopcntdq = 5 };
constexpr int kIsaCount = 6;

// A set of levels, one bit per level.
struct IsaSet {
  std::uint32_t bits = 0;
  constexpr bool contains(Isa isa) const { return (bits >> static_cast<int>(isa)) & 1u; }
  constexpr IsaSet with(Isa isa) const { return IsaSet{bits | (1u << static_cast<int>(isa))}; }
  constexpr IsaSet operator&(IsaSet o) const { return IsaSet{bits & o.bits}; }
  constexpr bool operator==(IsaSet o) const { return bits == o.bits; }
  constexpr bool operator!=(IsaSet o) const { return bits != o.bits; }
  // The best level in the set (scalar for the empty set).
  Isa best() const;
};

const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // case-insensitive; throws ValueError naming the choices
// The levels `isa` includes: its fallback chain, itself included.
IsaSet isa_chain(Isa isa);
inline bool isa_includes(Isa level, Isa other) { return isa_chain(level).contains(other); }

struct CpuInfo {
  std::string arch;           // "x86_64", "aarch64", ...
  // Features, each true only when the OS saves the register state it needs (XSAVE).
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false, popcnt = false,
       bmi1 = false, bmi2 = false, avxvnni = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512cd = false,
       avx512vnni = false, avx512vpopcntdq = false, avx512bitalg = false, avx512vbmi = false;
  // Every feature above by name ("sse4_2", "avx2", "avxvnni", "avx512vnni", ...).
  std::vector<std::pair<const char*, bool>> features() const;

  IsaSet levels;               // levels this CPU (and OS) has
  IsaSet compiled_levels;      // levels this build can compile kernels for
  IsaSet enabled;              // levels the kernels may use now (see set_isa)
  Isa detected = Isa::scalar;  // best level this CPU (and OS) has
  Isa compiled = Isa::scalar;  // best level this build contains
  Isa active = Isa::scalar;    // best enabled level
  std::string forced;          // value of KEENSIGHT_ISA at start-up, "" if unset
  bool forced_valid = false;   // whether `forced` names a level (case-insensitive);
                               // an unknown name forces nothing
};

// Detected once (thread-safe). With KEENSIGHT_ISA unset, every level the CPU has and
// the build contains is enabled; KEENSIGHT_ISA=<level> acts as set_isa(<level>).
const CpuInfo& cpu_info_at_startup();
CpuInfo cpu_info();

// The levels dispatching kernels may use now, and the best of them.
IsaSet enabled_isas();
Isa active_isa();
// Restricts (or restores) the kernels to `isa`'s fallback chain, for the whole process,
// like a thread setting. A level the CPU or build lacks is clamped to the best level of
// its chain that both have. Setting the best level both have restores the start-up
// default: every usable level enabled (so set_isa(active_isa()) never loses a level;
// on a CPU with avx512_vnni and avx512_vpopcntdq both stay enabled). Returns the
// level set, which active_isa() then reports.
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

// ---------------------------------------------------------------------------
// Batched NCHW tensors (the CNN engine's activations; ONNX layout). Element types of
// float and quantized layers. Strides are in ELEMENTS (not bytes), one per axis, so a
// view of a transposed or cropped array (NHWC memory seen as NCHW, a channel slice)
// needs no copy; a dense NCHW tensor has strides (c*h*w, h*w, w, 1).
enum class DType : int { f32 = 0, u8 = 1, s8 = 2, s32 = 3 };

const char* dtype_name(DType t);
std::size_t dtype_size(DType t);

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::f32;
  std::int64_t n = 0, c = 0, h = 0, w = 0;
  std::int64_t stride_n = 0, stride_c = 0, stride_h = 0, stride_w = 0;  // elements

  // A dense NCHW view of `data`.
  static TensorView contiguous(void* data, DType dtype, std::int64_t n, std::int64_t c, std::int64_t h,
                               std::int64_t w) {
    return TensorView{data, dtype, n, c, h, w, c * h * w, h * w, w, 1};
  }
  std::int64_t elements() const { return n * c * h * w; }
  // Offset in elements of (in, ic, iy, ix) from data.
  std::int64_t offset(std::int64_t in, std::int64_t ic, std::int64_t iy, std::int64_t ix) const {
    return in * stride_n + ic * stride_c + iy * stride_h + ix * stride_w;
  }
  void* at(std::int64_t in, std::int64_t ic, std::int64_t iy, std::int64_t ix) const {
    return static_cast<std::uint8_t*>(data) +
           offset(in, ic, iy, ix) * static_cast<std::int64_t>(dtype_size(dtype));
  }
  template <class T>
  T* ptr(std::int64_t in, std::int64_t ic, std::int64_t iy, std::int64_t ix) const {
    return static_cast<T*>(at(in, ic, iy, ix));
  }
  // Dense NCHW: strides (c*h*w, h*w, w, 1), where axes of extent 1 may have any stride.
  bool is_contiguous() const;
};

// Throws ValueError naming `what` if the view has no data, an empty or negative extent,
// a negative stride, strides under which two elements share memory (or axes
// interleave), or a byte span that overflows std::int64_t.
void check_tensor(const TensorView& v, const char* what);

}  // namespace keensight
