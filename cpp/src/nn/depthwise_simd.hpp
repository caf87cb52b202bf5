// Internal: the register-blocked depthwise convolution, written once over a vector
// type V and instantiated by depthwise_avx2.cpp (8 floats) and depthwise_avx512.cpp
// (16 floats); include it only from those files (it compiles to their ISA).
//
// NHWC, vectorised over channels: a vector holds one pixel's channels [ch, ch + lanes),
// the last block masked when c % lanes != 0.
//
// The fixed-shape entries (dw_rows_fixed<K, S, T>) compute register tiles of T output
// columns, and of two output rows where V has the registers (dw_tile2; AVX-512): the
// accumulators stay in registers, each kernel row's K weight vectors are loaded once
// per tile, and the S (T - 1) + K input vectors of each input row stream through,
// each one feeding every output of the tile whose window covers it (up to K of them
// at stride 1, and both rows of a pair). Tiles loop over the kernel rows that lie
// inside the input, so the top and bottom border rows run the same code. A tile whose
// columns are all interior (every tap inside the input) has no bounds check at all;
// a border tile skips the input columns outside [0, in_w) with a test per input
// column and kernel row, the same for every channel block of the tile (predicted).
// dwconv_any (dw_rows_any) goes pixel by pixel over the taps inside the input.
// All do, for each output, acc = bias and then acc = fma(input, weight, acc) tap by
// tap in (ky, kx) order, then the activation: the scalar reference's arithmetic, bit
// for bit (nn/kernels.hpp).
//
// V provides: Vec, Mask, Act (broadcast activation), kLanes, tail_mask(n),
// load<Tail>(p, m), store<Tail>(p, v, m), fma(a, b, acc), activate(act, v).
#pragma once

#include <algorithm>
#include <type_traits>
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

// One kernel row's contribution to a pair of output rows (A = y, B = y + 1) of a
// two-row tile: union row u of the pair's window is kernel row u of A (when On_A) and
// u - S of B (when On_B); each input vector loaded feeds both rows' accumulators.
template <class V, int K, int S, int T, bool Tail, bool Checked, bool On_A, bool On_B>
inline void dw_tile2_row(const float* row, int u, int j_lo, int j_hi, std::int64_t ix0, std::int64_t c,
                         const float* w, typename V::Mask m, typename V::Vec* acc_a, typename V::Vec* acc_b) {
  using Vec = typename V::Vec;
  constexpr int kInputs = S * (T - 1) + K;
  Vec wa[K], wb[K];
#pragma GCC unroll 8
  for (int kx = 0; kx < K; ++kx) {
    if (On_A) wa[kx] = V::template load<Tail>(w + (static_cast<std::int64_t>(u) * K + kx) * c, m);
    if (On_B) wb[kx] = V::template load<Tail>(w + (static_cast<std::int64_t>(u - S) * K + kx) * c, m);
  }
#pragma GCC unroll 64
  for (int j = 0; j < kInputs; ++j) {
    if (Checked && (j < j_lo || j >= j_hi)) continue;
    const Vec v = V::template load<Tail>(row + (ix0 + j) * c, m);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const int kx = j - S * t;
      if (kx >= 0 && kx < K) {
        if (On_A) acc_a[t] = V::fma(v, wa[kx], acc_a[t]);
        if (On_B) acc_b[t] = V::fma(v, wb[kx], acc_b[t]);
      }
    }
  }
}

// T output columns of two consecutive output rows y, y + 1 (dw_tile's arguments, with
// urows[u] the input rows y S - pad_top + u, u in [u_lo, u_hi) inside the input).
// Union rows u < S feed only A, u >= K only B: three phases, so every tap of each
// output is still added in (ky, kx) order.
template <class V, int K, int S, int T, bool Tail, bool Checked>
inline void dw_tile2(const float* const* urows, int u_lo, int u_hi, std::int64_t ix0, std::int64_t in_w,
                     std::int64_t c, const float* w, typename V::Vec bias, typename V::Mask m,
                     const typename V::Act& act, float* out_a, float* out_b) {
  using Vec = typename V::Vec;
  constexpr int kInputs = S * (T - 1) + K;
  int j_lo = 0, j_hi = kInputs;
  if constexpr (Checked) {
    j_lo = static_cast<int>(std::max<std::int64_t>(0, -ix0));
    j_hi = static_cast<int>(std::min<std::int64_t>(kInputs, in_w - ix0));
  }
  Vec acc_a[T], acc_b[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc_a[t] = acc_b[t] = bias;
  int u = u_lo;
  for (; u < u_hi && u < S; ++u)
    dw_tile2_row<V, K, S, T, Tail, Checked, true, false>(urows[u], u, j_lo, j_hi, ix0, c, w, m, acc_a, acc_b);
  for (; u < u_hi && u < K; ++u)
    dw_tile2_row<V, K, S, T, Tail, Checked, true, true>(urows[u], u, j_lo, j_hi, ix0, c, w, m, acc_a, acc_b);
  for (; u < u_hi; ++u)
    dw_tile2_row<V, K, S, T, Tail, Checked, false, true>(urows[u], u, j_lo, j_hi, ix0, c, w, m, acc_a, acc_b);
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) {
    V::template store<Tail>(out_a + t * c, V::activate(act, acc_a[t]), m);
    V::template store<Tail>(out_b + t * c, V::activate(act, acc_b[t]), m);
  }
}

template <class V, int K, int S, int W, bool Tail, bool Checked>
inline void dw_tile2_width(int width, const float* const* urows, int u_lo, int u_hi, std::int64_t ix0,
                           std::int64_t in_w, std::int64_t c, const float* w, typename V::Vec bias,
                           typename V::Mask m, const typename V::Act& act, float* out_a, float* out_b) {
  if constexpr (W >= 1) {
    if (width == W)
      return dw_tile2<V, K, S, W, Tail, Checked>(urows, u_lo, u_hi, ix0, in_w, c, w, bias, m, act, out_a, out_b);
    dw_tile2_width<V, K, S, W - 1, Tail, Checked>(width, urows, u_lo, u_hi, ix0, in_w, c, w, bias, m, act, out_a,
                                                  out_b);
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

// The column tiles of a row: ceil(out_w / T) tiles of balanced widths (<= T, so no
// narrow leftover tile), each checked when it holds border columns (outside `cols`).
// fn(x, width, checked) runs one.
template <int T, class Fn>
inline void for_each_column_tile(std::int64_t out_w, Interior cols, Fn&& fn) {
  const std::int64_t tiles = (out_w + T - 1) / T, base = out_w / tiles, wider = out_w % tiles;
  std::int64_t x = 0;
  for (std::int64_t i = 0; i < tiles; ++i) {
    const int width = static_cast<int>(base + (i < wider ? 1 : 0));
    fn(x, width, !(x >= cols.lo && x + width <= cols.hi));
    x += width;
  }
}

// Every channel block of one tile: the full blocks, then the masked tail block.
// fn(ch, std::integral_constant<bool, Tail>) runs one.
template <class V, class Fn>
inline void for_each_channel_block(std::int64_t c, Fn&& fn) {
  const std::int64_t full_end = c - c % V::kLanes;
  std::int64_t ch = 0;
  for (; ch < full_end; ch += V::kLanes) fn(ch, std::false_type{});
  if (ch < c) fn(ch, std::true_type{});
}

// Output rows [y0, y1) of a fixed-shape entry (kh = kw = K, stride S both ways,
// dilation 1): two rows at a time with dw_tile2 where V has the registers
// (V::kRowPairs), else (and for a last odd row) one at a time with dw_tile.
//
// Loop order: row (pair), then column tile, then channel block. A tile of T columns
// reads S (T - 1) + K pixels of K (+ S) rows; walking all channel blocks of that
// patch before moving right streams each input row through memory in order and
// keeps the patch in L1 for the next tile's overlap. Measured against channel block
// outside column tiles (interleaved, every benchmark shape): faster or equal on all,
// by 10-20% on the large maps (32 x 112 x 112, 144 x 56 x 56) and on C >= 480 at 7x7 / 14x14.
template <class V, int K, int S, int T>
void dw_rows_fixed(const DepthwiseArgs& a, std::int64_t y0, std::int64_t y1) {
  const ConvShape& s = *a.shape;
  const std::int64_t c = s.in_c;
  const typename V::Act act(a.act);
  const typename V::Mask tail = V::tail_mask(c % V::kLanes);
  const Interior cols = interior_range(s.out_w, s.in_w, K, S, 1, s.pad_left);
  const float* urows[K + S];       // input rows y S - pad_top + u of the window (a pair: the union of both)
  const float* block_rows[K + S];  // the same, at channel ch
  const auto input_row = [&](std::int64_t iy) { return a.in + (iy - a.in_row0) * s.in_w * c; };
  std::int64_t y = y0;
  if constexpr (V::kRowPairs) {
    for (; y + 2 <= y1; y += 2) {
      const std::int64_t iy0 = y * S - s.pad_top;
      const TapRange ru = tap_range(iy0, 1, K + S, s.in_h);
      for (int u = ru.lo; u < ru.hi; ++u) urows[u] = input_row(iy0 + u);
      float* out_a = a.out + (y - a.out_row0) * s.out_w * c;
      float* out_b = out_a + s.out_w * c;
      for_each_column_tile<T>(s.out_w, cols, [&](std::int64_t x, int width, bool checked) {
        const std::int64_t ix0 = x * S - s.pad_left;
        for_each_channel_block<V>(c, [&](std::int64_t ch, auto tail_tag) {
          constexpr bool kTail = decltype(tail_tag)::value;
          for (int u = ru.lo; u < ru.hi; ++u) block_rows[u] = urows[u] + ch;
          const typename V::Vec bias = V::template load<kTail>(a.bias + ch, tail);
          float* oa = out_a + x * c + ch;
          float* ob = out_b + x * c + ch;
          if (checked)
            dw_tile2_width<V, K, S, T, kTail, true>(width, block_rows, ru.lo, ru.hi, ix0, s.in_w, c, a.weights + ch,
                                                    bias, tail, act, oa, ob);
          else
            dw_tile2_width<V, K, S, T, kTail, false>(width, block_rows, ru.lo, ru.hi, ix0, s.in_w, c, a.weights + ch,
                                                     bias, tail, act, oa, ob);
        });
      });
    }
  }
  for (; y < y1; ++y) {
    const std::int64_t iy0 = y * S - s.pad_top;
    const TapRange ry = tap_range(iy0, 1, K, s.in_h);
    for (int ky = ry.lo; ky < ry.hi; ++ky) urows[ky] = input_row(iy0 + ky);
    float* out_row = a.out + (y - a.out_row0) * s.out_w * c;
    for_each_column_tile<T>(s.out_w, cols, [&](std::int64_t x, int width, bool checked) {
      const std::int64_t ix0 = x * S - s.pad_left;
      for_each_channel_block<V>(c, [&](std::int64_t ch, auto tail_tag) {
        constexpr bool kTail = decltype(tail_tag)::value;
        for (int ky = ry.lo; ky < ry.hi; ++ky) block_rows[ky] = urows[ky] + ch;
        const typename V::Vec bias = V::template load<kTail>(a.bias + ch, tail);
        float* out = out_row + x * c + ch;
        if (checked)
          dw_tile_width<V, K, S, T, kTail, true>(width, block_rows, ry.lo, ry.hi, ix0, s.in_w, c, a.weights + ch, bias,
                                                 tail, act, out);
        else
          dw_tile_width<V, K, S, T, kTail, false>(width, block_rows, ry.lo, ry.hi, ix0, s.in_w, c, a.weights + ch,
                                                  bias, tail, act, out);
      });
    });
  }
}

// Output rows [y0, y1) of any shape (dwconv_any): pixel by pixel, each channel block
// over the taps inside the input.
template <class V>
void dw_rows_any(const DepthwiseArgs& a, std::int64_t y0, std::int64_t y1) {
  const ConvShape& s = *a.shape;
  const std::int64_t c = s.in_c;
  const typename V::Act act(a.act);
  const typename V::Mask tail = V::tail_mask(c % V::kLanes);
  std::vector<const float*> rows(static_cast<std::size_t>(s.kh));
  for (std::int64_t y = y0; y < y1; ++y) {
    const std::int64_t iy0 = y * s.stride_h - s.pad_top;
    const TapRange ry = tap_range(iy0, s.dilation_h, s.kh, s.in_h);
    for (int ky = ry.lo; ky < ry.hi; ++ky)
      rows[static_cast<std::size_t>(ky)] =
          a.in + (iy0 + static_cast<std::int64_t>(ky) * s.dilation_h - a.in_row0) * s.in_w * c;
    float* out_row = a.out + (y - a.out_row0) * s.out_w * c;
    for (std::int64_t x = 0; x < s.out_w; ++x) {
      const std::int64_t ix0 = x * s.stride_w - s.pad_left;
      const TapRange rx = tap_range(ix0, s.dilation_w, s.kw, s.in_w);
      for_each_channel_block<V>(c, [&](std::int64_t ch, auto tail_tag) {
        constexpr bool kTail = decltype(tail_tag)::value;
        dw_pixel<V, kTail>(rows.data(), ch, ry, rx, ix0, s.dilation_w, s.kw, c, a.weights + ch,
                           V::template load<kTail>(a.bias + ch, tail), tail, act, out_row + x * c + ch);
      });
    }
  }
}

}  // namespace
}  // namespace keensight::nn::detail
