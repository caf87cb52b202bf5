// Internal: the leaf kernels of the filters area and their per-ISA dispatch table.
//
// Every filter reduces to a few row operations on float32 rows:
//   load_row        a source row of any depth -> float32
//   store_row       float32 + delta -> destination depth (round to nearest even, saturate)
//   accumulate_taps dst[x] (+)= sum_t c[t] * p[t][x]: one output row as a weighted sum of
//                   shifted input rows. A horizontal pass points every p[t] into the same
//                   padded row at offset t*channels; a vertical pass points p[t] at ring rows;
//                   a direct 2-D pass does both.
//   magnitude       dst = sqrt(a^2 + b^2) or |a| + |b|
#pragma once

#include <cstdint>

#include "keensight/core.hpp"

namespace keensight::filters_detail {

struct FilterKernels {
  void (*load_row)(const void* src, Depth depth, std::int64_t n, float* dst);
  void (*store_row)(const float* src, std::int64_t n, float delta, Depth depth, void* dst);
  void (*accumulate_taps)(const float* const* ptrs, const float* coeffs, int ntaps,
                          std::int64_t n, float* dst, bool accumulate);
  void (*magnitude)(const float* a, const float* b, std::int64_t n, bool l1, float* dst);
};

// One table per ISA; the *_avx2 table exists only when the build has AVX2.
const FilterKernels& filter_kernels_scalar();
#ifdef KEENSIGHT_HAVE_AVX2
const FilterKernels& filter_kernels_avx2();
#endif

// The table for the active ISA level.
const FilterKernels& filter_kernels();
// The table for a given level (clamped to what this build has).
const FilterKernels& filter_kernels(Isa isa);

// Float bounds of each integer depth, used to saturate before rounding.
inline void depth_bounds(Depth d, float& lo, float& hi) {
  switch (d) {
    case Depth::u8: lo = 0.f; hi = 255.f; return;
    case Depth::u16: lo = 0.f; hi = 65535.f; return;
    case Depth::s16: lo = -32768.f; hi = 32767.f; return;
    case Depth::f32: lo = -3.402823466e38f; hi = 3.402823466e38f; return;
  }
}

}  // namespace keensight::filters_detail
