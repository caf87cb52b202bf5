// Kernel makers with OpenCV's conventions (cv::getGaussianKernel,
// cv::getGaborKernel, cv::getDerivKernels), and the Laplacian-of-Gaussian factors.
#include <algorithm>
#include <cmath>
#include <string>

#include "filters/engine.hpp"

namespace keensight::filters {

using detail::check_kernel_size;
using detail::number_text;

namespace {
void require_finite(double v, const char* name) {
  if (!std::isfinite(v)) throw ValueError(std::string(name) + ": expected a finite number");
}

// OpenCV's sigma for a kernel of ksize taps when none is given:
// 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8, written as OpenCV evaluates it (one fma).
double default_sigma(int ksize) { return std::fma(ksize, 0.15, 0.35); }
}  // namespace

std::vector<double> gaussian_kernel(int ksize, double sigma) {
  check_kernel_size(ksize, "ksize", true);
  require_finite(sigma, "sigma");
  // OpenCV's fixed tables (multiples of 1/256) for small kernels when sigma is
  // not given; OpenCV 5 added the 9-tap one.
  static const double small_tab[5][9] = {
      {1.0},
      {0.25, 0.5, 0.25},
      {0.0625, 0.25, 0.375, 0.25, 0.0625},
      {0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125},
      {4 / 256., 13 / 256., 30 / 256., 51 / 256., 60 / 256., 51 / 256., 30 / 256., 13 / 256.,
       4 / 256.}};
  std::vector<double> k(static_cast<std::size_t>(ksize));
  if (sigma <= 0 && ksize <= 9) {
    for (int i = 0; i < ksize; ++i) k[i] = small_tab[ksize >> 1][i];
    return k;
  }
  // The arithmetic of OpenCV's bit-exact getGaussianKernel, operation for
  // operation, so that these doubles -- and the fixed-point taps quantised from
  // them for uint8 and uint16 -- are OpenCV's: doubled coordinates x = 2i - (n - 1)
  // (x^2 is an exact integer) with the factor -1/8 / sigma^2, the left half summed
  // in order, sum = 2 * half + 1. The centre tap is exp(0) = 1 by definition, never
  // computed as exp(0 * -inf): a sigma whose square underflows gives the identity
  // kernel [0 .. 0 1 0 .. 0] and one whose square overflows the box filter, as in
  // OpenCV.
  const double s = sigma > 0 ? sigma : default_sigma(ksize);
  const double scale2 = -0.125 / (s * s);
  const int half = ksize / 2;
  double sum = 0;
  for (int i = 0, x = 1 - ksize; i < half; ++i, x += 2) {
    k[i] = std::exp(static_cast<double>(x * x) * scale2);
    sum += k[i];
  }
  sum = sum * 2 + 1;
  const double inv = 1.0 / sum;
  for (int i = 0; i < half; ++i) k[i] = k[ksize - 1 - i] = k[i] * inv;
  k[half] = inv;
  return k;
}

namespace detail {

std::vector<std::int32_t> gaussian_kernel_fixed(int ksize, double sigma, int fraction_bits) {
  if (fraction_bits < 1 || fraction_bits > 16)
    throw ValueError("fraction_bits: expected 1 to 16, got " + std::to_string(fraction_bits));
  const std::vector<double> g = gaussian_kernel(ksize, sigma);
  // Quantise with error diffusion from the outside in, symmetric (rounding to
  // nearest, ties to even), and give the centre tap the rest so that the taps sum
  // to exactly 2^fraction_bits: a flat image stays flat. This is the rounding of
  // OpenCV's getGaussianKernelFixedPoint_ED.
  const std::int32_t one = std::int32_t{1} << fraction_bits;
  const std::size_t n = g.size();
  std::vector<std::int32_t> q(n);
  double err = 0;
  std::int32_t sum = 0;
  for (std::size_t i = 0; i < n / 2; ++i) {
    const double adj = g[i] * one + err;
    const double v = std::nearbyint(adj);
    err = adj - v;
    q[i] = q[n - 1 - i] = static_cast<std::int32_t>(v);
    sum += 2 * static_cast<std::int32_t>(v);
  }
  q[n / 2] = one - sum;
  return q;
}

}  // namespace detail

int gaussian_ksize_for_sigma(double sigma, Depth depth) {
  require_finite(sigma, "sigma");
  if (sigma <= 0) throw ValueError("sigma: expected sigma > 0 when ksize is not given");
  // cv::GaussianBlur: round(sigma * (3 for uint8, 4 otherwise) * 2 + 1) | 1.
  const double k = sigma * (depth == Depth::u8 ? 3 : 4) * 2 + 1;
  if (!(k <= kMaxKernelSize))
    throw ValueError("sigma: " + number_text(sigma) + " would need a kernel of about " + number_text(k) +
                     " taps, above the limit of " +
                     std::to_string(kMaxKernelSize) + " (give a smaller sigma or an explicit ksize)");
  return static_cast<int>(std::nearbyint(k)) | 1;
}

Kernel2D gabor_kernel(int ksize_x, int ksize_y, double sigma, double theta, double lambd,
                      double gamma, double psi) {
  require_finite(sigma, "sigma");
  require_finite(theta, "theta");
  require_finite(lambd, "lambd");
  require_finite(gamma, "gamma");
  require_finite(psi, "psi");
  if (sigma <= 0) throw ValueError("sigma: expected sigma > 0");
  if (lambd == 0) throw ValueError("lambd: expected a non-zero wavelength");
  if (gamma == 0) throw ValueError("gamma: expected a non-zero aspect ratio");
  if (ksize_x > 0) check_kernel_size(ksize_x, "ksize", false);
  if (ksize_y > 0) check_kernel_size(ksize_y, "ksize", false);
  const double sigma_x = sigma, sigma_y = sigma / gamma;
  const double c = std::cos(theta), s = std::sin(theta);
  const double nstds = 3;
  // cv::getGaborKernel's half-sizes; a size derived from sigma is checked in
  // double before it becomes an int (a huge sigma must not overflow the cast).
  const auto half_size = [&](int ksize, double extent) {
    if (ksize > 0) return ksize / 2;
    if (!(extent < kMaxKernelSize / 2 + 0.5))
      throw ValueError("sigma, gamma: the Gabor envelope would need a kernel of about " +
                       number_text(2 * extent + 1) + " taps, above the limit of " +
                       std::to_string(kMaxKernelSize) + " (give a smaller sigma or an explicit ksize)");
    return static_cast<int>(std::lround(extent));
  };
  const int xmax = half_size(ksize_x, std::max(std::fabs(nstds * sigma_x * c), std::fabs(nstds * sigma_y * s)));
  const int ymax = half_size(ksize_y, std::max(std::fabs(nstds * sigma_x * s), std::fabs(nstds * sigma_y * c)));
  const double cscale = 2 * 3.14159265358979323846 / lambd;
  if (!std::isfinite(cscale * (xmax + ymax + 1)))
    throw ValueError("lambd: wavelength too small for a finite kernel, got " + number_text(lambd));
  Kernel2D k;
  k.rows = 2 * ymax + 1;
  k.cols = 2 * xmax + 1;
  k.values.assign(static_cast<std::size_t>(k.rows) * k.cols, 0.f);
  for (int y = -ymax; y <= ymax; ++y)
    for (int x = -xmax; x <= xmax; ++x) {
      const double xr = x * c + y * s, yr = -x * s + y * c;
      // The envelope as exp(-((xr / sigma_x)^2 + (yr / sigma_y)^2) / 2): unlike
      // OpenCV's xr^2 * (-1 / (2 sigma_x^2)) it stays finite when sigma^2
      // underflows (the centre is 0, not 0 * -inf).
      const double u = xr == 0 ? 0.0 : xr / sigma_x, w = yr == 0 ? 0.0 : yr / sigma_y;
      const double v = std::exp(-0.5 * (u * u + w * w)) * std::cos(cscale * xr + psi);
      // OpenCV stores the value at (ymax - y, xmax - x).
      k.values[static_cast<std::size_t>(ymax - y) * k.cols + (xmax - x)] = static_cast<float>(v);
    }
  return k;
}

void log_kernel_factors(int ksize, double sigma, std::vector<double>& g, std::vector<double>& gxx) {
  check_kernel_size(ksize, "ksize", true);
  require_finite(sigma, "sigma");
  const double s = sigma > 0 ? sigma : default_sigma(ksize);
  g = gaussian_kernel(ksize, s);  // s > 0: the sampled Gaussian, never a fixed table
  // gxx = g (x^2 - s^2) / s^4 (the Gaussian's second derivative), then minus
  // g * sum(gxx) so that it sums to zero. With sum(g) = 1 that is
  // g (x^2 - m2) / s^4, m2 = sum(g x^2): the same kernel without the cancellation
  // of two terms of order 1 / s^2, which overflow to inf - inf when sigma is tiny.
  // A Gaussian far narrower than a pixel leaves nothing between the samples to
  // curve: every tap is then exactly 0 (so is the LoG response).
  const int half = ksize / 2;
  double m2 = 0;
  for (int i = 0; i < ksize; ++i) m2 += g[i] * static_cast<double>((i - half) * (i - half));
  gxx.assign(static_cast<std::size_t>(ksize), 0.0);
  for (int i = 0; i < ksize; ++i) {
    const double num = g[i] * (static_cast<double>((i - half) * (i - half)) - m2);
    gxx[i] = num == 0 ? 0.0 : num / (s * s) / (s * s);
  }
}

Kernel2D log_kernel(int ksize, double sigma) {
  std::vector<double> g, gxx;
  log_kernel_factors(ksize, sigma, g, gxx);
  Kernel2D k;
  k.rows = k.cols = ksize;
  k.values.resize(static_cast<std::size_t>(ksize) * ksize);
  for (int i = 0; i < ksize; ++i)
    for (int j = 0; j < ksize; ++j)
      k.values[static_cast<std::size_t>(i) * ksize + j] =
          static_cast<float>(gxx[j] * g[i] + g[j] * gxx[i]);
  return k;
}

std::vector<double> deriv_kernel(int order, int ksize) {
  if (order < 0) throw ValueError("order: expected a non-negative derivative order");
  if (ksize == -1) {  // Scharr (cv::FILTER_SCHARR)
    if (order == 0) return {3, 10, 3};
    if (order == 1) return {-1, 0, 1};
    throw ValueError("Scharr: expected derivative order 0 or 1, got " + std::to_string(order));
  }
  if (ksize <= 0 || ksize % 2 == 0 || ksize > 31)
    throw ValueError("ksize: expected 1, 3, 5, ..., 31 (or -1 for Scharr), got " +
                     std::to_string(ksize));
  if (ksize == 1 && order == 0) return {1};
  if (ksize == 1) ksize = 3;  // OpenCV: ksize 1 means a 3-tap derivative without smoothing
  if (order >= ksize)
    throw ValueError("order: derivative order " + std::to_string(order) +
                     " needs a kernel size larger than " + std::to_string(ksize));
  // Binomial smoothing ([1 1] applied ksize-order-1 times) then differences
  // ([-1 1] applied order times), as cv::getDerivKernels builds them.
  std::vector<double> k{1.0};
  for (int i = 0; i < ksize - order - 1; ++i) {
    std::vector<double> n(k.size() + 1, 0.0);
    for (std::size_t j = 0; j < k.size(); ++j) {
      n[j] += k[j];
      n[j + 1] += k[j];
    }
    k.swap(n);
  }
  for (int i = 0; i < order; ++i) {
    std::vector<double> n(k.size() + 1, 0.0);
    for (std::size_t j = 0; j < k.size(); ++j) {
      n[j] -= k[j];
      n[j + 1] += k[j];
    }
    k.swap(n);
  }
  return k;
}

}  // namespace keensight::filters
