// The filter operators: argument checks, kernel construction with OpenCV's
// conventions, then one of the two passes in engine.cpp.
#include <cmath>
#include <string>

#include "filters/engine.hpp"

namespace keensight {

using filters_detail::check_options;
using filters_detail::check_pair;
using filters_detail::run_direct;
using filters_detail::run_separable;
using filters_detail::run_separable_u8;

namespace {

void check_kernel(const Kernel2D& k, const char* name) {
  if (k.rows <= 0 || k.cols <= 0 ||
      k.values.size() != static_cast<std::size_t>(k.rows) * static_cast<std::size_t>(k.cols))
    throw ValueError(std::string(name) + ": expected a non-empty 2-D kernel");
  if (k.rows > 1023 || k.cols > 1023)
    throw ValueError(std::string(name) + ": kernels larger than 1023 taps per side are not supported");
  for (float v : k.values)
    if (!std::isfinite(v)) throw ValueError(std::string(name) + ": kernel values must be finite");
}

void check_kernel_1d(const std::vector<float>& k, const char* name) {
  if (k.empty() || k.size() > 1023)
    throw ValueError(std::string(name) + ": expected a 1-D kernel of 1 to 1023 taps");
  for (float v : k)
    if (!std::isfinite(v)) throw ValueError(std::string(name) + ": kernel values must be finite");
}

void check_scale(double scale) {
  if (!std::isfinite(scale)) throw ValueError("scale: expected a finite number");
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

// The x and y factors of a derivative filter (cv::getDerivKernels), with
// `scale` folded into the factor that smooths (OpenCV does the same).
void deriv_pair(int dx, int dy, int ksize, double scale, std::vector<float>& kx,
                std::vector<float>& ky) {
  check_order(dx, dy);
  check_scale(scale);
  if (ksize != -1 && (ksize <= 0 || ksize % 2 == 0 || ksize > 31))
    throw ValueError("ksize: expected 1, 3, 5, 7, ... 31 (or -1 for Scharr), got " +
                     std::to_string(ksize));
  if (ksize == -1 && dx + dy != 1)
    throw ValueError("Scharr: expected dx + dy == 1, got dx=" + std::to_string(dx) +
                     " dy=" + std::to_string(dy));
  std::vector<double> fx = deriv_kernel(dx, ksize), fy = deriv_kernel(dy, ksize);
  if (dx == 0) {
    kx = to_float(fx, scale);
    ky = to_float(fy);
  } else {
    kx = to_float(fx);
    ky = to_float(fy, scale);
  }
}

// OpenCV's uint8 Gaussian taps: the kernel in units of 1/256 (ufixedpoint16). The arithmetic follows cv::getGaussianKernel's
// bit-exact variant: doubled coordinates, multiplication by 1/sum.
std::vector<std::int16_t> gaussian_kernel_fixed_u8(int ksize, double sigma) {
  std::vector<double> g;
  if (sigma <= 0 && ksize <= 9) {
    g = gaussian_kernel(ksize, 0.0);  // OpenCV's exact tables
  } else {
    const double s = sigma > 0 ? sigma : std::fma(ksize, 0.15, 0.35);
    const double scale2 = -0.125 / (s * s);
    double sum = 0;
    g.resize(static_cast<std::size_t>(ksize));
    for (int i = 0, x = 1 - ksize; i < ksize; ++i, x += 2) {
      g[i] = std::exp(static_cast<double>(x * x) * scale2);
      sum += g[i];
    }
    const double inv = 1.0 / sum;
    for (double& v : g) v *= inv;
  }
  // Quantise with error diffusion from the outside in, symmetric, and give the
  // centre tap the rest so the taps sum to exactly 256 (a flat image stays flat).
  const std::size_t n = g.size();
  std::vector<std::int16_t> q(n);
  double err = 0;
  int sum = 0;
  for (std::size_t i = 0; i < n / 2; ++i) {
    const double adj = g[i] * 256.0 + err;
    const double v = std::nearbyint(adj);
    err = adj - v;
    q[i] = q[n - 1 - i] = static_cast<std::int16_t>(v);
    sum += 2 * static_cast<int>(v);
  }
  q[n / 2] = static_cast<std::int16_t>(256 - sum);
  return q;
}

std::vector<std::int16_t> to_int16(const std::vector<float>& v) {
  return std::vector<std::int16_t>(v.begin(), v.end());
}

std::vector<float> prewitt_factor(int order) {
  if (order == 0) return {1.f, 1.f, 1.f};
  return {-1.f, 0.f, 1.f};
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
  check_pair(src, dst);
  check_kernel_1d(kx, "kernel_x");
  check_kernel_1d(ky, "kernel_y");
  check_options(opt, static_cast<int>(ky.size()), static_cast<int>(kx.size()));
  if (src.depth == Depth::u8 && filters_detail::integer_kernels_fit_u8(kx, ky))
    run_separable_u8(src, dst, {to_int16(kx)}, {to_int16(ky)}, Combine::sum, false, opt);  // exact, 16-bit lanes
  else
    run_separable(src, dst, {kx}, {ky}, Combine::sum, opt);
}

void sep_filter2d_terms(const ImageView& src, const ImageView& dst,
                        const std::vector<std::vector<float>>& kx,
                        const std::vector<std::vector<float>>& ky, Combine combine,
                        const FilterOptions& opt) {
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
  if (ksize_x <= 0 || ksize_y <= 0 || ksize_x % 2 == 0 || ksize_y % 2 == 0)
    throw ValueError("ksize: expected odd positive kernel sizes (or sigma > 0 to derive them), got " +
                     std::to_string(ksize_x) + "x" + std::to_string(ksize_y));
  FilterOptions opt;
  opt.border = border;
  if (src.depth == Depth::u8 && dst.depth == Depth::u8) {
    // OpenCV's uint8 Gaussian is integer fixed point; run the same arithmetic
    // so that results are bit-exact.
    check_options(opt, ksize_y, ksize_x);
    run_separable_u8(src, dst, {gaussian_kernel_fixed_u8(ksize_x, std::max(sigma_x, 0.0))},
                     {gaussian_kernel_fixed_u8(ksize_y, std::max(sigma_y, 0.0))}, Combine::sum, true,
                     opt);
    return;
  }
  sep_filter2d(src, dst, to_float(gaussian_kernel(ksize_x, std::max(sigma_x, 0.0))),
               to_float(gaussian_kernel(ksize_y, std::max(sigma_y, 0.0))), opt);
}

void sobel(const ImageView& src, const ImageView& dst, int dx, int dy, int ksize, double scale,
           const FilterOptions& opt) {
  std::vector<float> kx, ky;
  deriv_pair(dx, dy, ksize, scale, kx, ky);
  sep_filter2d(src, dst, kx, ky, opt);
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
  std::vector<float> kx = prewitt_factor(dx), ky = prewitt_factor(dy);
  for (float& v : (dx == 0 ? kx : ky)) v *= static_cast<float>(scale);
  sep_filter2d(src, dst, kx, ky, opt);
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
    const float* src_k = ksize == 1 ? k1 : k3;
    for (int i = 0; i < 9; ++i) k.values.push_back(src_k[i] * static_cast<float>(scale));
    filter2d(src, dst, k, opt);
    return;
  }
  // d2/dx2 + d2/dy2 with Sobel factors, one pass over the image.
  std::vector<float> d2 = to_float(deriv_kernel(2, ksize)), s = to_float(deriv_kernel(0, ksize), scale);
  sep_filter2d_terms(src, dst, {d2, s}, {s, d2}, Combine::sum, opt);
}

void laplacian_of_gaussian(const ImageView& src, const ImageView& dst, int ksize, double sigma,
                           double scale, const FilterOptions& opt) {
  check_scale(scale);
  std::vector<double> g, gxx;
  log_kernel_factors(ksize, sigma, g, gxx);
  std::vector<float> fg = to_float(g), fgs = to_float(g, scale), fxx = to_float(gxx),
                     fxxs = to_float(gxx, scale);
  sep_filter2d_terms(src, dst, {fxx, fg}, {fgs, fxxs}, Combine::sum, opt);
}

void difference_of_gaussians(const ImageView& src, const ImageView& dst, int ksize,
                             double sigma1, double sigma2, const FilterOptions& opt) {
  if (!std::isfinite(sigma1) || !std::isfinite(sigma2) || sigma1 <= 0 || sigma2 <= 0)
    throw ValueError("sigma1, sigma2: expected positive finite numbers");
  if (ksize <= 0) ksize = gaussian_ksize_for_sigma(std::max(sigma1, sigma2), Depth::f32);
  std::vector<float> g1 = to_float(gaussian_kernel(ksize, sigma1));
  std::vector<float> g2 = to_float(gaussian_kernel(ksize, sigma2));
  std::vector<float> g2neg = to_float(gaussian_kernel(ksize, sigma2), -1.0);
  sep_filter2d_terms(src, dst, {g1, g2}, {g1, g2neg}, Combine::sum, opt);
}

void gradient_magnitude(const ImageView& src, const ImageView& dst, GradientOperator op,
                        int ksize, bool l1, const FilterOptions& opt) {
  std::vector<float> xx, xy, yx, yy;  // term x: (xx, xy), term y: (yx, yy)
  switch (op) {
    case GradientOperator::sobel:
      deriv_pair(1, 0, ksize, 1.0, xx, xy);
      deriv_pair(0, 1, ksize, 1.0, yx, yy);
      break;
    case GradientOperator::scharr:
      deriv_pair(1, 0, -1, 1.0, xx, xy);
      deriv_pair(0, 1, -1, 1.0, yx, yy);
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
  if (src.depth == Depth::u8 && filters_detail::integer_kernels_fit_u8(kx[0], ky[0]) &&
      filters_detail::integer_kernels_fit_u8(kx[1], ky[1])) {
    check_pair(src, dst);
    check_options(opt, static_cast<int>(h), static_cast<int>(w));
    run_separable_u8(src, dst, {to_int16(kx[0]), to_int16(kx[1])},
                     {to_int16(ky[0]), to_int16(ky[1])}, combine, false, opt);  // exact derivatives
    return;
  }
  sep_filter2d_terms(src, dst, kx, ky, combine, opt);
}

}  // namespace keensight
