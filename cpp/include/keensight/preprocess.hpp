// keensight preprocess: uint8 photos -> a CNN's float32 input tensor in one pass.
//
// What a classification network expects of an image (torchvision / TF reference
// pipelines): resize so that the shorter side has a given length, take the centred
// crop of the network's input size, reorder the channels (RGB or BGR), normalise
// every channel as (pixel - mean) / std and lay the result out as NCHW or NHWC.
// preprocess_batch does all of it at once, writing straight into the batch tensor:
// the resized image is never materialised, only the crop window is computed, and the
// source pixels are read once (vertical pass on uint8 rows, then a horizontal pass
// that also normalises and stores).
//
// Resampling follows OpenCV's cv::resize of the whole image followed by the crop:
//   bilinear  INTER_LINEAR: source coordinate (x + 0.5) * scale - 0.5, two taps, edge
//             pixels replicated.
//   area      INTER_AREA when shrinking (scale > 1): every output pixel is the mean of
//             the source box [x * scale, (x + 1) * scale), partial pixels weighted by
//             their covered fraction (resizeArea); it does not alias when a 4000-pixel
//             photo becomes 256 pixels. On an axis that is enlarged it falls back to
//             bilinear (OpenCV's INTER_AREA enlarging differs slightly).
// Results equal cv2.resize + crop + NumPy normalisation up to OpenCV's uint8 rounding of
// the resized image (|difference| <= 0.5 / std) — keensight keeps the resized pixels in
// float32 and never rounds them.
#pragma once

#include <cstdint>

#include "keensight/core.hpp"

namespace keensight::preprocess {

enum class Interpolation : int { bilinear = 0, area = 1 };
enum class TensorLayout : int { nchw = 0, nhwc = 1 };

// How every image of a batch becomes the network's input.
struct PreprocessOptions {
  std::int64_t rows = 0, cols = 0;  // the network's input size
  // Length the image's shorter side is resized to (aspect kept) before the centred
  // rows x cols crop; must be >= max(rows, cols). 0: stretch the whole image to
  // rows x cols (no crop, aspect not kept).
  std::int64_t resize_shorter = 0;
  bool bgr = false;  // channel order the network wants: false RGB, true BGR
  // Per-channel (pixel - mean[c]) / std[c], pixel units (0..255), in the network's order.
  float mean[3] = {0.f, 0.f, 0.f};
  float std[3] = {1.f, 1.f, 1.f};
  Interpolation interpolation = Interpolation::area;
  TensorLayout layout = TensorLayout::nchw;
  // At most this many threads for the batch (0: keensight's setting). A caller that
  // already runs several batches side by side passes its share of the cores.
  int threads = 0;
};

// One source image: uint8, 1 (gray, copied to every channel) or 3 channels; any row stride.
struct PreprocessSource {
  ImageView image;
  bool bgr = false;  // channel order of a 3-channel image (OpenCV decodes BGR)
};

// The window of the resized image that becomes the input: the whole image is resized to
// resized_rows x resized_cols and rows x cols pixels from (crop_top, crop_left) are kept.
struct ResizeCrop {
  std::int64_t resized_rows = 0, resized_cols = 0;
  std::int64_t crop_top = 0, crop_left = 0;
};

// The geometry preprocess_batch uses for a src_rows x src_cols image: shorter side to
// resize_shorter, the longer one scaled and truncated (torchvision's Resize), crop
// offsets floor((resized - size) / 2). Throws ValueError on invalid options.
ResizeCrop resize_crop_geometry(std::int64_t src_rows, std::int64_t src_cols,
                                const PreprocessOptions& options);

// Throws ValueError if the options are inconsistent (sizes, std == 0, crop larger than
// the resized side).
void check_preprocess_options(const PreprocessOptions& options);

// Writes n images into dst, float32, contiguous: n x 3 x rows x cols (NCHW) or
// n x rows x cols x 3 (NHWC). Threads over images and output rows (OpenMP); results do
// not depend on the thread count. Throws ValueError / TypeError on bad sources.
void preprocess_batch(const PreprocessSource* sources, std::int64_t n,
                      const PreprocessOptions& options, float* dst);

}  // namespace keensight::preprocess
