// Internal: the nn ops kernels written once over a vector type, instantiated by
// ops_avx2.cpp (8 floats) and ops_avx512.cpp (16 floats), each with its own ISA flags.
// Include it only from a per-ISA file, after defining the vector traits V in an
// anonymous namespace: every instantiation then has internal linkage, so no AVX-512
// code can be picked by the linker for the AVX2 table.
//
// V provides: W (floats a vector), Reg, Mask, tail_mask(n) (the first n lanes),
// load / store (full), load_tail / store_tail (masked), set1, zero, add, mul, div, fma
// (fused), max(a, b) (a > b ? a : b, b when either is NaN: the scalar `v > m ? v : m`),
// nan_merge(flag, v) / nan_apply(m, flag) (remember a NaN tap, make the result NaN), and
// the activation: Act (an Activation with its constants broadcast, built once a call) and
// act(Act, Reg), from the area's activation_<isa>.hpp.
//
// Every kernel does the scalar reference's operations (ops_scalar.cpp) in the same
// order on each lane: vectors run across channels (pools, elementwise) or output
// channels (conv_direct), never across the summed taps.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "nn/kernels.hpp"
#include "nn/pool_window.hpp"

namespace keensight::nn::detail {
namespace {

// A vector of channels: the last one of a block is masked when TAIL.
template <class V, bool Masked>
inline typename V::Reg load_lanes(const float* p, typename V::Mask m) {
  if constexpr (Masked) return V::load_tail(p, m);
  else return V::load(p);
}
template <class V, bool Masked>
inline void store_lanes(float* p, typename V::Reg v, typename V::Mask m) {
  if constexpr (Masked) V::store_tail(p, v, m);
  else V::store(p, v);
}

// Channels are done in blocks of up to kBlock vectors (accumulators stay in registers
// across the taps); fn.template operator()<NV, TAIL>(ch0, tail_mask) runs one block.
constexpr int kBlock = 4;
template <class V, class Fn>
inline void for_channel_blocks(std::int64_t c, Fn&& fn) {
  constexpr std::int64_t span = std::int64_t(kBlock) * V::W;
  std::int64_t ch = 0;
  const typename V::Mask full = V::tail_mask(V::W);
  for (; ch + span <= c; ch += span) fn.template run<kBlock, false>(ch, full);
  const std::int64_t rest = c - ch;
  if (rest == 0) return;
  const int nv = static_cast<int>((rest + V::W - 1) / V::W);
  const typename V::Mask tail = V::tail_mask(static_cast<int>(rest - std::int64_t(nv - 1) * V::W));
  switch (nv) {
    case 1: fn.template run<1, true>(ch, tail); break;
    case 2: fn.template run<2, true>(ch, tail); break;
    case 3: fn.template run<3, true>(ch, tail); break;
    default: fn.template run<4, true>(ch, tail); break;
  }
}

// ---------------------------------------------------------------------------
// Flat elementwise ops: full vectors, then one masked tail.

template <class V, class Op>
inline void elementwise(std::int64_t n, Op&& op) {
  std::int64_t i = 0;
  for (; i + V::W <= n; i += V::W) op(i, V::tail_mask(V::W), std::false_type{});
  if (i < n) op(i, V::tail_mask(static_cast<int>(n - i)), std::true_type{});
}

template <class V>
void activate_simd(const Activation& act, const float* x, float* y, std::int64_t n) {
  const typename V::Act va(act);
  elementwise<V>(n, [&](std::int64_t i, typename V::Mask m, auto masked) {
    constexpr bool M = decltype(masked)::value;
    store_lanes<V, M>(y + i, V::act(va, load_lanes<V, M>(x + i, m)), m);
  });
}

template <class V>
void add_simd(const float* a, const float* b, float* y, std::int64_t n, const Activation& act) {
  const typename V::Act va(act);
  elementwise<V>(n, [&](std::int64_t i, typename V::Mask m, auto masked) {
    constexpr bool M = decltype(masked)::value;
    store_lanes<V, M>(y + i, V::act(va, V::add(load_lanes<V, M>(a + i, m), load_lanes<V, M>(b + i, m))), m);
  });
}

template <class V>
void mul_simd(const float* a, const float* b, float* y, std::int64_t n, const Activation& act) {
  const typename V::Act va(act);
  elementwise<V>(n, [&](std::int64_t i, typename V::Mask m, auto masked) {
    constexpr bool M = decltype(masked)::value;
    store_lanes<V, M>(y + i, V::act(va, V::mul(load_lanes<V, M>(a + i, m), load_lanes<V, M>(b + i, m))), m);
  });
}

// ---------------------------------------------------------------------------
// Per-channel affine over pixels (squeeze-excitation multiply, folded scale / shift).

template <class V>
struct ChannelAffineBlock {
  const float *x, *scale, *shift;
  float* y;
  std::int64_t pixels, c;
  const typename V::Act& va;
  template <int NV, bool TAIL>
  void run(std::int64_t ch0, typename V::Mask tail) const {
    typename V::Reg sc[NV], sh[NV];
    for (int j = 0; j < NV; ++j) {
      const bool last = TAIL && j == NV - 1;
      sc[j] = !scale ? V::zero() : last ? V::load_tail(scale + ch0 + j * V::W, tail) : V::load(scale + ch0 + j * V::W);
      sh[j] = !shift ? V::zero() : last ? V::load_tail(shift + ch0 + j * V::W, tail) : V::load(shift + ch0 + j * V::W);
    }
    for (std::int64_t p = 0; p < pixels; ++p) {
      const float* src = x + p * c + ch0;
      float* dst = y + p * c + ch0;
      for (int j = 0; j < NV; ++j) {
        const bool last = j == NV - 1;
        typename V::Reg v = (TAIL && last) ? V::load_tail(src + j * V::W, tail) : V::load(src + j * V::W);
        if (scale) v = V::mul(v, sc[j]);
        if (shift) v = V::add(v, sh[j]);
        v = V::act(va, v);
        if (TAIL && last) V::store_tail(dst + j * V::W, v, tail);
        else V::store(dst + j * V::W, v);
      }
    }
  }
};

template <class V>
void channel_affine_simd(const float* x, const float* scale, const float* shift, float* y, std::int64_t pixels,
                         std::int64_t c, const Activation& act) {
  const typename V::Act va(act);
  for_channel_blocks<V>(c, ChannelAffineBlock<V>{x, scale, shift, y, pixels, c, va});
}

// ---------------------------------------------------------------------------
// Global average pool: per channel, the pixels summed in order, times 1 / pixels.

template <class V>
struct GlobalAvgBlock {
  const float* x;
  std::int64_t pixels, c;
  float* y;
  template <int NV, bool TAIL>
  void run(std::int64_t ch0, typename V::Mask tail) const {
    typename V::Reg acc[NV];
    for (int j = 0; j < NV; ++j) acc[j] = V::zero();
    for (std::int64_t p = 0; p < pixels; ++p) {
      const float* src = x + p * c + ch0;
      for (int j = 0; j < NV; ++j)
        acc[j] = V::add(acc[j], (TAIL && j == NV - 1) ? V::load_tail(src + j * V::W, tail) : V::load(src + j * V::W));
    }
    const typename V::Reg inv = V::set1(1.f / static_cast<float>(pixels));
    for (int j = 0; j < NV; ++j) {
      const typename V::Reg v = V::mul(acc[j], inv);
      if (TAIL && j == NV - 1) V::store_tail(y + ch0 + j * V::W, v, tail);
      else V::store(y + ch0 + j * V::W, v);
    }
  }
};

template <class V>
void global_avg_pool_simd(const float* x, std::int64_t pixels, std::int64_t c, float* y) {
  for_channel_blocks<V>(c, GlobalAvgBlock<V>{x, pixels, c, y});
}

// ---------------------------------------------------------------------------
// Max / average pool. The tap ranges are computed once per row and per output
// column (pool_window.hpp), so the tap loops have no bounds checks.

template <class V, bool IsMax>
struct PoolPixelBlock {
  const PoolArgs& a;
  const TapRange& ry;
  const TapRange& rx;
  float divisor;  // average: the window's count
  std::int64_t x;  // output column
  float* out_row;
  template <int NV, bool TAIL>
  void run(std::int64_t ch0, typename V::Mask tail) const {
    const ConvShape& s = *a.shape;
    const std::int64_t c = s.in_c;
    typename V::Reg acc[NV], nan[NV];
    for (int j = 0; j < NV; ++j) {
      acc[j] = IsMax ? V::set1(-std::numeric_limits<float>::infinity()) : V::zero();
      nan[j] = V::zero();
    }
    for (int ky = ry.first; ky < ry.last; ++ky) {
      const float* row = a.in + (ry.origin + std::int64_t(ky) * s.dilation_h - a.in_row0) * s.in_w * c + ch0;
      for (int kx = rx.first; kx < rx.last; ++kx) {
        const float* px = row + (rx.origin + std::int64_t(kx) * s.dilation_w) * c;
        for (int j = 0; j < NV; ++j) {
          const typename V::Reg v =
              (TAIL && j == NV - 1) ? V::load_tail(px + j * V::W, tail) : V::load(px + j * V::W);
          if constexpr (IsMax) {
            nan[j] = V::nan_merge(nan[j], v);
            acc[j] = V::max(v, acc[j]);
          } else {
            acc[j] = V::add(acc[j], v);
          }
        }
      }
    }
    float* dst = out_row + x * c + ch0;
    const typename V::Reg div = V::set1(divisor);
    for (int j = 0; j < NV; ++j) {
      const typename V::Reg v = IsMax ? V::nan_apply(acc[j], nan[j]) : V::div(acc[j], div);
      if (TAIL && j == NV - 1) V::store_tail(dst + j * V::W, v, tail);
      else V::store(dst + j * V::W, v);
    }
  }
};

template <class V, bool IsMax>
void pool_simd(const PoolArgs& a, std::int64_t y0, std::int64_t y1) {
  const ConvShape& s = *a.shape;
  for (std::int64_t y = y0; y < y1; ++y) {
    const TapRange ry = tap_range(y, s.stride_h, s.pad_top, s.dilation_h, s.kh, s.in_h);
    const int count_y = a.count_include_pad
                            ? padded_tap_count(y, s.stride_h, s.pad_top, s.pad_bottom, s.dilation_h, s.kh, s.in_h)
                            : ry.last - ry.first;
    float* out_row = a.out + (y - a.out_row0) * s.out_w * s.in_c;
    for (std::int64_t x = 0; x < s.out_w; ++x) {
      const TapRange rx = tap_range(x, s.stride_w, s.pad_left, s.dilation_w, s.kw, s.in_w);
      const int count_x = a.count_include_pad
                              ? padded_tap_count(x, s.stride_w, s.pad_left, s.pad_right, s.dilation_w, s.kw, s.in_w)
                              : rx.last - rx.first;
      for_channel_blocks<V>(s.in_c, PoolPixelBlock<V, IsMax>{a, ry, rx, static_cast<float>(count_y * count_x), x,
                                                              out_row});
    }
  }
}

// ---------------------------------------------------------------------------
// Direct dense convolution (the stem). A register tile of PX output pixels of one
// row x NV vectors of output channels: per tap (ky, kx, i) NV weight vectors are
// loaded once and used by PX broadcast inputs, PX * NV independent FMA chains. Each
// accumulator sums its taps in the contract's order (ky, kx inside the input, then i).

template <class V, int PX, int NV, bool TAIL>
inline void conv_direct_tile(const DirectConvArgs& a, const typename V::Act& va, const TapRange& ry, std::int64_t x0, int kx0, int kx1,
                             std::int64_t oc0, typename V::Mask tail, float* out_row) {
  const ConvShape& s = *a.shape;
  const std::int64_t in_c = s.in_c, out_c = s.out_c;
  const std::int64_t col_step = std::int64_t(s.stride_w) * in_c;  // between the tile's pixels
  typename V::Reg acc[PX][NV];
  for (int j = 0; j < NV; ++j) {
    const typename V::Reg bias =
        (TAIL && j == NV - 1) ? V::load_tail(a.bias + oc0 + j * V::W, tail) : V::load(a.bias + oc0 + j * V::W);
    for (int p = 0; p < PX; ++p) acc[p][j] = bias;
  }
  const std::int64_t ix0 = x0 * s.stride_w - s.pad_left;
  for (int ky = ry.first; ky < ry.last; ++ky) {
    const float* row = a.in + (ry.origin + std::int64_t(ky) * s.dilation_h - a.in_row0) * s.in_w * in_c;
    for (int kx = kx0; kx < kx1; ++kx) {
      const float* px = row + (ix0 + std::int64_t(kx) * s.dilation_w) * in_c;
      const float* w = a.weights + (std::int64_t(ky) * s.kw + kx) * in_c * out_c + oc0;
      for (std::int64_t i = 0; i < in_c; ++i, w += out_c) {
        typename V::Reg wv[NV];
        for (int j = 0; j < NV; ++j)
          wv[j] = (TAIL && j == NV - 1) ? V::load_tail(w + j * V::W, tail) : V::load(w + j * V::W);
        for (int p = 0; p < PX; ++p) {
          const typename V::Reg xv = V::set1(px[p * col_step + i]);
          for (int j = 0; j < NV; ++j) acc[p][j] = V::fma(xv, wv[j], acc[p][j]);
        }
      }
    }
  }
  for (int p = 0; p < PX; ++p) {
    float* dst = out_row + (x0 + p) * out_c + oc0;
    for (int j = 0; j < NV; ++j) {
      const typename V::Reg v = V::act(va, acc[p][j]);
      if (TAIL && j == NV - 1) V::store_tail(dst + j * V::W, v, tail);
      else V::store(dst + j * V::W, v);
    }
  }
}

// One block of output channels over one output row: edge pixels (some kx taps in
// the padding) one at a time, the interior in tiles of PX pixels.
template <class V, int PX>
struct ConvDirectRowBlock {
  const DirectConvArgs& a;
  const typename V::Act& va;
  const TapRange& ry;
  std::int64_t xi0, xi1;  // interior output columns [xi0, xi1): every kx tap inside
  float* out_row;
  template <int NV, bool TAIL>
  void run(std::int64_t oc0, typename V::Mask tail) const {
    const ConvShape& s = *a.shape;
    const auto edge = [&](std::int64_t x) {
      const TapRange rx = tap_range(x, s.stride_w, s.pad_left, s.dilation_w, s.kw, s.in_w);
      // the tile indexes its input from x * stride - pad_left, as rx.origin
      conv_direct_tile<V, 1, NV, TAIL>(a, va, ry, x, rx.first, rx.last, oc0, tail, out_row);
    };
    std::int64_t x = 0;
    for (; x < xi0; ++x) edge(x);
    for (; x + PX <= xi1; x += PX) conv_direct_tile<V, PX, NV, TAIL>(a, va, ry, x, 0, s.kw, oc0, tail, out_row);
    for (; x < xi1; ++x) conv_direct_tile<V, 1, NV, TAIL>(a, va, ry, x, 0, s.kw, oc0, tail, out_row);
    for (; x < s.out_w; ++x) edge(x);
  }
};

// Output-channel blocks of up to NVMAX vectors (NVMAX * PX accumulators fit the
// register file with room for the weights and the broadcast input).
template <class V, int PX, int NVMAX>
void conv_direct_simd(const DirectConvArgs& a, std::int64_t y0, std::int64_t y1) {
  const ConvShape& s = *a.shape;
  // Interior columns: x * stride - pad_left >= 0 and x * stride - pad_left + (kw - 1) * dilation < in_w.
  const std::int64_t reach = std::int64_t(s.kw - 1) * s.dilation_w;
  std::int64_t xi0 = (s.pad_left + s.stride_w - 1) / s.stride_w;
  std::int64_t xi1 = s.in_w - 1 - reach + s.pad_left >= 0 ? (s.in_w - 1 - reach + s.pad_left) / s.stride_w + 1 : 0;
  xi0 = std::min<std::int64_t>(xi0, s.out_w);
  xi1 = std::max<std::int64_t>(xi0, std::min<std::int64_t>(xi1, s.out_w));
  constexpr std::int64_t span = std::int64_t(NVMAX) * V::W;
  const typename V::Act va(a.act);
  for (std::int64_t y = y0; y < y1; ++y) {
    const TapRange ry = tap_range(y, s.stride_h, s.pad_top, s.dilation_h, s.kh, s.in_h);
    float* out_row = a.out + (y - a.out_row0) * s.out_w * s.out_c;
    const ConvDirectRowBlock<V, PX> block{a, va, ry, xi0, xi1, out_row};
    std::int64_t oc = 0;
    for (; oc + span <= s.out_c; oc += span) block.template run<NVMAX, false>(oc, V::tail_mask(V::W));
    const std::int64_t rest = s.out_c - oc;
    if (rest == 0) continue;
    const int nv = static_cast<int>((rest + V::W - 1) / V::W);
    const typename V::Mask tail = V::tail_mask(static_cast<int>(rest - std::int64_t(nv - 1) * V::W));
    static_assert(NVMAX <= 4, "conv_direct blocks of up to 4 vectors");
    if (nv == 1) block.template run<1, true>(oc, tail);
    else if constexpr (NVMAX >= 2) {
      if (nv == 2) block.template run<2, true>(oc, tail);
      else if constexpr (NVMAX >= 3) {
        if (nv == 3) block.template run<3, true>(oc, tail);
        else if constexpr (NVMAX >= 4) block.template run<4, true>(oc, tail);
      }
    }
  }
}

// The table of one vector type.
template <class V, int ConvPX, int ConvNV>
OpsKernels make_ops_kernels() {
  OpsKernels t{};
  t.activate = activate_simd<V>;
  t.add = add_simd<V>;
  t.mul = mul_simd<V>;
  t.channel_affine = channel_affine_simd<V>;
  t.global_avg_pool = global_avg_pool_simd<V>;
  t.max_pool = pool_simd<V, true>;
  t.avg_pool = pool_simd<V, false>;
  t.conv_direct = conv_direct_simd<V, ConvPX, ConvNV>;
  return t;
}

}  // namespace
}  // namespace keensight::nn::detail
