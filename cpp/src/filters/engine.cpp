#include "filters/engine.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "core/parallel.hpp"
#include "filters/kernels.hpp"

namespace keensight {

std::int64_t border_index(std::int64_t p, std::int64_t len, Border border) {
  if (p >= 0 && p < len) return p;
  switch (border) {
    case Border::constant:
      return -1;
    case Border::replicate:
      return p < 0 ? 0 : len - 1;
    case Border::wrap:
      return ((p % len) + len) % len;
    case Border::reflect:
    case Border::reflect101: {
      // cv::borderInterpolate: reflect repeatedly until inside (images smaller
      // than the kernel need more than one reflection).
      if (len == 1) return 0;
      const std::int64_t delta = border == Border::reflect101 ? 1 : 0;
      do {
        if (p < 0)
          p = -p - 1 + delta;
        else
          p = len - 1 - (p - len) - delta;
      } while (p < 0 || p >= len);
      return p;
    }
  }
  return -1;
}

namespace filters_detail {
namespace {

// float buffer with 64-byte alignment; RAII.
struct FloatBuffer {
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  std::unique_ptr<float, Free> ptr;
  explicit FloatBuffer(std::int64_t n)
      : ptr(static_cast<float*>(::operator new[](static_cast<std::size_t>(std::max<std::int64_t>(n, 1)) * sizeof(float),
                                                 std::align_val_t(64)))) {}
  float* get() const { return ptr.get(); }
};

// Loads virtual source row vy (any integer; the border rule maps it into the
// image) as float32, extended by lpad pixels on the left and rpad on the right.
class PaddedRowLoader {
 public:
  PaddedRowLoader(const ImageView& src, const FilterOptions& opt, std::int64_t lpad,
                  std::int64_t rpad, const FilterKernels& k)
      : src_(src), border_(opt.border), value_(static_cast<float>(opt.border_value)), lpad_(lpad),
        rpad_(rpad), k_(k) {}

  std::int64_t padded_elems() const { return (src_.cols + lpad_ + rpad_) * src_.channels; }

  void fill(std::int64_t vy, float* row) const {
    const std::int64_t C = src_.channels, W = src_.cols;
    const std::int64_t y = border_index(vy, src_.rows, border_);
    if (y < 0) {
      std::fill(row, row + padded_elems(), value_);
      return;
    }
    k_.load_row(src_.row(y), src_.depth, W * C, row + lpad_ * C);
    for (std::int64_t p = 0; p < lpad_; ++p) fill_pixel(row, p, p - lpad_);
    for (std::int64_t p = 0; p < rpad_; ++p) fill_pixel(row, lpad_ + W + p, W + p);
  }

 private:
  void fill_pixel(float* row, std::int64_t at, std::int64_t x) const {
    const std::int64_t C = src_.channels;
    const std::int64_t sx = border_index(x, src_.cols, border_);
    if (sx < 0)
      std::fill(row + at * C, row + (at + 1) * C, value_);
    else
      std::memcpy(row + at * C, row + (lpad_ + sx) * C, static_cast<std::size_t>(C) * sizeof(float));
  }

  const ImageView& src_;
  Border border_;
  float value_;
  std::int64_t lpad_, rpad_;
  const FilterKernels& k_;
};

// kh rows of `width` floats indexed by virtual row number (mod kh). The caller
// asks for rows in increasing order; each is produced once by `produce`.
class RowRing {
 public:
  RowRing(int kh, std::int64_t width) : kh_(kh), width_(width), buf_(static_cast<std::int64_t>(kh) * width) {}
  float* slot(std::int64_t vy) const {
    const std::int64_t s = ((vy % kh_) + kh_) % kh_;
    return buf_.get() + s * width_;
  }

 private:
  int kh_;
  std::int64_t width_;
  FloatBuffer buf_;
};

struct Taps {
  std::vector<int> row;            // kernel row of each tap (vertical position)
  std::vector<std::int64_t> offset;  // element offset within a (padded) row
  std::vector<float> coeff;
};

// Non-zero taps of a kh x kw kernel for rows of interleaved channels.
Taps taps_2d(const Kernel2D& k, std::int64_t channels) {
  Taps t;
  for (int i = 0; i < k.rows; ++i)
    for (int j = 0; j < k.cols; ++j)
      if (k.at(i, j) != 0.f) {
        t.row.push_back(i);
        t.offset.push_back(j * channels);
        t.coeff.push_back(k.at(i, j));
      }
  return t;
}

Taps taps_1d(const std::vector<float>& k, std::int64_t step) {
  Taps t;
  for (std::size_t j = 0; j < k.size(); ++j)
    if (k[j] != 0.f) {
      t.row.push_back(static_cast<int>(j));
      t.offset.push_back(static_cast<std::int64_t>(j) * step);
      t.coeff.push_back(k[j]);
    }
  return t;
}

// Writes the float row `acc` to destination row y (acc may already be that row
// when the destination is float32).
void store_output(const FilterKernels& k, const ImageView& dst, std::int64_t y, const float* acc,
                  float delta) {
  void* out = dst.row(y);
  if (dst.depth == Depth::f32 && acc == static_cast<const float*>(out)) {
    if (delta != 0.f) k.store_row(acc, dst.row_elems(), delta, Depth::f32, out);
    return;
  }
  k.store_row(acc, dst.row_elems(), delta, dst.depth, out);
}

// Where to accumulate output row y: straight into a float32 destination, else a scratch row.
float* accumulator_row(const ImageView& dst, std::int64_t y, float* scratch) {
  return dst.depth == Depth::f32 ? reinterpret_cast<float*>(dst.row(y)) : scratch;
}

// Source and destination must not share memory: the rings read rows ahead of
// the row being written. Overlapping callers get a private copy of the source.
bool overlaps(const ImageView& a, const ImageView& b) {
  const auto* a0 = static_cast<const std::uint8_t*>(a.data);
  const auto* b0 = static_cast<const std::uint8_t*>(b.data);
  const auto* a1 = a0 + (a.rows - 1) * a.row_stride + a.row_elems() * depth_size(a.depth);
  const auto* b1 = b0 + (b.rows - 1) * b.row_stride + b.row_elems() * depth_size(b.depth);
  return a0 < b1 && b0 < a1;
}

struct SourceCopy {
  std::vector<std::uint8_t> bytes;
  ImageView view;
};

ImageView detach_source(const ImageView& src, const std::vector<ImageView>& dsts, SourceCopy& copy) {
  bool any = false;
  for (const ImageView& d : dsts) any = any || overlaps(src, d);
  if (!any) return src;
  const std::int64_t row_bytes = src.row_elems() * static_cast<std::int64_t>(depth_size(src.depth));
  copy.bytes.resize(static_cast<std::size_t>(row_bytes * src.rows));
  for (std::int64_t y = 0; y < src.rows; ++y)
    std::memcpy(copy.bytes.data() + y * row_bytes, src.row(y), static_cast<std::size_t>(row_bytes));
  copy.view = src;
  copy.view.data = copy.bytes.data();
  copy.view.row_stride = row_bytes;
  return copy.view;
}

// Bands smaller than this many rows are not worth a thread.
constexpr std::int64_t kMinRowsPerThread = 8;

}  // namespace

void check_pair(const ImageView& src, const ImageView& dst) {
  check_image(src, "src");
  check_image(dst, "dst");
  if (src.rows != dst.rows || src.cols != dst.cols || src.channels != dst.channels)
    throw ValueError("dst: expected the shape of src");
}

void check_options(const FilterOptions& opt, int kh, int kw) {
  if (opt.anchor_x < -1 || opt.anchor_x >= kw || opt.anchor_y < -1 || opt.anchor_y >= kh)
    throw ValueError("anchor: expected -1 (centre) or a position inside the " + std::to_string(kh) +
                     "x" + std::to_string(kw) + " kernel, got (" + std::to_string(opt.anchor_x) +
                     ", " + std::to_string(opt.anchor_y) + ")");
  const int b = static_cast<int>(opt.border);
  if (b < 0 || b > 4) throw ValueError("border: unknown border mode " + std::to_string(b));
  if (!std::isfinite(opt.delta)) throw ValueError("delta: expected a finite number");
  if (!std::isfinite(opt.border_value)) throw ValueError("border_value: expected a finite number");
}

void run_direct(const ImageView& src_in, const std::vector<ImageView>& dsts,
                const std::vector<Kernel2D>& kernels, const FilterOptions& opt) {
  const int kh = kernels.front().rows, kw = kernels.front().cols;
  const int ax = opt.anchor_x >= 0 ? opt.anchor_x : kw / 2;
  const int ay = opt.anchor_y >= 0 ? opt.anchor_y : kh / 2;
  const FilterKernels& k = filter_kernels();
  SourceCopy copy;
  const ImageView src = detach_source(src_in, dsts, copy);
  const std::int64_t n = src.row_elems();
  std::vector<Taps> taps;
  taps.reserve(kernels.size());
  for (const Kernel2D& kern : kernels) taps.push_back(taps_2d(kern, src.channels));
  const float delta = static_cast<float>(opt.delta);

  detail::parallel_chunks(src.rows, kMinRowsPerThread, [&](std::int64_t y0, std::int64_t y1) {
    PaddedRowLoader loader(src, opt, ax, kw - 1 - ax, k);
    RowRing ring(kh, loader.padded_elems());
    FloatBuffer scratch(n);
    std::vector<const float*> ptrs;
    std::int64_t next = y0 - ay;  // next virtual row to load
    for (std::int64_t y = y0; y < y1; ++y) {
      for (; next <= y - ay + kh - 1; ++next) loader.fill(next, ring.slot(next));
      for (std::size_t f = 0; f < kernels.size(); ++f) {
        const Taps& t = taps[f];
        ptrs.resize(t.coeff.size());
        for (std::size_t i = 0; i < t.coeff.size(); ++i)
          ptrs[i] = ring.slot(y - ay + t.row[i]) + t.offset[i];
        float* acc = accumulator_row(dsts[f], y, scratch.get());
        k.accumulate_taps(ptrs.data(), t.coeff.data(), static_cast<int>(t.coeff.size()), n, acc, false);
        store_output(k, dsts[f], y, acc, delta);
      }
    }
  });
}

void run_separable(const ImageView& src_in, const ImageView& dst,
                   const std::vector<std::vector<float>>& kx,
                   const std::vector<std::vector<float>>& ky, Combine combine,
                   const FilterOptions& opt) {
  const int kw = static_cast<int>(kx.front().size()), kh = static_cast<int>(ky.front().size());
  const int ax = opt.anchor_x >= 0 ? opt.anchor_x : kw / 2;
  const int ay = opt.anchor_y >= 0 ? opt.anchor_y : kh / 2;
  const std::size_t R = kx.size();
  const FilterKernels& k = filter_kernels();
  SourceCopy copy;
  const ImageView src = detach_source(src_in, {dst}, copy);
  const std::int64_t n = src.row_elems();
  std::vector<Taps> htaps, vtaps;
  for (std::size_t r = 0; r < R; ++r) {
    htaps.push_back(taps_1d(kx[r], src.channels));
    vtaps.push_back(taps_1d(ky[r], 0));
  }
  const float delta = static_cast<float>(opt.delta);

  detail::parallel_chunks(src.rows, kMinRowsPerThread, [&](std::int64_t y0, std::int64_t y1) {
    PaddedRowLoader loader(src, opt, ax, kw - 1 - ax, k);
    FloatBuffer padded(loader.padded_elems());
    std::vector<std::unique_ptr<RowRing>> rings;
    for (std::size_t r = 0; r < R; ++r) rings.push_back(std::make_unique<RowRing>(kh, n));
    FloatBuffer scratch(n), term_b(combine == Combine::sum ? 1 : n);
    std::vector<const float*> ptrs;
    std::int64_t next = y0 - ay;
    for (std::int64_t y = y0; y < y1; ++y) {
      for (; next <= y - ay + kh - 1; ++next) {
        loader.fill(next, padded.get());
        for (std::size_t r = 0; r < R; ++r) {
          const Taps& t = htaps[r];
          ptrs.resize(t.coeff.size());
          for (std::size_t i = 0; i < t.coeff.size(); ++i) ptrs[i] = padded.get() + t.offset[i];
          k.accumulate_taps(ptrs.data(), t.coeff.data(), static_cast<int>(t.coeff.size()), n,
                            rings[r]->slot(next), false);
        }
      }
      float* acc = accumulator_row(dst, y, scratch.get());
      for (std::size_t r = 0; r < R; ++r) {
        const Taps& t = vtaps[r];
        ptrs.resize(t.coeff.size());
        for (std::size_t i = 0; i < t.coeff.size(); ++i) ptrs[i] = rings[r]->slot(y - ay + t.row[i]);
        float* out = (combine != Combine::sum && r == 1) ? term_b.get() : acc;
        const bool accumulate = combine == Combine::sum && r > 0;
        k.accumulate_taps(ptrs.data(), t.coeff.data(), static_cast<int>(t.coeff.size()), n, out,
                          accumulate);
      }
      if (combine != Combine::sum) k.magnitude(acc, term_b.get(), n, combine == Combine::magnitude_l1, acc);
      store_output(k, dst, y, acc, delta);
    }
  });
}

}  // namespace filters_detail
}  // namespace keensight
