// Internal: the leaf kernels of the filters area and their per-ISA dispatch table.
//
// Every filter reduces to a few row operations on float32 rows:
//   load_row        a source row of any depth -> float32
//   store_row       float32 * scale + delta -> destination depth (round to nearest even,
//                   saturate); scale 1 skips the multiply
//   accumulate_taps dst[x] (+)= sum_t c[t] * p[t][x]: one output row as a weighted sum of
//                   shifted input rows. A horizontal pass points every p[t] into the same
//                   padded row at offset t*channels; a vertical pass points p[t] at ring rows;
//                   a direct 2-D pass does both.
//   accumulate_pairs dst[x] (+)= sum_t c[t] * (p[t][x] + sign * q[t][x]): the same for
//                   symmetric (sign +1) and antisymmetric (sign -1) kernels, whose mirrored
//                   taps share one coefficient; half the multiplies move to the add ports.
//   column_pairs_x2 two consecutive rows of a mirrored column pass with every tap present
//                   (ksize <= kMaxColumnPairsX2): dst0[x] = sum_{t < (ksize+1)/2} c[t] *
//                   (rows[t][x] +- rows[ksize-1-t][x]), dst1 the same from rows[t + 1];
//                   rows has ksize + 1 entries. The same sums, in the same order, as two
//                   accumulate_pairs calls; SIMD kernels load each input row once for both.
//   magnitude       dst = sqrt(a^2 + b^2) or |a| + |b|
//   symmetric3x3    a 3x3 kernel with the square's symmetries (both Laplacians, box, sharpen):
//                   dst[x] = corner * (4 corners) + edge * (4 edge neighbours) + center * mid[x];
//                   up/mid/down point at the centre column, neighbours are +-step away.
//                   Zero coefficients skip their loads (as zero taps are dropped elsewhere).
//   `stream` (taps, pairs, symmetric3x3): a hint that dst is a large output no one
//                   reads soon; SIMD kernels then write it with non-temporal stores
//                   (no read-for-ownership of the destination lines). Ignored when
//                   accumulating. Results are identical either way. The kernels do not
//                   fence: the caller calls stream_fence() once its rows are written
//                   (before another thread may read them), not after every row.
//
// The integer path for uint8 sources (16-bit lanes: twice the pixels per
// instruction of float32), used for kernels that are exact in integers:
//   hpass_u8        h[x] = sum_t k[t] * src[x + off[t]] in 16 bits. Mode `fixed_point`:
//                   unsigned with saturation (OpenCV's ufixedpoint16 row sums), stored
//                   biased by -32768 so that the column pass can use signed 16-bit
//                   multiply-adds; otherwise signed, the caller guarantees no overflow.
//   vpass_s16_u8    dst[x] = sat_u8((sum_i k[i] * h_i[x] + bias) >> 16)
//   vpass_s16_f32   dst[x] = float(sum_i k[i] * h_i[x]) * scale + delta
//   vpass_s16_magnitude  dst[x] = |(a[x], b[x])| (L2 or L1) of two such column sums
//
// OpenCV's bit-exact uint16 Gaussian (run_gaussian_u16; ufixedpoint32 taps, units
// of 2^-16), columns first. The kernels are odd and symmetric: coeffs hold taps
// 0 .. ksize/2, the last one the centre, and tap i also weighs row/column
// ksize-1-i. Both passes are exact integer sums, so any order (SIMD lanes, FMA or
// not) gives the same bits:
//   gauss_column_u16 dst[x] = sum_i c[i] * rows[i][x] as a double. Summed in uint32,
//                   which may wrap on the way but not at the end: the taps sum to 2^16,
//                   so the sum is at most 65535 * 2^16 < 2^32.
//   gauss_row_u16   dst[x] = min(65535, floor(sum_j c[j] * src[x + j*step] / 2^32 + 1/2)),
//                   summed in double: every term and partial sum is an integer below
//                   2^49, exact in a double's 53 bits.
//
// The FFT path for large kernels (run_fft in engine.cpp), on split re/im planes:
//   fft_columns     one radix-2 FFT of length `rows` down every column of a rows x cols
//                   plane (rows already in bit-reversed order); columns are independent, so
//                   a vector holds 8 of them and every butterfly is plain SIMD.
//   complex_multiply (or, oi) = (ar, ai) * (br, bi), elementwise
//   transpose_planes dst row row_order[x] = column x of src, for the two n x n planes
//                   of a complex tile (n a multiple of 8)
#pragma once

#include <cmath>
#include <cstdint>

#include "keensight/core.hpp"

namespace keensight::filters::detail {

struct FilterKernels {
  void (*load_row)(const void* src, Depth depth, std::int64_t n, float* dst);
  void (*store_row)(const float* src, std::int64_t n, float scale, float delta, Depth depth,
                    void* dst);
  void (*accumulate_taps)(const float* const* ptrs, const float* coeffs, int ntaps,
                          std::int64_t n, float* dst, bool accumulate, bool stream);
  void (*accumulate_pairs)(const float* const* p, const float* const* q, const float* coeffs,
                           int npairs, bool subtract, std::int64_t n, float* dst, bool accumulate,
                           bool stream);
  void (*magnitude)(const float* a, const float* b, std::int64_t n, bool l1, float* dst);
  void (*hpass_u8)(const std::uint8_t* src, const std::int64_t* offsets, const std::int16_t* coeffs,
                   int ntaps, std::int64_t n, bool fixed_point, std::int16_t* dst);
  void (*vpass_s16_u8)(const std::int16_t* const* rows, const std::int16_t* coeffs, int ntaps,
                       std::int64_t n, std::int32_t bias, std::uint8_t* dst);
  void (*vpass_s16_f32)(const std::int16_t* const* rows, const std::int16_t* coeffs, int ntaps,
                        std::int64_t n, float scale, float delta, float* dst);
  void (*vpass_s16_magnitude)(const std::int16_t* const* rows_a, const std::int16_t* coeffs_a,
                              int ntaps_a, const std::int16_t* const* rows_b,
                              const std::int16_t* coeffs_b, int ntaps_b, std::int64_t n, bool l1,
                              float* dst);
  void (*fft_columns)(float* re, float* im, std::int64_t rows, std::int64_t cols,
                      const float* twiddle_re, const float* twiddle_im);
  void (*complex_multiply)(const float* ar, const float* ai, const float* br, const float* bi,
                           std::int64_t n, float* out_re, float* out_im);
  void (*transpose_planes)(const float* src_re, const float* src_im, std::int64_t n,
                           const int* row_order, float* dst_re, float* dst_im);
  void (*column_pairs_x2)(const float* const* rows, int ksize, const float* coeffs, bool subtract,
                          std::int64_t n, float* dst0, float* dst1);
  void (*symmetric3x3)(const float* up, const float* mid, const float* down, std::int64_t n,
                       std::int64_t step, float corner, float edge, float center, float* dst,
                       bool stream);
  void (*gauss_column_u16)(const std::uint16_t* const* rows, int ksize, const std::uint32_t* coeffs,
                           std::int64_t n, double* dst);
  void (*gauss_row_u16)(const double* src, int ksize, std::int64_t step, const double* coeffs,
                        std::int64_t n, std::uint16_t* dst);
};

// One element of gauss_column_u16 / gauss_row_u16: the scalar reference, and the
// tails of the SIMD kernels.
inline double gauss_column_u16_at(const std::uint16_t* const* rows, int ksize,
                                  const std::uint32_t* coeffs, std::int64_t x) {
  const int half = ksize / 2;
  std::uint32_t acc = coeffs[half] * rows[half][x];
  for (int i = 0; i < half; ++i)
    acc += coeffs[i] * (static_cast<std::uint32_t>(rows[i][x]) + rows[ksize - 1 - i][x]);
  return static_cast<double>(acc);
}

inline std::uint16_t gauss_row_u16_at(const double* src, int ksize, std::int64_t step,
                                      const double* coeffs, std::int64_t x) {
  const int half = ksize / 2;
  double acc = coeffs[half] * src[x + half * step];
  for (int j = 0; j < half; ++j) acc += coeffs[j] * (src[x + j * step] + src[x + (ksize - 1 - j) * step]);
  const double r = std::floor(acc * 0x1p-32 + 0.5);
  return static_cast<std::uint16_t>(r < 65535.0 ? r : 65535.0);
}

// Fills every field of table t, by name, from the functions of the same names in
// the translation unit that expands it (the scalar and AVX2 files define the whole
// set; the AVX-512 table starts from the AVX2 one and replaces some).
#define KEENSIGHT_FILL_FILTER_KERNELS(t) \
  (t).load_row = load_row; \
  (t).store_row = store_row; \
  (t).accumulate_taps = accumulate_taps; \
  (t).accumulate_pairs = accumulate_pairs; \
  (t).magnitude = magnitude; \
  (t).hpass_u8 = hpass_u8; \
  (t).vpass_s16_u8 = vpass_s16_u8; \
  (t).vpass_s16_f32 = vpass_s16_f32; \
  (t).vpass_s16_magnitude = vpass_s16_magnitude; \
  (t).fft_columns = fft_columns; \
  (t).complex_multiply = complex_multiply; \
  (t).transpose_planes = transpose_planes; \
  (t).column_pairs_x2 = column_pairs_x2; \
  (t).symmetric3x3 = symmetric3x3; \
  (t).gauss_column_u16 = gauss_column_u16; \
  (t).gauss_row_u16 = gauss_row_u16
// A field added to FilterKernels must be added to the list above too.
static_assert(sizeof(FilterKernels) == 16 * sizeof(void (*)()), "KEENSIGHT_FILL_FILTER_KERNELS lists every field");

// One table per ISA; the *_avx2 / *_avx512 tables exist only when the build has them.
const FilterKernels& filter_kernels_scalar();
#ifdef KEENSIGHT_HAVE_AVX2
const FilterKernels& filter_kernels_avx2();
#endif
#ifdef KEENSIGHT_HAVE_AVX512
const FilterKernels& filter_kernels_avx512();
#endif

// The table the kernels use now (core/dispatch.hpp: the best enabled level this area has).
const FilterKernels& filter_kernels();
// The table `isa` falls back to along its chain, among the levels this build has.
const FilterKernels& filter_kernels(Isa isa);

// Largest column kernel column_pairs_x2 takes.
constexpr int kMaxColumnPairsX2 = 15;

// column_pairs_x2 as two accumulate_pairs calls of `k` (the scalar and AVX2 kernels).
void column_pairs_x2_by_rows(const FilterKernels& k, const float* const* rows, int ksize,
                             const float* coeffs, bool subtract, std::int64_t n, float* dst0,
                             float* dst1);

// Orders this thread's non-temporal stores before its later stores (x86 SFENCE).
void stream_fence();

// Float bounds of each integer depth, used to saturate before rounding.
inline void depth_bounds(Depth d, float& lo, float& hi) {
  switch (d) {
    case Depth::u8: lo = 0.f; hi = 255.f; return;
    case Depth::u16: lo = 0.f; hi = 65535.f; return;
    case Depth::s16: lo = -32768.f; hi = 32767.f; return;
    case Depth::f32: lo = -3.402823466e38f; hi = 3.402823466e38f; return;
  }
}

}  // namespace keensight::filters::detail
