// Internal: the leaf kernels of the preprocess area and their per-ISA dispatch table.
//
// An output row of the network input is made in two passes over the source:
//   vertical_u8     dst[i] = sum_t w[t] * rows[t][i]: the ntaps source rows (uint8,
//                   channels interleaved) that the output row's vertical taps cover,
//                   combined into one float32 row; only the crop's column span is read.
//                   Runs first because its inner loop is contiguous.
//   horizontal_store for every output pixel x and output channel c:
//                   v = sum_t w[t * n + x] * row[(start[x] + t) * channels + map[c]],
//                   then dst[c][x * step] = v * scale[c] + bias[c]; i.e. the horizontal
//                   taps, the channel reorder (map; gray: {0, 0, 0}), the normalisation
//                   ((v - mean) / std as v * scale + bias) and the layout (step 1: NCHW
//                   planes, step 3: NHWC pixels) in one loop. Weights are tap-major so
//                   that a vector of 8 outputs loads each tap's weights contiguously.
#pragma once

#include <cstdint>

#include "keensight/core.hpp"

namespace keensight::preprocess::detail {

struct PreprocessKernels {
  void (*vertical_u8)(const std::uint8_t* const* rows, const float* weights, int ntaps,
                      std::int64_t n, float* dst);
  void (*horizontal_store)(const float* row, int channels, const int* map,
                           const std::int32_t* start, const float* weights, int ntaps,
                           std::int64_t n, const float* scale, const float* bias,
                           float* const* dst, std::int64_t step);
};

const PreprocessKernels& preprocess_kernels_scalar();
#ifdef KEENSIGHT_HAVE_AVX2
const PreprocessKernels& preprocess_kernels_avx2();
#endif

// The table the kernels use now (core/dispatch.hpp), and the table `isa` falls back
// to along its chain.
const PreprocessKernels& preprocess_kernels();
const PreprocessKernels& preprocess_kernels(Isa isa);

}  // namespace keensight::preprocess::detail
