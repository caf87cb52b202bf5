// The filter operators: argument checks, kernel construction with OpenCV's
// conventions, then one of the two passes in engine.cpp.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "filters/engine.hpp"

namespace keensight::filters {

using detail::check_kernel_size;
using detail::check_options;
using detail::check_pair;
using detail::gaussian_kernel_fixed;
using detail::number_text;
using detail::run_direct;
using detail::run_separable;
using detail::run_separable_u8;

namespace {

void check_kernel(const Kernel2D& k, const char* name) {
  if (k.rows <= 0 || k.cols <= 0 ||
      k.values.size() != static_cast<std::size_t>(k.rows) * static_cast<std::size_t>(k.cols))
    throw ValueError(std::string(name) + ": expected a non-empty 2-D kernel");
  check_kernel_size(k.rows, name, false);
  check_kernel_size(k.cols, name, false);
  for (float v : k.values)
    if (!std::isfinite(v)) throw ValueError(std::string(name) + ": kernel values must be finite");
}

void check_kernel_1d(const std::vector<float>& k, const char* name) {
  check_kernel_size(static_cast<std::int64_t>(k.size()), name, false);
  for (float v : k)
    if (!std::isfinite(v)) throw ValueError(std::string(name) + ": kernel values must be finite");
}

// Outputs are scale * sum in float32: a scale beyond float32's range would turn a
// zero response into 0 * inf = NaN.
void check_scale(double scale) {
  if (!std::isfinite(scale) || std::fabs(scale) > std::numeric_limits<float>::max())
    throw ValueError("scale: expected a finite number within float32 range (|scale| <= 3.4e38), got " +
                     number_text(scale));
}

std::vector<float> to_float(const std::vector<double>& v, double scale = 1.0) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(v[i] * scale);
  return out;
}

// Centre a 1-D kernel in n taps (zeros around it; zero taps cost nothing).
std::vector<float> pad_center(const std::vector<float>& k, std::size_t n) {
  std::vector<float> out(n, 0.f);
  const std::size_t off = (n - k.size()) / 2;
  for (std::size_t i = 0; i < k.size(); ++i) out[off + i] = k[i];
  return out;
}

void check_order(int dx, int dy) {
  if (dx < 0 || dy < 0) throw ValueError("dx, dy: expected non-negative derivative orders");
  if (dx + dy == 0) throw ValueError("dx, dy: expected at least one derivative (dx + dy > 0)");
}

// The x and y factors of a derivative filter (cv::getDerivKernels). Unlike
// OpenCV, the caller's scale is not folded into a factor but applied to the
// finished sum (engine.hpp).
void deriv_pair(int dx, int dy, int ksize, std::vector<float>& kx, std::vector<float>& ky) {
  check_order(dx, dy);
  if (ksize != -1 && (ksize <= 0 || ksize % 2 == 0 || ksize > 31))
    throw ValueError("ksize: expected 1, 3, 5, 7, ... 31 (or -1 for Scharr), got " +
                     std::to_string(ksize));
  if (ksize == -1 && dx + dy != 1)
    throw ValueError("Scharr: expected dx + dy == 1, got dx=" + std::to_string(dx) +
                     " dy=" + std::to_string(dy));
  kx = to_float(deriv_kernel(dx, ksize));
  ky = to_float(deriv_kernel(dy, ksize));
}

std::vector<std::int16_t> to_int16(const std::vector<float>& v) {
  return std::vector<std::int16_t>(v.begin(), v.end());
}

std::vector<std::int16_t> to_int16(const std::vector<std::int32_t>& v) {
  return std::vector<std::int16_t>(v.begin(), v.end());
}

std::vector<float> prewitt_factor(int order) {
  if (order == 0) return {1.f, 1.f, 1.f};
  return {-1.f, 0.f, 1.f};
}

// One separable term, validated by the caller: uint8 sources with kernels that
// are exact in integers take the 16-bit integer path, others the float one.
void run_one_separable(const ImageView& src, const ImageView& dst, const std::vector<float>& kx,
                       const std::vector<float>& ky, const FilterOptions& opt, double scale) {
  if (src.depth == Depth::u8 && filters::detail::integer_kernels_fit_u8(kx, ky))
    run_separable_u8(src, dst, {to_int16(kx)}, {to_int16(ky)}, Combine::sum, false, opt, scale);
  else
    run_separable(src, dst, {kx}, {ky}, Combine::sum, opt, scale);
}

void check_separable(const ImageView& src, const ImageView& dst, const std::vector<float>& kx,
                     const std::vector<float>& ky, const FilterOptions& opt) {
  check_pair(src, dst);
  check_kernel_1d(kx, "kernel_x");
  check_kernel_1d(ky, "kernel_y");
  check_options(opt, static_cast<int>(ky.size()), static_cast<int>(kx.size()));
}

void check_terms(const ImageView& src, const ImageView& dst, const std::vector<std::vector<float>>& kx,
                 const std::vector<std::vector<float>>& ky, Combine combine, const FilterOptions& opt) {
  check_pair(src, dst);
  if (kx.empty() || kx.size() != ky.size())
    throw ValueError("kernels: expected as many x factors as y factors, at least one");
  if (combine != Combine::sum && kx.size() != 2)
    throw ValueError("combine: a magnitude needs exactly two terms");
  for (std::size_t r = 0; r < kx.size(); ++r) {
    check_kernel_1d(kx[r], "kernel_x");
    check_kernel_1d(ky[r], "kernel_y");
    if (kx[r].size() != kx[0].size() || ky[r].size() != ky[0].size())
      throw ValueError("kernels: expected terms of one size");
  }
  check_options(opt, static_cast<int>(ky[0].size()), static_cast<int>(kx[0].size()));
}

}  // namespace

void filter2d(const ImageView& src, const ImageView& dst, const Kernel2D& kernel,
              const FilterOptions& opt) {
  check_pair(src, dst);
  check_kernel(kernel, "kernel");
  check_options(opt, kernel.rows, kernel.cols);
  run_direct(src, {dst}, {kernel}, opt);
}

void filter_bank(const ImageView& src, const std::vector<ImageView>& dsts,
                 const std::vector<Kernel2D>& kernels, const FilterOptions& opt) {
  if (kernels.empty()) throw ValueError("kernels: expected at least one kernel");
  if (dsts.size() != kernels.size()) throw ValueError("dsts: expected one destination per kernel");
  for (const ImageView& d : dsts) check_pair(src, d);
  for (const Kernel2D& k : kernels) {
    check_kernel(k, "kernels");
    if (k.rows != kernels.front().rows || k.cols != kernels.front().cols)
      throw ValueError("kernels: expected kernels of one size");
  }
  check_options(opt, kernels.front().rows, kernels.front().cols);
  run_direct(src, dsts, kernels, opt);
}

void sep_filter2d(const ImageView& src, const ImageView& dst, const std::vector<float>& kx,
                  const std::vector<float>& ky, const FilterOptions& opt) {
  check_separable(src, dst, kx, ky, opt);
  run_one_separable(src, dst, kx, ky, opt, 1.0);
}

void sep_filter2d_terms(const ImageView& src, const ImageView& dst,
                        const std::vector<std::vector<float>>& kx,
                        const std::vector<std::vector<float>>& ky, Combine combine,
                        const FilterOptions& opt) {
  check_terms(src, dst, kx, ky, combine, opt);
  run_separable(src, dst, kx, ky, combine, opt);
}

void gaussian_blur(const ImageView& src, const ImageView& dst, int ksize_x, int ksize_y,
                   double sigma_x, double sigma_y, Border border) {
  check_pair(src, dst);
  if (!std::isfinite(sigma_x) || !std::isfinite(sigma_y))
    throw ValueError("sigma: expected finite numbers");
  if (sigma_y <= 0) sigma_y = sigma_x;
  if (ksize_x <= 0 && sigma_x > 0) ksize_x = gaussian_ksize_for_sigma(sigma_x, src.depth);
  if (ksize_y <= 0 && sigma_y > 0) ksize_y = gaussian_ksize_for_sigma(sigma_y, src.depth);
  if (ksize_x <= 0 || ksize_y <= 0)
    throw ValueError("ksize: expected odd positive kernel sizes (or sigma > 0 to derive them), got " +
                     std::to_string(ksize_x) + "x" + std::to_string(ksize_y));
  check_kernel_size(ksize_x, "ksize", true);
  check_kernel_size(ksize_y, "ksize", true);
  sigma_x = std::max(sigma_x, 0.0);
  sigma_y = std::max(sigma_y, 0.0);
  FilterOptions opt;
  opt.border = border;
  check_options(opt, ksize_y, ksize_x);
  if (src.depth == Depth::u8 && dst.depth == Depth::u8) {
    // OpenCV's uint8 Gaussian is integer fixed point (ufixedpoint16: taps in
    // units of 2^-8, saturating 16-bit row sums); run the same arithmetic so that
    // results are bit-exact.
    run_separable_u8(src, dst, {to_int16(gaussian_kernel_fixed(ksize_x, sigma_x, 8))},
                     {to_int16(gaussian_kernel_fixed(ksize_y, sigma_y, 8))}, Combine::sum, true, opt);
    return;
  }
  if (src.depth == Depth::u16 && dst.depth == Depth::u16) {
    // OpenCV's uint16 Gaussian is fixed point too (ufixedpoint32: taps in units
    // of 2^-16), and OpenCV 4.x / 5.x take that path for every kernel size, sigma
    // and border (it has no float fallback for 16U): exact integer sums.
    filters::detail::run_gaussian_u16(src, dst, gaussian_kernel_fixed(ksize_x, sigma_x, 16),
                                     gaussian_kernel_fixed(ksize_y, sigma_y, 16), opt);
    return;
  }
  run_one_separable(src, dst, to_float(gaussian_kernel(ksize_x, sigma_x)),
                    to_float(gaussian_kernel(ksize_y, sigma_y)), opt, 1.0);
}

void sobel(const ImageView& src, const ImageView& dst, int dx, int dy, int ksize, double scale,
           const FilterOptions& opt) {
  check_scale(scale);
  std::vector<float> kx, ky;
  deriv_pair(dx, dy, ksize, kx, ky);
  check_separable(src, dst, kx, ky, opt);
  run_one_separable(src, dst, kx, ky, opt, scale);
}

void scharr(const ImageView& src, const ImageView& dst, int dx, int dy, double scale,
            const FilterOptions& opt) {
  sobel(src, dst, dx, dy, -1, scale, opt);
}

void prewitt(const ImageView& src, const ImageView& dst, int dx, int dy, double scale,
             const FilterOptions& opt) {
  check_order(dx, dy);
  check_scale(scale);
  if (dx + dy != 1) throw ValueError("Prewitt: expected dx + dy == 1");
  const std::vector<float> kx = prewitt_factor(dx), ky = prewitt_factor(dy);
  check_separable(src, dst, kx, ky, opt);
  run_one_separable(src, dst, kx, ky, opt, scale);
}

void laplacian(const ImageView& src, const ImageView& dst, int ksize, double scale,
               const FilterOptions& opt) {
  check_scale(scale);
  if (ksize <= 0 || ksize % 2 == 0 || ksize > 31)
    throw ValueError("ksize: expected an odd aperture 1..31, got " + std::to_string(ksize));
  if (ksize <= 3) {
    // cv::Laplacian's two 3x3 kernels; zero taps are skipped by the pass.
    static const float k1[9] = {0, 1, 0, 1, -4, 1, 0, 1, 0};
    static const float k3[9] = {2, 0, 2, 0, -8, 0, 2, 0, 2};
    Kernel2D k;
    k.rows = k.cols = 3;
    k.values.assign(ksize == 1 ? k1 : k3, (ksize == 1 ? k1 : k3) + 9);
    check_pair(src, dst);
    check_options(opt, 3, 3);
    run_direct(src, {dst}, {k}, opt, scale);
    return;
  }
  // d2/dx2 + d2/dy2 with Sobel factors, one pass over the image.
  const std::vector<float> d2 = to_float(deriv_kernel(2, ksize)), s = to_float(deriv_kernel(0, ksize));
  check_terms(src, dst, {d2, s}, {s, d2}, Combine::sum, opt);
  run_separable(src, dst, {d2, s}, {s, d2}, Combine::sum, opt, scale);
}

void laplacian_of_gaussian(const ImageView& src, const ImageView& dst, int ksize, double sigma,
                           double scale, const FilterOptions& opt) {
  check_scale(scale);
  std::vector<double> g, gxx;
  log_kernel_factors(ksize, sigma, g, gxx);
  const std::vector<float> fg = to_float(g), fxx = to_float(gxx);
  check_terms(src, dst, {fxx, fg}, {fg, fxx}, Combine::sum, opt);
  run_separable(src, dst, {fxx, fg}, {fg, fxx}, Combine::sum, opt, scale);
}

void difference_of_gaussians(const ImageView& src, const ImageView& dst, int ksize,
                             double sigma1, double sigma2, const FilterOptions& opt) {
  if (!std::isfinite(sigma1) || sigma1 <= 0)
    throw ValueError("sigma1: expected a positive finite number, got " + number_text(sigma1));
  if (!std::isfinite(sigma2) || sigma2 <= 0)
    throw ValueError("sigma2: expected a positive finite number, got " + number_text(sigma2));
  if (ksize <= 0) ksize = gaussian_ksize_for_sigma(std::max(sigma1, sigma2), Depth::f32);
  const std::vector<float> g1 = to_float(gaussian_kernel(ksize, sigma1));
  const std::vector<float> g2 = to_float(gaussian_kernel(ksize, sigma2));
  const std::vector<float> g2neg = to_float(gaussian_kernel(ksize, sigma2), -1.0);
  sep_filter2d_terms(src, dst, {g1, g2}, {g1, g2neg}, Combine::sum, opt);
}

void gradient_magnitude(const ImageView& src, const ImageView& dst, GradientOperator op,
                        int ksize, bool l1, const FilterOptions& opt) {
  std::vector<float> xx, xy, yx, yy;  // term x: (xx, xy), term y: (yx, yy)
  switch (op) {
    case GradientOperator::sobel:
      deriv_pair(1, 0, ksize, xx, xy);
      deriv_pair(0, 1, ksize, yx, yy);
      break;
    case GradientOperator::scharr:
      deriv_pair(1, 0, -1, xx, xy);
      deriv_pair(0, 1, -1, yx, yy);
      break;
    case GradientOperator::prewitt:
      xx = prewitt_factor(1), xy = prewitt_factor(0), yx = prewitt_factor(0), yy = prewitt_factor(1);
      break;
    default:
      throw ValueError("op: expected sobel, prewitt or scharr");
  }
  const std::size_t w = std::max(xx.size(), yx.size()), h = std::max(xy.size(), yy.size());
  const std::vector<std::vector<float>> kx = {pad_center(xx, w), pad_center(yx, w)};
  const std::vector<std::vector<float>> ky = {pad_center(xy, h), pad_center(yy, h)};
  const Combine combine = l1 ? Combine::magnitude_l1 : Combine::magnitude_l2;
  check_terms(src, dst, kx, ky, combine, opt);
  if (src.depth == Depth::u8 && filters::detail::integer_kernels_fit_u8(kx[0], ky[0]) &&
      filters::detail::integer_kernels_fit_u8(kx[1], ky[1])) {
    run_separable_u8(src, dst, {to_int16(kx[0]), to_int16(kx[1])},
                     {to_int16(ky[0]), to_int16(ky[1])}, combine, false, opt);  // exact derivatives
    return;
  }
  run_separable(src, dst, kx, ky, combine, opt);
}

}  // namespace keensight::filters
