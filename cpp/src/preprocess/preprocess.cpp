// The preprocess operator: geometry, resampling tables, threading and dispatch.
// The arithmetic lives in the leaf kernels (kernels_*.cpp).
#include "keensight/preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/parallel.hpp"
#include "preprocess/kernels.hpp"

namespace keensight::preprocess {

namespace {

// The resampling of one axis restricted to the crop: output i takes source samples
// start[i] .. start[i] + ntaps - 1 with weights[t * out + i] (zero-padded to the widest
// output). Starts are relative to `lo`; the axis reads source samples [lo, hi).
struct AxisTaps {
  int ntaps = 0;
  std::vector<std::int32_t> start;
  std::vector<float> weights;
  std::int64_t lo = 0, hi = 0;
};

using Taps = std::vector<std::pair<std::int64_t, double>>;

// cv::resize INTER_LINEAR's coordinate map (imgproc/src/resize.cpp, resizeGeneric setup):
// fx = (dx + 0.5) * scale - 0.5, edges replicated by clamping the index and zeroing fx.
Taps bilinear_taps(std::int64_t dx, std::int64_t src, double scale) {
  float fx = static_cast<float>((static_cast<double>(dx) + 0.5) * scale - 0.5);
  std::int64_t sx = static_cast<std::int64_t>(std::floor(fx));
  fx -= static_cast<float>(sx);
  if (sx < 0) { sx = 0; fx = 0.f; }
  if (sx >= src - 1) { sx = src - 1; fx = 0.f; }
  Taps taps{{sx, 1.0 - static_cast<double>(fx)}};
  if (fx > 0.f) taps.emplace_back(sx + 1, static_cast<double>(fx));
  return taps;
}

// cv::resize INTER_AREA when shrinking (computeResizeAreaTab): the source box
// [dx * scale, (dx + 1) * scale), partially covered pixels weighted by the covered part.
Taps area_taps(std::int64_t dx, std::int64_t src, double scale) {
  const double fsx1 = static_cast<double>(dx) * scale, fsx2 = fsx1 + scale;
  const double cell = std::min(scale, static_cast<double>(src) - fsx1);
  std::int64_t sx1 = static_cast<std::int64_t>(std::ceil(fsx1));
  std::int64_t sx2 = static_cast<std::int64_t>(std::floor(fsx2));
  sx2 = std::min(sx2, src - 1);
  sx1 = std::min(sx1, sx2);
  Taps taps;
  if (static_cast<double>(sx1) - fsx1 > 1e-3) taps.emplace_back(sx1 - 1, (static_cast<double>(sx1) - fsx1) / cell);
  for (std::int64_t sx = sx1; sx < sx2; ++sx) taps.emplace_back(sx, 1.0 / cell);
  if (fsx2 - static_cast<double>(sx2) > 1e-3)
    taps.emplace_back(sx2, std::min(std::min(fsx2 - static_cast<double>(sx2), 1.0), cell) / cell);
  return taps;
}

AxisTaps axis_taps(std::int64_t src, std::int64_t resized, std::int64_t offset, std::int64_t out,
                   Interpolation interpolation) {
  const double scale = static_cast<double>(src) / static_cast<double>(resized);
  const bool area = interpolation == Interpolation::area && resized < src;
  std::vector<Taps> all(static_cast<std::size_t>(out));
  std::size_t widest = 1;
  for (std::int64_t i = 0; i < out; ++i) {
    Taps& t = all[static_cast<std::size_t>(i)];
    t = area ? area_taps(i + offset, src, scale) : bilinear_taps(i + offset, src, scale);
    widest = std::max(widest, t.size());
  }
  AxisTaps a;
  a.ntaps = static_cast<int>(widest);  // taps are distinct in-range indices: widest <= src
  a.start.resize(static_cast<std::size_t>(out));
  a.weights.assign(widest * static_cast<std::size_t>(out), 0.f);
  a.lo = src;
  for (std::int64_t i = 0; i < out; ++i) {
    const Taps& t = all[static_cast<std::size_t>(i)];
    // Taps are consecutive indices; shift the window left at the right edge so that it
    // stays inside the image (the extra taps get weight 0).
    const std::int64_t s = std::min(t.front().first, src - a.ntaps);
    a.start[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(s);
    for (const auto& [index, w] : t)
      a.weights[static_cast<std::size_t>(index - s) * static_cast<std::size_t>(out) + static_cast<std::size_t>(i)] =
          static_cast<float>(w);
    a.lo = std::min(a.lo, s);
    a.hi = std::max(a.hi, s + a.ntaps);
  }
  for (auto& s : a.start) s -= static_cast<std::int32_t>(a.lo);
  return a;
}

struct ImagePlan {
  const PreprocessSource* source = nullptr;
  AxisTaps vertical, horizontal;
  int map[3] = {0, 1, 2};  // output channel c reads source channel map[c]
};

}  // namespace

void check_preprocess_options(const PreprocessOptions& o) {
  if (o.rows <= 0 || o.cols <= 0)
    throw ValueError("preprocess: input size must be positive, got " + std::to_string(o.rows) + "x" +
                     std::to_string(o.cols));
  if (o.rows > (1 << 20) || o.cols > (1 << 20)) throw ValueError("preprocess: input size too large");
  if (o.resize_shorter < 0)
    throw ValueError("preprocess: resize_shorter must be >= 0, got " + std::to_string(o.resize_shorter));
  if (o.threads < 0) throw ValueError("threads: expected >= 0 (0: keensight's setting), got " + std::to_string(o.threads));
  if (o.resize_shorter > 0 && o.resize_shorter < std::max(o.rows, o.cols))
    throw ValueError("preprocess: resize_shorter (" + std::to_string(o.resize_shorter) +
                     ") must be at least the crop size " + std::to_string(o.rows) + "x" + std::to_string(o.cols));
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(o.mean[c])) throw ValueError("preprocess: mean must be finite");
    if (!std::isfinite(o.std[c]) || o.std[c] == 0.f) throw ValueError("preprocess: std must be finite and non-zero");
  }
  if (o.interpolation != Interpolation::bilinear && o.interpolation != Interpolation::area)
    throw ValueError("preprocess: unknown interpolation");
  if (o.layout != TensorLayout::nchw && o.layout != TensorLayout::nhwc) throw ValueError("preprocess: unknown layout");
}

ResizeCrop resize_crop_geometry(std::int64_t src_rows, std::int64_t src_cols, const PreprocessOptions& o) {
  check_preprocess_options(o);
  if (src_rows <= 0 || src_cols <= 0) throw ValueError("preprocess: empty image");
  ResizeCrop g;
  if (o.resize_shorter == 0) {
    g.resized_rows = o.rows;
    g.resized_cols = o.cols;
    return g;
  }
  // torchvision.transforms.Resize(int): short side -> size, long side int(size * long / short).
  const std::int64_t r = o.resize_shorter;
  if (src_rows <= src_cols) {
    g.resized_rows = r;
    g.resized_cols = std::max<std::int64_t>(r, r * src_cols / src_rows);
  } else {
    g.resized_cols = r;
    g.resized_rows = std::max<std::int64_t>(r, r * src_rows / src_cols);
  }
  g.crop_top = (g.resized_rows - o.rows) / 2;
  g.crop_left = (g.resized_cols - o.cols) / 2;
  return g;
}

void preprocess_batch(const PreprocessSource* sources, std::int64_t n, const PreprocessOptions& o, float* dst) {
  check_preprocess_options(o);
  if (n < 0) throw ValueError("preprocess: negative batch size");
  if (n == 0) return;
  std::vector<ImagePlan> plans(static_cast<std::size_t>(n));
  std::int64_t widest_row = 0;
  for (std::int64_t k = 0; k < n; ++k) {
    const PreprocessSource& s = sources[k];
    const std::string what = "images[" + std::to_string(k) + "]";
    if (s.image.depth != Depth::u8)
      throw TypeError(what + ": expected dtype uint8, got " + depth_name(s.image.depth));
    if (s.image.channels != 1 && s.image.channels != 3)
      throw ValueError(what + ": expected 1 (gray) or 3 channels, got " + std::to_string(s.image.channels));
    check_image(s.image, what.c_str());
    if (s.image.rows > INT32_MAX / 4 || s.image.cols * s.image.channels > INT32_MAX / 4)
      throw ValueError(what + ": image too large");
    const ResizeCrop g = resize_crop_geometry(s.image.rows, s.image.cols, o);
    ImagePlan& p = plans[static_cast<std::size_t>(k)];
    p.source = &s;
    p.vertical = axis_taps(s.image.rows, g.resized_rows, g.crop_top, o.rows, o.interpolation);
    p.horizontal = axis_taps(s.image.cols, g.resized_cols, g.crop_left, o.cols, o.interpolation);
    for (int c = 0; c < 3; ++c)
      p.map[c] = s.image.channels == 1 ? 0 : (s.bgr != o.bgr ? 2 - c : c);
    widest_row = std::max(widest_row, (p.horizontal.hi - p.horizontal.lo) * s.image.channels);
  }
  float scale[3], bias[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.f / o.std[c];
    bias[c] = -o.mean[c] / o.std[c];
  }
  const std::int64_t plane = o.rows * o.cols;
  const bool nchw = o.layout == TensorLayout::nchw;
  const auto& kernels = preprocess::detail::preprocess_kernels();
  // One work item per output row of every image; chunks of whole rows keep each thread's
  // writes contiguous.
  keensight::detail::parallel_for(n * o.rows, 16, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> row(static_cast<std::size_t>(widest_row));
    std::vector<const std::uint8_t*> src_rows;
    std::vector<float> wv;
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t k = item / o.rows, y = item % o.rows;
      const ImagePlan& p = plans[static_cast<std::size_t>(k)];
      const ImageView& img = p.source->image;
      const AxisTaps& v = p.vertical;
      const AxisTaps& h = p.horizontal;
      src_rows.resize(static_cast<std::size_t>(v.ntaps));
      wv.resize(static_cast<std::size_t>(v.ntaps));
      const std::int64_t y0 = v.lo + v.start[static_cast<std::size_t>(y)];
      for (int t = 0; t < v.ntaps; ++t) {
        src_rows[static_cast<std::size_t>(t)] = img.row(y0 + t) + h.lo * img.channels;
        wv[static_cast<std::size_t>(t)] = v.weights[static_cast<std::size_t>(t) * static_cast<std::size_t>(o.rows) +
                                                    static_cast<std::size_t>(y)];
      }
      kernels.vertical_u8(src_rows.data(), wv.data(), v.ntaps, (h.hi - h.lo) * img.channels, row.data());
      float* base = dst + k * 3 * plane;
      float* out[3];
      for (int c = 0; c < 3; ++c) out[c] = nchw ? base + c * plane + y * o.cols : base + y * o.cols * 3 + c;
      kernels.horizontal_store(row.data(), static_cast<int>(img.channels), p.map, h.start.data(), h.weights.data(),
                               h.ntaps, o.cols, scale, bias, out, nchw ? 1 : 3);
    }
  }, o.threads);
}

}  // namespace keensight
