// Internal: the register-blocked depthwise convolution, written once over a vector
// type V and instantiated by depthwise_avx2.cpp (8 floats) and depthwise_avx512.cpp
// (16 floats); include it only from those files (it compiles to their ISA).
//
// NHWC, vectorised over channels: a vector holds one pixel's channels [ch, ch + lanes).
// Loop order: output row, then channel block, then column tiles, so that the kh input
// rows a row reads stay in L1/L2 while every channel block walks them.
//
// Interior columns (every tap inside the input) go through dw_tile<K, S, T>: T output
// columns of one row in T accumulator registers; for each kernel row ky its K weight
// vectors are loaded once and the S (T - 1) + K input vectors of that row stream
// through, each one feeding every output of the tile whose window covers it (up to
// K of them at stride 1): no bounds check, no per-pixel edge code. The tile loops
// over the rows [ky_lo, ky_hi) that lie inside the input, so the top and bottom
// border rows run the same tiles. Border columns go through dw_pixel, which skips
// the taps outside the input. Both do, for each output, acc = bias and then
// acc = fma(input, weight, acc) tap by tap in (ky, kx) order: the scalar
// reference's arithmetic, bit for bit (nn/kernels.hpp).
//
// V provides: Vec, Mask, Act (broadcast activation), kLanes, tail_mask(n),
// load<Tail>(p, m), store<Tail>(p, v, m), fma(a, b, acc), activate(act, v).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "nn/depthwise_geometry.hpp"
#include "nn/kernels.hpp"

namespace keensight::nn::detail {
namespace {

// T output columns x0 .. x0 + T - 1 of one row, one channel block: rows[ky] points at
// input row ky of the window, channel ch (column 0); ix0 = x0 * S - pad_left; w at
// weights + ch; out at output column x0, channel ch. Checked: the tile has border
// columns, and the input columns outside [0, in_w) are skipped (a runtime test per
// input column and kernel row); unchecked, every tap lies inside the input.
template <class V, int K, int S, int T, bool Tail, bool Checked>
inline void dw_tile(const float* const* rows, int ky_lo, int ky_hi, std::int64_t ix0, std::int64_t in_w,
                    std::int64_t c, const float* w, typename V::Vec bias, typename V::Mask m,
                    const typename V::Act& act, float* out) {
  using Vec = typename V::Vec;
  constexpr int kInputs = S * (T - 1) + K;  // input columns the tile reads
  int j_lo = 0, j_hi = kInputs;
  if constexpr (Checked) {
    j_lo = static_cast<int>(std::max<std::int64_t>(0, -ix0));
    j_hi = static_cast<int>(std::min<std::int64_t>(kInputs, in_w - ix0));
  }
  Vec acc[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = bias;
  for (int ky = ky_lo; ky < ky_hi; ++ky) {
    const float* row = rows[ky];
    const float* wp = w + static_cast<std::int64_t>(ky) * K * c;
    Vec wk[K];
#pragma GCC unroll 8
    for (int kx = 0; kx < K; ++kx) wk[kx] = V::template load<Tail>(wp + kx * c, m);
#pragma GCC unroll 64
    for (int j = 0; j < kInputs; ++j) {
      if (Checked && (j < j_lo || j >= j_hi)) continue;
      const Vec v = V::template load<Tail>(row + (ix0 + j) * c, m);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const int kx = j - S * t;  // compile-time after unrolling
        if (kx >= 0 && kx < K) acc[t] = V::fma(v, wk[kx], acc[t]);
      }
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) V::template store<Tail>(out + t * c, V::activate(act, acc[t]), m);
}

// dw_tile of `width` columns, 1 <= width <= W.
template <class V, int K, int S, int W, bool Tail, bool Checked>
inline void dw_tile_width(int width, const float* const* rows, int ky_lo, int ky_hi, std::int64_t ix0,
                          std::int64_t in_w, std::int64_t c, const float* w, typename V::Vec bias, typename V::Mask m,
                          const typename V::Act& act, float* out) {
  if constexpr (W >= 1) {
    if (width == W) return dw_tile<V, K, S, W, Tail, Checked>(rows, ky_lo, ky_hi, ix0, in_w, c, w, bias, m, act, out);
    dw_tile_width<V, K, S, W - 1, Tail, Checked>(width, rows, ky_lo, ky_hi, ix0, in_w, c, w, bias, m, act, out);
  }
}

// One output pixel, one channel block, taps [ry.lo, ry.hi) x [rx.lo, rx.hi) only;
// rows[ky] + ch points at input row ky of the window, column 0, channel ch.
template <class V, bool Tail>
inline void dw_pixel(const float* const* rows, std::int64_t ch, TapRange ry, TapRange rx, std::int64_t ix0,
                     int dilation_w, int kw, std::int64_t c, const float* w, typename V::Vec bias, typename V::Mask m,
                     const typename V::Act& act, float* out) {
  typename V::Vec acc = bias;
  for (int ky = ry.lo; ky < ry.hi; ++ky) {
    const float* ip = rows[ky] + ch + ix0 * c;
    const float* wp = w + static_cast<std::int64_t>(ky) * kw * c;
    for (int kx = rx.lo; kx < rx.hi; ++kx)
      acc = V::fma(V::template load<Tail>(ip + static_cast<std::int64_t>(kx) * dilation_w * c, m),
                   V::template load<Tail>(wp + kx * c, m), acc);
  }
  V::template store<Tail>(out, V::activate(act, acc), m);
}

// One row, one channel block [ch, ch + lanes) (Tail: the last, partial one); rows[ky]
// points at input row ky of the window (column 0, channel 0), out_row at the output row.
// K > 0: the row in ceil(out_w / T) tiles of balanced widths (<= T), checked where
// they hold border columns (outside `cols`); K = 0: pixel by pixel.
template <class V, int K, int S, int T, bool Tail>
inline void dw_row_block(const ConvShape& s, const float* const* rows, TapRange ry, Interior cols, std::int64_t ch,
                         const DepthwiseArgs& a, typename V::Mask m, const typename V::Act& act, float* out_row) {
  const std::int64_t c = s.in_c;
  const float* w = a.weights + ch;
  const typename V::Vec bias = V::template load<Tail>(a.bias + ch, m);
  const float* block_rows[K > 0 ? K : 1];
  if constexpr (K > 0) {
    for (int ky = ry.lo; ky < ry.hi; ++ky) block_rows[ky] = rows[ky] + ch;
    const std::int64_t tiles = (s.out_w + T - 1) / T, base = s.out_w / tiles, wider = s.out_w % tiles;
    std::int64_t x = 0;
    for (std::int64_t i = 0; i < tiles; ++i) {
      const int width = static_cast<int>(base + (i < wider ? 1 : 0));
      const std::int64_t ix0 = x * S - s.pad_left;
      float* out = out_row + x * c + ch;
      if (x >= cols.lo && x + width <= cols.hi)
        dw_tile_width<V, K, S, T, Tail, false>(width, block_rows, ry.lo, ry.hi, ix0, s.in_w, c, w, bias, m, act, out);
      else
        dw_tile_width<V, K, S, T, Tail, true>(width, block_rows, ry.lo, ry.hi, ix0, s.in_w, c, w, bias, m, act, out);
      x += width;
    }
  } else {
    for (std::int64_t x = 0; x < s.out_w; ++x) {
      const std::int64_t ix0 = x * s.stride_w - s.pad_left;
      dw_pixel<V, Tail>(rows, ch, ry, tap_range(ix0, s.dilation_w, s.kw, s.in_w), ix0, s.dilation_w, s.kw, c, w, bias,
                        m, act, out_row + x * c + ch);
    }
  }
}

// Output rows [y0, y1). K, S > 0: the fixed-shape entry (kh = kw = K, stride S both
// ways, dilation 1) with T-column tiles; K = 0: any shape, pixel by pixel.
template <class V, int K, int S, int T>
void dw_rows(const DepthwiseArgs& a, std::int64_t y0, std::int64_t y1) {
  const ConvShape& s = *a.shape;
  const std::int64_t c = s.in_c;
  const typename V::Act act(a.act);
  const typename V::Mask tail = V::tail_mask(c % V::kLanes);
  const std::int64_t full_end = c - c % V::kLanes;
  const Interior cols = interior_range(s.out_w, s.in_w, s.kw, s.stride_w, s.dilation_w, s.pad_left);
  std::vector<const float*> rows(static_cast<std::size_t>(s.kh));
  for (std::int64_t y = y0; y < y1; ++y) {
    const std::int64_t iy0 = y * s.stride_h - s.pad_top;
    const TapRange ry = tap_range(iy0, s.dilation_h, s.kh, s.in_h);
    for (int ky = ry.lo; ky < ry.hi; ++ky)
      rows[static_cast<std::size_t>(ky)] =
          a.in + (iy0 + static_cast<std::int64_t>(ky) * s.dilation_h - a.in_row0) * s.in_w * c;
    float* out_row = a.out + (y - a.out_row0) * s.out_w * c;
    std::int64_t ch = 0;
    for (; ch < full_end; ch += V::kLanes)
      dw_row_block<V, K, S, T, false>(s, rows.data(), ry, cols, ch, a, tail, act, out_row);
    if (ch < c) dw_row_block<V, K, S, T, true>(s, rows.data(), ry, cols, ch, a, tail, act, out_row);
  }
}

}  // namespace
}  // namespace keensight::nn::detail
