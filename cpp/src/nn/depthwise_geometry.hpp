// Internal: the geometry the depthwise kernels of every ISA share (which taps of a
// window lie inside the input, which output columns have all of theirs inside).
// Internal linkage on purpose: each per-ISA file compiles its own copy with its own
// flags, so the linker never picks an AVX-512 copy of an inline helper for the
// scalar path (one definition per translation unit, none shared).
#pragma once

#include <algorithm>
#include <cstdint>

namespace keensight::nn::detail {
namespace {

// Taps [lo, hi) of a window of `taps` taps: tap k reads position origin + k * dilation,
// which must lie in [0, extent). Empty (lo == hi) when none does.
struct TapRange {
  int lo = 0, hi = 0;
};

inline TapRange tap_range(std::int64_t origin, int dilation, int taps, std::int64_t extent) {
  TapRange r;
  r.lo = origin >= 0 ? 0 : static_cast<int>(std::min<std::int64_t>(taps, (-origin + dilation - 1) / dilation));
  const std::int64_t last = extent - 1 - origin;  // the largest k * dilation inside
  r.hi = last < 0 ? 0 : static_cast<int>(std::min<std::int64_t>(taps, last / dilation + 1));
  r.hi = std::max(r.hi, r.lo);
  return r;
}

// Output positions [lo, hi) of [0, out_extent) whose whole window (`taps` taps,
// dilation, stride, padding pad_begin) lies inside [0, in_extent); 0 <= lo <= hi <= out_extent.
struct Interior {
  std::int64_t lo = 0, hi = 0;
};

inline Interior interior_range(std::int64_t out_extent, std::int64_t in_extent, int taps, int stride, int dilation,
                               int pad_begin) {
  Interior r;
  r.lo = std::min<std::int64_t>(out_extent, (pad_begin + stride - 1) / stride);
  // x * stride - pad_begin + (taps - 1) * dilation <= in_extent - 1
  const std::int64_t room = in_extent - 1 - static_cast<std::int64_t>(taps - 1) * dilation + pad_begin;
  const std::int64_t hi = room < 0 ? 0 : room / stride + 1;
  r.hi = std::max(r.lo, std::min(out_extent, hi));
  return r;
}

}  // namespace
}  // namespace keensight::nn::detail
