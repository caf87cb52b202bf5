// Internal: which taps of a pooling / convolution window lie inside the input, one
// axis at a time. Output index o's window starts at origin = o * stride - pad and its
// tap k sits at origin + k * dilation; the taps inside [0, in) are k in [first, last).
// Computing the range once per row and per column is what lets the kernels run their
// tap loops with no bounds check.
#pragma once

#include <algorithm>
#include <cstdint>

namespace keensight::nn::detail {

struct TapRange {
  std::int64_t origin = 0;  // input index of tap 0 (may be negative: padding)
  int first = 0, last = 0;  // taps [first, last) are inside the input; first == last: none
};

// Taps k in [0, taps) with lo <= origin + k * dilation < hi.
inline TapRange taps_within(std::int64_t origin, int dilation, int taps, std::int64_t lo, std::int64_t hi) {
  TapRange r;
  r.origin = origin;
  const std::int64_t d = dilation;
  const std::int64_t first = origin >= lo ? 0 : (lo - origin + d - 1) / d;
  const std::int64_t last = origin >= hi ? 0 : (hi - origin + d - 1) / d;
  r.first = static_cast<int>(std::min<std::int64_t>(first, taps));
  r.last = static_cast<int>(std::max<std::int64_t>(r.first, std::min<std::int64_t>(last, taps)));
  return r;
}

inline TapRange tap_range(std::int64_t out_index, int stride, int pad_begin, int dilation, int taps,
                          std::int64_t in_size) {
  return taps_within(out_index * stride - pad_begin, dilation, taps, 0, in_size);
}

// The number of taps inside the padded input [-pad_begin, in_size + pad_end)
// (AveragePool's count_include_pad divisor along one axis).
inline int padded_tap_count(std::int64_t out_index, int stride, int pad_begin, int pad_end, int dilation, int taps,
                            std::int64_t in_size) {
  const TapRange r = taps_within(out_index * stride - pad_begin, dilation, taps, -pad_begin, in_size + pad_end);
  return r.last - r.first;
}

// Output rows [y0, y1) (y0 < y1) read the input rows [first, last), clipped to the
// input: what a caller running the kernels over a strip of rows must hold.
struct RowSpan {
  std::int64_t first = 0, last = 0;
};
inline RowSpan input_rows_for(std::int64_t y0, std::int64_t y1, int stride, int pad_begin, int dilation, int taps,
                              std::int64_t in_size) {
  RowSpan span;
  span.first = std::max<std::int64_t>(0, y0 * stride - pad_begin);
  span.last = std::min<std::int64_t>(in_size, (y1 - 1) * stride - pad_begin + std::int64_t(taps - 1) * dilation + 1);
  span.last = std::max(span.first, span.last);
  return span;
}

// The ONNX output size along one axis (Conv, MaxPool, AveragePool):
//   floor mode: floor((in + pad_begin + pad_end - ((taps - 1) * dilation + 1)) / stride) + 1
//   ceil mode:  the same with ceil, less one if the last window would start at or past
//               in + pad_begin (the last window must start inside the input or the
//               left padding; ONNX's rule, as ONNX Runtime).
// Returns <= 0 when the window is larger than the padded input.
inline std::int64_t window_output_size(std::int64_t in, int taps, int stride, int pad_begin, int pad_end, int dilation,
                                       bool ceil_mode) {
  const std::int64_t span = in + pad_begin + pad_end - (std::int64_t(taps - 1) * dilation + 1);
  if (span < 0) return 0;
  std::int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad_begin) --out;
  return out;
}

}  // namespace keensight::nn::detail
