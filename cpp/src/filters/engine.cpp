#include "filters/engine.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "core/parallel.hpp"
#include "filters/kernels.hpp"

namespace keensight::filters {

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

namespace detail {
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

// Fills the lpad pixels left and rpad pixels right of a row's W interior
// pixels (at row + lpad*C) by the border rule: copies of interior pixels, or
// `value` for Border::constant.
template <class T>
void extend_row_border(T* row, std::int64_t W, std::int64_t C, std::int64_t lpad, std::int64_t rpad,
                       Border border, T value) {
  const auto fill_pixel = [&](std::int64_t at, std::int64_t x) {
    const std::int64_t sx = border_index(x, W, border);
    if (sx < 0)
      std::fill(row + at * C, row + (at + 1) * C, value);
    else
      std::memcpy(row + at * C, row + (lpad + sx) * C, static_cast<std::size_t>(C) * sizeof(T));
  };
  for (std::int64_t p = 0; p < lpad; ++p) fill_pixel(p, p - lpad);
  for (std::int64_t p = 0; p < rpad; ++p) fill_pixel(lpad + W + p, W + p);
}

// Loads virtual source row vy (any integer; the border rule maps it into the
// image), extended by lpad pixels on the left and rpad on the right: as float32
// (T = float, any source depth) or as raw bytes (T = uint8_t, uint8 sources).
template <class T>
class PaddedRowLoader {
 public:
  PaddedRowLoader(const ImageView& src, const FilterOptions& opt, std::int64_t lpad,
                  std::int64_t rpad, const FilterKernels& k)
      : src_(src), border_(opt.border), value_(border_value(opt.border_value)), lpad_(lpad),
        rpad_(rpad), k_(k) {}

  std::int64_t padded_elems() const { return (src_.cols + lpad_ + rpad_) * src_.channels; }

  void fill(std::int64_t vy, T* row) const {
    const std::int64_t C = src_.channels, W = src_.cols;
    const std::int64_t y = border_index(vy, src_.rows, border_);
    if (y < 0) {
      std::fill(row, row + padded_elems(), value_);
      return;
    }
    if constexpr (std::is_same_v<T, float>)
      k_.load_row(src_.row(y), src_.depth, W * C, row + lpad_ * C);
    else
      std::memcpy(row + lpad_ * C, src_.row(y), static_cast<std::size_t>(W * C) * sizeof(T));
    extend_row_border(row, W, C, lpad_, rpad_, border_, value_);
  }

 private:
  static T border_value(double v) {
    if constexpr (std::is_same_v<T, float>) {
      return static_cast<float>(v);
    } else {
      const double r = std::nearbyint(v);  // saturate_cast<uchar>
      return static_cast<T>(r < 0 ? 0 : (r > 255 ? 255 : r));
    }
  }

  const ImageView& src_;
  Border border_;
  T value_;
  std::int64_t lpad_, rpad_;
  const FilterKernels& k_;
};

// kh rows of `width` elements indexed by virtual row number (mod kh): the rows
// a vertical pass of kh taps needs, each produced once.
template <class T>
class RowRing {
 public:
  RowRing(int kh, std::int64_t width)
      : kh_(kh), width_(width), buf_(static_cast<std::size_t>(kh) * static_cast<std::size_t>(width)) {}
  T* slot(std::int64_t vy) {
    const std::int64_t s = ((vy % kh_) + kh_) % kh_;
    return buf_.data() + s * width_;
  }

 private:
  int kh_;
  std::int64_t width_;
  std::vector<T> buf_;
};

// The taps of one kernel as a pass runs them. A kernel that is symmetric (or
// antisymmetric) about its centre -- Gaussian, Sobel, Laplacian, Gabor with
// psi = 0 -- runs as pairs of mirrored taps c * (p +- q); others as plain taps.
// Zero taps are dropped either way.
struct TapPlan {
  bool paired = false, subtract = false;
  std::vector<int> row, row2;                 // kernel row of each tap (and its mirror)
  std::vector<std::int64_t> offset, offset2;  // element offset within a (padded) row
  std::vector<float> coeff;
};

// Plan for a rows x cols kernel (row-major values) whose column j sits at
// element offset j * step. Flat index t mirrors to n-1-t (point reflection).
TapPlan plan_taps(const float* v, int rows, int cols, std::int64_t step) {
  const int n = rows * cols;
  bool sym = true, anti = true;
  for (int t = 0; t < n; ++t) {
    sym = sym && v[t] == v[n - 1 - t];
    anti = anti && v[t] == -v[n - 1 - t];
  }
  TapPlan plan;
  plan.paired = sym || anti;
  plan.subtract = !sym;
  const int count = plan.paired ? (n + 1) / 2 : n;
  for (int t = 0; t < count; ++t) {
    float c = v[t];
    if (c == 0.f) continue;
    const int m = plan.paired ? n - 1 - t : t;
    if (plan.paired && m == t) c *= 0.5f;  // the centre: (c/2) * (p + p) == c * p exactly
    plan.row.push_back(t / cols);
    plan.offset.push_back((t % cols) * step);
    plan.row2.push_back(m / cols);
    plan.offset2.push_back((m % cols) * step);
    plan.coeff.push_back(c);
  }
  return plan;
}

// A 3x3 kernel with the square's symmetries (corners equal, edge neighbours equal):
// both Laplacians, box, sharpening. Such a kernel centred on its output runs as
// one symmetric3x3 pass: 3 coefficients, 5 or 9 loads per vector.
bool is_symmetric3x3(const Kernel2D& k) {
  if (k.rows != 3 || k.cols != 3) return false;
  const std::vector<float>& v = k.values;
  return v[0] == v[2] && v[0] == v[6] && v[0] == v[8] && v[1] == v[3] && v[1] == v[5] && v[1] == v[7];
}

TapPlan plan_2d(const Kernel2D& k, std::int64_t channels) {
  return plan_taps(k.values.data(), k.rows, k.cols, channels);
}
TapPlan plan_row(const std::vector<float>& k, std::int64_t channels) {
  return plan_taps(k.data(), 1, static_cast<int>(k.size()), channels);
}
TapPlan plan_column(const std::vector<float>& k) {
  return plan_taps(k.data(), static_cast<int>(k.size()), 1, 0);
}

// dst (+)= the plan applied to the rows row_of(i) (kernel row i -> float row).
template <class RowOf>
void apply_plan(const FilterKernels& k, const TapPlan& plan, RowOf&& row_of, std::int64_t n,
                float* dst, bool accumulate, std::vector<const float*>& p,
                std::vector<const float*>& q, bool stream = false) {
  const std::size_t m = plan.coeff.size();
  p.resize(m);
  for (std::size_t i = 0; i < m; ++i) p[i] = row_of(plan.row[i]) + plan.offset[i];
  if (!plan.paired) {
    k.accumulate_taps(p.data(), plan.coeff.data(), static_cast<int>(m), n, dst, accumulate, stream);
    return;
  }
  q.resize(m);
  for (std::size_t i = 0; i < m; ++i) q[i] = row_of(plan.row2[i]) + plan.offset2[i];
  k.accumulate_pairs(p.data(), q.data(), plan.coeff.data(), static_cast<int>(m), plan.subtract, n,
                     dst, accumulate, stream);
}

// Writes the float row `acc` to destination row y (acc may already be that row
// when the destination is float32).
void store_output(const FilterKernels& k, const ImageView& dst, std::int64_t y, const float* acc,
                  float scale, float delta) {
  void* out = dst.row(y);
  if (dst.depth == Depth::f32 && acc == static_cast<const float*>(out)) {
    if (scale != 1.f || delta != 0.f) k.store_row(acc, dst.row_elems(), scale, delta, Depth::f32, out);
    return;
  }
  k.store_row(acc, dst.row_elems(), scale, delta, dst.depth, out);
}

// Float32 outputs at least this large are written with non-temporal stores by
// the kernels that write them in one pass: they cannot stay in the private
// caches anyway, and skipping the read-for-ownership of every destination line
// saves a third of the memory traffic (1080p float32 on Zen 4, interleaved A/B:
// Laplacian 3x3 0.83 -> 1.07-1.33 x OpenCV, 11x11 Gaussian 0.88 -> 0.94, 3x3
// filter2D 1.25-1.33 -> 1.51-1.55). With a scale or delta the row is read back, so no.
constexpr std::int64_t kStreamBytes = std::int64_t{4} << 20;

bool stream_output(const ImageView& dst, float scale, float delta) {
  return dst.depth == Depth::f32 && scale == 1.f && delta == 0.f &&
         dst.rows * dst.row_elems() * static_cast<std::int64_t>(sizeof(float)) >= kStreamBytes;
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

// The anchor in kernel coordinates: -1 means the centre (ksize / 2), as in OpenCV.
std::pair<int, int> resolve_anchor(const FilterOptions& opt, int kh, int kw) {
  return {opt.anchor_x >= 0 ? opt.anchor_x : kw / 2, opt.anchor_y >= 0 ? opt.anchor_y : kh / 2};
}

// Bands smaller than this many rows are not worth a thread.
constexpr std::int64_t kMinRowsPerThread = 8;

// ---------------------------------------------------------------------------
// FFT path for large kernels: overlap-save correlation on T x T tiles (T a
// power of two). A tile holds T x T border-extended source pixels; its circular
// correlation with the zero-padded kernel equals the linear one on the
// (T - kh + 1) x (T - kw + 1) outputs whose window does not wrap, and those
// tile the image. Two horizontally adjacent tiles travel as the real and
// imaginary parts of one complex tile: the kernels are real, so the two results
// come back as the real and imaginary parts (half the transforms). The forward
// transform of a tile is shared by every kernel of a bank; each kernel costs
// one spectrum product and one inverse transform.
//
// A 2-D transform is two passes of the column FFT kernel: rows (put in
// bit-reversed order) are transformed down the columns, then a transpose
// (again into bit-reversed row order) and the second pass. The forward result
// is the spectrum transposed, which is all a pointwise product needs, and the
// inverse of a transposed spectrum comes out in normal orientation.

int bit_reverse(int v, int bits) {
  int r = 0;
  for (int b = 0; b < bits; ++b) r |= ((v >> b) & 1) << (bits - 1 - b);
  return r;
}

struct FftPlan {
  int size = 0;
  std::vector<int> bitrev;
  std::vector<float> fwd_re, fwd_im, inv_re, inv_im;  // exp(-+2 pi i k / size), k < size / 2

  explicit FftPlan(int t) : size(t), bitrev(static_cast<std::size_t>(t)) {
    int bits = 0;
    while ((1 << bits) < t) ++bits;
    for (int i = 0; i < t; ++i) bitrev[static_cast<std::size_t>(i)] = bit_reverse(i, bits);
    for (int k = 0; k < t / 2; ++k) {
      const double a = -2.0 * 3.14159265358979323846 * k / t;
      fwd_re.push_back(static_cast<float>(std::cos(a)));
      fwd_im.push_back(static_cast<float>(std::sin(a)));
      inv_re.push_back(static_cast<float>(std::cos(a)));
      inv_im.push_back(static_cast<float>(-std::sin(a)));
    }
  }
};

// 2-D transform of (re, im), whose rows are in bit-reversed order; the result
// lands in (out_re, out_im), transposed; (re, im) are clobbered.
void fft_2d(const FilterKernels& k, const FftPlan& plan, bool inverse, float* re, float* im,
            float* out_re, float* out_im) {
  const int t = plan.size;
  const float* wr = inverse ? plan.inv_re.data() : plan.fwd_re.data();
  const float* wi = inverse ? plan.inv_im.data() : plan.fwd_im.data();
  k.fft_columns(re, im, t, t, wr, wi);
  k.transpose_planes(re, im, t, plan.bitrev.data(), out_re, out_im);
  k.fft_columns(out_re, out_im, t, t, wr, wi);
}

// Tile size: about four times the kernel (most of a tile is then valid output),
// at most 256 (three complex planes stay in L2), smaller for small images.
int fft_tile_size(int kh, int kw, std::int64_t rows, std::int64_t cols) {
  const int kmax = std::max(kh, kw);
  int t = 16;
  while (t < 4 * kmax && t < 256) t <<= 1;
  while (t < 2 * kmax) t <<= 1;  // kernels beyond 128: tiles twice the kernel
  const std::int64_t need = std::max(rows + kh - 1, cols + kw - 1);
  while (t / 2 >= need && t / 2 > kmax) t >>= 1;
  return t;
}

void run_fft(const ImageView& src_in, const std::vector<ImageView>& dsts,
             const std::vector<Kernel2D>& kernels, const FilterOptions& opt, float scale) {
  const int kh = kernels.front().rows, kw = kernels.front().cols;
  const std::pair<int, int> anchor = resolve_anchor(opt, kh, kw);
  const int ax = anchor.first, ay = anchor.second;
  const FilterKernels& k = filter_kernels();
  SourceCopy copy;
  const ImageView src = detach_source(src_in, dsts, copy);
  const std::int64_t H = src.rows, W = src.cols, C = src.channels;
  const int T = fft_tile_size(kh, kw, H, W);
  const std::int64_t TT = static_cast<std::int64_t>(T) * T;
  const int V = T - kh + 1, U = T - kw + 1;  // valid outputs per tile
  const FftPlan plan(T);
  const int* bitrev = plan.bitrev.data();
  const float delta = static_cast<float>(opt.delta);

  // Conjugated kernel spectra, scaled by 1 / T^2 (the inverse transform's factor):
  // correlation is the product with the conjugate.
  std::vector<FloatBuffer> spec_re, spec_im;
  {
    FloatBuffer re(TT), im(TT);
    for (const Kernel2D& kern : kernels) {
      std::fill(re.get(), re.get() + TT, 0.f);
      std::fill(im.get(), im.get() + TT, 0.f);
      for (int r = 0; r < kh; ++r)
        std::memcpy(re.get() + static_cast<std::int64_t>(bitrev[r]) * T,
                    kern.values.data() + static_cast<std::size_t>(r) * kw,
                    static_cast<std::size_t>(kw) * sizeof(float));
      spec_re.emplace_back(TT);
      spec_im.emplace_back(TT);
      fft_2d(k, plan, false, re.get(), im.get(), spec_re.back().get(), spec_im.back().get());
      const float scale = 1.f / static_cast<float>(TT);
      for (std::int64_t i = 0; i < TT; ++i) {
        spec_re.back().get()[i] *= scale;
        spec_im.back().get()[i] *= -scale;
      }
    }
  }

  const std::int64_t tiles = (W + U - 1) / U, pairs = (tiles + 1) / 2;
  const std::int64_t bands = (H + V - 1) / V;
  // Loaded rows reach every tile's last column; the extra right padding only
  // feeds outputs beyond the image, which are dropped.
  const std::int64_t rpad = tiles * U + kw - 1 - ax - W;
  const std::int64_t last_useful_row = H - 1 + (kh - 1 - ay);

  keensight::detail::parallel_for(bands, 1, [&](std::int64_t b0, std::int64_t b1) {
    PaddedRowLoader<float> loader(src, opt, ax, rpad, k);
    const std::int64_t pw = loader.padded_elems();
    FloatBuffer rows(pw * T), re(TT), im(TT), fre(TT), fim(TT), ore(TT), oim(TT);
    std::vector<FloatBuffer> band_out;  // float rows of non-float32 destinations
    for (const ImageView& d : dsts) band_out.emplace_back(d.depth == Depth::f32 ? 1 : V * W * C);

    for (std::int64_t band = b0; band < b1; ++band) {
      const std::int64_t y0 = band * V, vrows = std::min<std::int64_t>(V, H - y0);
      for (int r = 0; r < T; ++r) {
        const std::int64_t vy = y0 - ay + r;
        if (vy <= last_useful_row)
          loader.fill(vy, rows.get() + r * pw);
        else
          std::fill(rows.get() + r * pw, rows.get() + (r + 1) * pw, 0.f);
      }
      for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t p = 0; p < pairs; ++p) {
          const std::int64_t ta = 2 * p, tb = 2 * p + 1;
          for (int r = 0; r < T; ++r) {
            const float* row = rows.get() + r * pw + c;
            float* dr = re.get() + static_cast<std::int64_t>(bitrev[r]) * T;
            float* di = im.get() + static_cast<std::int64_t>(bitrev[r]) * T;
            const float* a = row + ta * U * C;
            if (C == 1)
              std::memcpy(dr, a, static_cast<std::size_t>(T) * sizeof(float));
            else
              for (int x = 0; x < T; ++x) dr[x] = a[x * C];
            if (tb < tiles) {
              const float* b = row + tb * U * C;
              if (C == 1)
                std::memcpy(di, b, static_cast<std::size_t>(T) * sizeof(float));
              else
                for (int x = 0; x < T; ++x) di[x] = b[x * C];
            } else {
              std::fill(di, di + T, 0.f);
            }
          }
          fft_2d(k, plan, false, re.get(), im.get(), fre.get(), fim.get());
          for (std::size_t f = 0; f < kernels.size(); ++f) {
            for (int u = 0; u < T; ++u) {
              const std::int64_t o = static_cast<std::int64_t>(u) * T;
              const std::int64_t d = static_cast<std::int64_t>(bitrev[u]) * T;
              k.complex_multiply(fre.get() + o, fim.get() + o, spec_re[f].get() + o,
                                 spec_im[f].get() + o, T, re.get() + d, im.get() + d);
            }
            fft_2d(k, plan, true, re.get(), im.get(), ore.get(), oim.get());
            const bool direct_out = dsts[f].depth == Depth::f32;
            const float add = direct_out ? delta : 0.f;
            for (int half = 0; half < 2; ++half) {
              const std::int64_t tile = half == 0 ? ta : tb;
              if (tile >= tiles) break;
              const std::int64_t x0 = tile * U, vcols = std::min<std::int64_t>(U, W - x0);
              const float* plane = half == 0 ? ore.get() : oim.get();
              for (std::int64_t y = 0; y < vrows; ++y) {
                float* out = direct_out ? reinterpret_cast<float*>(dsts[f].row(y0 + y))
                                        : band_out[f].get() + y * W * C;
                out += x0 * C + c;
                const float* in = plane + y * T;
                const float mul = direct_out ? scale : 1.f;
                if (C == 1)
                  for (std::int64_t x = 0; x < vcols; ++x) out[x] = in[x] * mul + add;
                else
                  for (std::int64_t x = 0; x < vcols; ++x) out[x * C] = in[x] * mul + add;
              }
            }
          }
        }
      for (std::size_t f = 0; f < dsts.size(); ++f)
        if (dsts[f].depth != Depth::f32)
          for (std::int64_t y = 0; y < vrows; ++y)
            k.store_row(band_out[f].get() + y * W * C, W * C, scale, delta, dsts[f].depth,
                        dsts[f].row(y0 + y));
    }
  });
}

// Direct cost ~ (taps per pixel, half for mirrored pairs) x kernels; FFT cost
// ~ transforms per valid pixel. The constants were measured on AVX2 (Zen 3):
// FFT wins from about 11 x 11 on 1080p, earlier for banks.
bool fft_pays(const std::vector<Kernel2D>& kernels, std::int64_t rows, std::int64_t cols) {
  const int kh = kernels.front().rows, kw = kernels.front().cols;
  if (static_cast<std::int64_t>(kh) * kw < (kernels.size() >= 4 ? 81 : 121)) return false;
  const int t = fft_tile_size(kh, kw, rows, cols);
  const double valid = static_cast<double>(t - kh + 1) * (t - kw + 1);
  const double log2t = std::log2(static_cast<double>(t));
  const double nk = static_cast<double>(kernels.size());
  // One complex 2-D transform ~ 2 t^2 log2 t butterflies of ~10 flops, on two tiles.
  const double fft_flops = (1.0 + nk) * (10.0 * t * t * log2t) / (2.0 * valid) + nk * 3.0;
  const double direct_flops = nk * 2.0 * static_cast<double>(kh) * kw * 0.75;
  return fft_flops < direct_flops;
}

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

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

void check_kernel_size(std::int64_t ksize, const char* name, bool odd) {
  if (ksize >= 1 && ksize <= kMaxKernelSize && (!odd || ksize % 2 == 1)) return;
  throw ValueError(std::string(name) + ": expected " + (odd ? "an odd" : "a") + " kernel size in [1, " +
                   std::to_string(kMaxKernelSize) + "] (the largest kernel keensight accepts), got " +
                   std::to_string(ksize));
}

namespace {

void run_direct_rows(const ImageView& src_in, const std::vector<ImageView>& dsts,
                     const std::vector<Kernel2D>& kernels, const FilterOptions& opt, float scale) {
  const int kh = kernels.front().rows, kw = kernels.front().cols;
  const std::pair<int, int> anchor = resolve_anchor(opt, kh, kw);
  const int ax = anchor.first, ay = anchor.second;
  const FilterKernels& k = filter_kernels();
  SourceCopy copy;
  const ImageView src = detach_source(src_in, dsts, copy);
  const std::int64_t n = src.row_elems();
  std::vector<TapPlan> plans;
  plans.reserve(kernels.size());
  for (const Kernel2D& kern : kernels) plans.push_back(plan_2d(kern, src.channels));
  const float delta = static_cast<float>(opt.delta);

  // float32 rows whose kernel window lies inside the image are read in place:
  // the interior pixels straight from the source rows, the ax + rpad edge
  // pixels from short border-extended copies. Other rows (top and bottom, other
  // depths) go through the ring of padded float rows. Same taps, same order:
  // identical results either way.
  const std::int64_t C = src.channels, W = src.cols, rpad = kw - 1 - ax;
  const bool in_place = src.depth == Depth::f32 && W - ax - rpad >= 1;
  const std::int64_t edge_px = std::max<std::int64_t>(ax, rpad) + kw - 1;
  const float border_value = static_cast<float>(opt.border_value);
  std::vector<char> sym3;
  for (const Kernel2D& kern : kernels) sym3.push_back(ax == 1 && ay == 1 && is_symmetric3x3(kern));
  // Kernel f over `count` elements into out, from rows whose padded index 0 is output 0.
  std::vector<char> stream;
  for (const ImageView& d : dsts) stream.push_back(stream_output(d, scale, delta));
  const bool any_stream = std::find(stream.begin(), stream.end(), 1) != stream.end();
  const auto run_kernel = [&](std::size_t f, const auto& rows_of, std::int64_t count, float* out,
                              std::vector<const float*>& p, std::vector<const float*>& q) {
    if (sym3[f]) {
      const std::vector<float>& v = kernels[f].values;
      k.symmetric3x3(rows_of(0) + C, rows_of(1) + C, rows_of(2) + C, count, C, v[0], v[1], v[4], out,
                     stream[f]);
    } else {
      apply_plan(k, plans[f], rows_of, count, out, false, p, q, stream[f]);
    }
  };

  // Source columns of the padded edge pixels (-1: the constant border), the same for every row.
  std::vector<std::int64_t> left_sx, right_sx;
  if (in_place) {
    for (std::int64_t j = 0; j < ax + kw - 1; ++j) left_sx.push_back(border_index(j - ax, W, opt.border));
    for (std::int64_t j = 0; j < rpad + kw - 1; ++j)
      right_sx.push_back(border_index(W - rpad + j - ax, W, opt.border));
  }

  keensight::detail::parallel_for(src.rows, kMinRowsPerThread, [&](std::int64_t y0, std::int64_t y1) {
    PaddedRowLoader<float> loader(src, opt, ax, rpad, k);
    RowRing<float> ring(kh, loader.padded_elems());
    // One scratch row per kernel: all interiors run before any edges.
    FloatBuffer scratch(n * static_cast<std::int64_t>(kernels.size())), edges(in_place ? 2 * kh * edge_px * C : 1);
    std::vector<const float*> p, q;
    std::int64_t next = y0 - ay;  // next virtual row to load into the ring
    // The padded edge pixels at source columns `sx` of source row sy.
    const auto fill_edge = [&](std::int64_t sy, const std::vector<std::int64_t>& sx, float* out) {
      const float* row = reinterpret_cast<const float*>(src.row(sy));
      for (std::size_t j = 0; j < sx.size(); ++j)
        for (std::int64_t c = 0; c < C; ++c) out[j * C + c] = sx[j] < 0 ? border_value : row[sx[j] * C + c];
    };
    for (std::int64_t y = y0; y < y1; ++y) {
      if (in_place && y - ay >= 0 && y - ay + kh <= src.rows) {
        const auto interior_of = [&](int i) -> const float* {
          return reinterpret_cast<const float*>(src.row(y - ay + i));  // padded index ax = pixel 0
        };
        // The interior first: it streams the newest row into the cache, so the
        // edge copies below do not each wait for a cold cache line.
        for (std::size_t f = 0; f < kernels.size(); ++f)
          run_kernel(f, interior_of, (W - ax - rpad) * C,
                     accumulator_row(dsts[f], y, scratch.get() + f * n) + ax * C, p, q);
        float* left = edges.get();
        float* right = edges.get() + kh * edge_px * C;
        for (int i = 0; i < kh; ++i) {
          fill_edge(y - ay + i, left_sx, left + i * edge_px * C);
          fill_edge(y - ay + i, right_sx, right + i * edge_px * C);
        }
        const auto left_of = [&](int i) -> const float* { return left + i * edge_px * C; };
        const auto right_of = [&](int i) -> const float* { return right + i * edge_px * C; };
        for (std::size_t f = 0; f < kernels.size(); ++f) {
          float* acc = accumulator_row(dsts[f], y, scratch.get() + f * n);
          if (ax > 0) run_kernel(f, left_of, ax * C, acc, p, q);
          if (rpad > 0) run_kernel(f, right_of, rpad * C, acc + (W - rpad) * C, p, q);
          store_output(k, dsts[f], y, acc, scale, delta);
        }
        continue;
      }
      next = std::max(next, y - ay);
      for (; next <= y - ay + kh - 1; ++next) loader.fill(next, ring.slot(next));
      const auto row_of = [&](int i) -> const float* { return ring.slot(y - ay + i); };
      for (std::size_t f = 0; f < kernels.size(); ++f) {
        float* acc = accumulator_row(dsts[f], y, scratch.get());
        run_kernel(f, row_of, n, acc, p, q);
        store_output(k, dsts[f], y, acc, scale, delta);
      }
    }
    if (any_stream) stream_fence();
  });
}

}  // namespace

void run_direct(const ImageView& src, const std::vector<ImageView>& dsts,
                const std::vector<Kernel2D>& kernels, const FilterOptions& opt, double scale) {
  const bool fft = opt.method == FilterMethod::fft ||
                   (opt.method == FilterMethod::automatic && fft_pays(kernels, src.rows, src.cols));
  if (fft)
    run_fft(src, dsts, kernels, opt, static_cast<float>(scale));
  else
    run_direct_rows(src, dsts, kernels, opt, static_cast<float>(scale));
}

void run_separable(const ImageView& src_in, const ImageView& dst,
                   const std::vector<std::vector<float>>& kx,
                   const std::vector<std::vector<float>>& ky, Combine combine,
                   const FilterOptions& opt, double scale_in) {
  const int kw = static_cast<int>(kx.front().size()), kh = static_cast<int>(ky.front().size());
  const std::pair<int, int> anchor = resolve_anchor(opt, kh, kw);
  const int ax = anchor.first, ay = anchor.second;
  const std::size_t R = kx.size();
  const FilterKernels& k = filter_kernels();
  SourceCopy copy;
  const ImageView src = detach_source(src_in, {dst}, copy);
  const std::int64_t n = src.row_elems(), C = src.channels;
  std::vector<TapPlan> hplans, vplans;
  for (std::size_t r = 0; r < R; ++r) {
    hplans.push_back(plan_row(kx[r], src.channels));
    vplans.push_back(plan_column(ky[r]));
  }
  const float delta = static_cast<float>(opt.delta);
  // Columns first, rows second: float32 source rows are read in place (no copy),
  // and each column-filtered row is consumed by the row pass while still in L1.
  // The row pass needs the column result extended by the border rule: columns
  // of a constant border filter to value * sum(ky).
  const bool in_place = src.depth == Depth::f32;
  const std::int64_t lpad = ax, rpad = kw - 1 - ax;
  std::vector<float> column_border(R);
  for (std::size_t r = 0; r < R; ++r) {
    double sum = 0;
    for (float v : ky[r]) sum += v;
    column_border[r] = static_cast<float>(opt.border_value * sum);
  }

  // Stream the row pass's output when it is the only write of each destination row.
  const float scale = static_cast<float>(scale_in);
  const bool stream = R == 1 && combine == Combine::sum && stream_output(dst, scale, delta);

  // Two output rows per column pass when every column plan is a full mirrored
  // kernel (kernels.hpp: column_pairs_x2): each source row is then loaded once for both.
  bool two_rows = kh <= kMaxColumnPairsX2;
  for (const TapPlan& v : vplans) {
    bool full = v.paired && static_cast<int>(v.coeff.size()) == (kh + 1) / 2;
    for (std::size_t i = 0; full && i < v.coeff.size(); ++i)
      full = v.row[i] == static_cast<int>(i) && v.row2[i] == kh - 1 - static_cast<int>(i);
    two_rows = two_rows && full;
  }

  keensight::detail::parallel_for(src.rows, kMinRowsPerThread, [&](std::int64_t y0, std::int64_t y1) {
    PaddedRowLoader<float> loader(src, opt, 0, 0, k);  // converts rows of other depths
    RowRing<float> ring(in_place ? 1 : kh + 1, in_place ? 1 : n);
    std::vector<float> constant_row(static_cast<std::size_t>(n), static_cast<float>(opt.border_value));
    std::vector<FloatBuffer> columns;  // column-filtered rows: R for row y, then R for row y + 1
    for (std::size_t r = 0; r < 2 * R; ++r) columns.emplace_back((src.cols + lpad + rpad) * C);
    FloatBuffer scratch(n), term_b(combine == Combine::sum ? 1 : n);
    std::vector<const float*> p, q, rows(static_cast<std::size_t>(kh) + 1);
    std::int64_t next = y0 - ay;  // next virtual row to convert (not in place)
    const auto source_row = [&](std::int64_t vy) -> const float* {
      const std::int64_t sy = border_index(vy, src.rows, opt.border);
      if (sy < 0) return constant_row.data();
      return in_place ? reinterpret_cast<const float*>(src.row(sy)) : ring.slot(vy);
    };
    for (std::int64_t y = y0; y < y1;) {
      const int count = two_rows && y + 1 < y1 ? 2 : 1;
      if (!in_place)
        for (; next <= y - ay + kh + count - 2; ++next) loader.fill(next, ring.slot(next));
      if (count == 2) {
        for (int i = 0; i <= kh; ++i) rows[i] = source_row(y - ay + i);
        for (std::size_t r = 0; r < R; ++r)
          k.column_pairs_x2(rows.data(), kh, vplans[r].coeff.data(), vplans[r].subtract, n,
                            columns[r].get() + lpad * C, columns[R + r].get() + lpad * C);
      }
      for (int j = 0; j < count; ++j) {
        const std::int64_t yy = y + j;
        const auto rows_of = [&](int i) -> const float* { return source_row(yy - ay + i); };
        float* acc = accumulator_row(dst, yy, scratch.get());
        for (std::size_t r = 0; r < R; ++r) {
          float* column = columns[j * R + r].get();
          if (count == 1) apply_plan(k, vplans[r], rows_of, n, column + lpad * C, false, p, q);
          extend_row_border(column, src.cols, C, lpad, rpad, opt.border, column_border[r]);
          const auto column_row = [&](int) -> const float* { return column; };
          float* out = (combine != Combine::sum && r == 1) ? term_b.get() : acc;
          const bool accumulate = combine == Combine::sum && r > 0;
          apply_plan(k, hplans[r], column_row, n, out, accumulate, p, q, stream && out == acc);
        }
        if (combine != Combine::sum) k.magnitude(acc, term_b.get(), n, combine == Combine::magnitude_l1, acc);
        store_output(k, dst, yy, acc, scale, delta);
      }
      y += count;
    }
    if (stream) stream_fence();
  });
}

bool integer_kernels_fit_u8(const std::vector<float>& kx, const std::vector<float>& ky) {
  double sum_x = 0, sum_y = 0;
  for (float v : kx) {
    if (v != std::nearbyint(v) || std::fabs(v) > 32767) return false;
    sum_x += std::fabs(v);
  }
  for (float v : ky) {
    if (v != std::nearbyint(v) || std::fabs(v) > 32767) return false;
    sum_y += std::fabs(v);
  }
  // Row sums of 255 * |kx| stay inside int16; column sums inside int32.
  return sum_x * 255 <= 32767 && sum_x * 255 * sum_y < 2147483647.0;
}

void run_separable_u8(const ImageView& src_in, const ImageView& dst,
                      const std::vector<std::vector<std::int16_t>>& kx,
                      const std::vector<std::vector<std::int16_t>>& ky, Combine combine,
                      bool fixed_point, const FilterOptions& opt, double scale_in) {
  const int kw = static_cast<int>(kx.front().size()), kh = static_cast<int>(ky.front().size());
  const std::pair<int, int> anchor = resolve_anchor(opt, kh, kw);
  const int ax = anchor.first, ay = anchor.second;
  const std::size_t R = kx.size();
  const FilterKernels& k = filter_kernels();
  SourceCopy copy;
  const ImageView src = detach_source(src_in, {dst}, copy);
  const std::int64_t n = src.row_elems(), C = src.channels;
  // Non-zero taps of each term: element offsets and coefficients across, ring
  // rows and coefficients down.
  struct IntTaps {
    std::vector<std::int64_t> hoff;
    std::vector<std::int16_t> hcoef, vcoef;
    std::vector<int> vrow;
    std::int32_t bias = 0;
  };
  std::vector<IntTaps> terms(R);
  for (std::size_t r = 0; r < R; ++r) {
    IntTaps& t = terms[r];
    for (int j = 0; j < kw; ++j)
      if (kx[r][j] != 0) t.hoff.push_back(j * C), t.hcoef.push_back(kx[r][j]);
    std::int32_t sum_ky = 0;
    for (int i = 0; i < kh; ++i)
      if (ky[r][i] != 0) t.vrow.push_back(i), t.vcoef.push_back(ky[r][i]), sum_ky += ky[r][i];
    // Fixed point: h was stored as H - 32768, so add 32768 * sum(ky) back, plus
    // 2^15 to round the final >> 16 (OpenCV's ufixedpoint32 -> uint8 cast).
    t.bias = fixed_point ? 32768 * sum_ky + 32768 : 0;
  }
  const float delta = static_cast<float>(opt.delta), scale = static_cast<float>(scale_in);

  keensight::detail::parallel_for(src.rows, kMinRowsPerThread, [&](std::int64_t y0, std::int64_t y1) {
    PaddedRowLoader<std::uint8_t> loader(src, opt, ax, kw - 1 - ax, k);
    std::vector<std::uint8_t> padded(static_cast<std::size_t>(loader.padded_elems()));
    std::vector<RowRing<std::int16_t>> rings;
    for (std::size_t r = 0; r < R; ++r) rings.emplace_back(kh, n);
    FloatBuffer scratch(n);
    std::vector<std::vector<const std::int16_t*>> rows(R);
    std::int64_t next = y0 - ay;
    for (std::int64_t y = y0; y < y1; ++y) {
      for (; next <= y - ay + kh - 1; ++next) {
        loader.fill(next, padded.data());
        for (std::size_t r = 0; r < R; ++r)
          k.hpass_u8(padded.data(), terms[r].hoff.data(), terms[r].hcoef.data(),
                     static_cast<int>(terms[r].hcoef.size()), n, fixed_point, rings[r].slot(next));
      }
      float* acc = accumulator_row(dst, y, scratch.get());
      for (std::size_t r = 0; r < R; ++r) {
        const IntTaps& t = terms[r];
        rows[r].resize(t.vrow.size());
        for (std::size_t i = 0; i < t.vrow.size(); ++i) rows[r][i] = rings[r].slot(y - ay + t.vrow[i]);
      }
      const auto nv = [&](std::size_t r) { return static_cast<int>(terms[r].vcoef.size()); };
      if (fixed_point) {
        k.vpass_s16_u8(rows[0].data(), terms[0].vcoef.data(), nv(0), n, terms[0].bias, dst.row(y));
        continue;
      }
      if (R == 1)
        k.vpass_s16_f32(rows[0].data(), terms[0].vcoef.data(), nv(0), n, 1.f, 0.f, acc);
      else
        k.vpass_s16_magnitude(rows[0].data(), terms[0].vcoef.data(), nv(0), rows[1].data(),
                              terms[1].vcoef.data(), nv(1), n, combine == Combine::magnitude_l1, acc);
      store_output(k, dst, y, acc, scale, delta);
    }
  });
}

void run_gaussian_u16(const ImageView& src_in, const ImageView& dst, const std::vector<std::int32_t>& kx,
                      const std::vector<std::int32_t>& ky, const FilterOptions& opt) {
  const int kw = static_cast<int>(kx.size()), kh = static_cast<int>(ky.size());
  const int ax = kw / 2, ay = kh / 2;
  const FilterKernels& k = filter_kernels();
  SourceCopy copy;
  const ImageView src = detach_source(src_in, {dst}, copy);
  const std::int64_t n = src.row_elems(), C = src.channels;
  // Taps 0 .. k/2 of each symmetric kernel (the last one is the centre).
  const std::vector<std::uint32_t> cy(ky.begin(), ky.begin() + ay + 1);
  const std::vector<double> cx(kx.begin(), kx.begin() + ax + 1);

  keensight::detail::parallel_for(src.rows, kMinRowsPerThread, [&](std::int64_t y0, std::int64_t y1) {
    const std::vector<std::uint16_t> zero_row(static_cast<std::size_t>(n), 0);  // Border::constant
    std::vector<const std::uint16_t*> rows(static_cast<std::size_t>(kh));
    std::vector<double> column(static_cast<std::size_t>((src.cols + kw - 1) * C));
    for (std::int64_t y = y0; y < y1; ++y) {
      // Columns first, straight from the source rows; then the row pass over the
      // column sums, extended by the border rule (the order does not change an
      // exact sum).
      for (int i = 0; i < kh; ++i) {
        const std::int64_t sy = border_index(y - ay + i, src.rows, opt.border);
        rows[static_cast<std::size_t>(i)] =
            sy < 0 ? zero_row.data() : reinterpret_cast<const std::uint16_t*>(src.row(sy));
      }
      k.gauss_column_u16(rows.data(), kh, cy.data(), n, column.data() + ax * C);
      extend_row_border(column.data(), src.cols, C, ax, kw - 1 - ax, opt.border, 0.0);
      k.gauss_row_u16(column.data(), kw, C, cx.data(), n, reinterpret_cast<std::uint16_t*>(dst.row(y)));
    }
  });
}

}  // namespace detail
}  // namespace keensight::filters
