// Kernel makers with OpenCV's conventions (cv::getGaussianKernel,
// cv::getGaborKernel, cv::getDerivKernels), and the Laplacian-of-Gaussian factors.
#include <cmath>
#include <string>

#include "keensight/filters.hpp"

namespace keensight {

namespace {
void require_finite(double v, const char* name) {
  if (!std::isfinite(v)) throw ValueError(std::string(name) + ": expected a finite number");
}
void require_odd_ksize(int ksize, const char* name, int max_ksize = 1023) {
  if (ksize <= 0 || ksize % 2 == 0 || ksize > max_ksize)
    throw ValueError(std::string(name) + ": expected an odd kernel size in [1, " +
                     std::to_string(max_ksize) + "], got " + std::to_string(ksize));
}
}  // namespace

std::vector<double> gaussian_kernel(int ksize, double sigma) {
  require_odd_ksize(ksize, "ksize");
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
  const double s = sigma > 0 ? sigma : ((ksize - 1) * 0.5 - 1) * 0.3 + 0.8;
  const double scale2 = -0.5 / (s * s);
  double sum = 0;
  for (int i = 0; i < ksize; ++i) {
    const double x = i - (ksize - 1) * 0.5;
    k[i] = std::exp(scale2 * x * x);
    sum += k[i];
  }
  for (double& v : k) v /= sum;
  return k;
}

int gaussian_ksize_for_sigma(double sigma, Depth depth) {
  require_finite(sigma, "sigma");
  if (sigma <= 0) throw ValueError("sigma: expected sigma > 0 when ksize is not given");
  const double k = sigma * (depth == Depth::u8 ? 3 : 4) * 2 + 1;
  if (k > 1023) throw ValueError("sigma: too large (kernel would exceed 1023 taps)");
  return static_cast<int>(std::lround(k)) | 1;
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
  const double sigma_x = sigma, sigma_y = sigma / gamma;
  const double c = std::cos(theta), s = std::sin(theta);
  const int nstds = 3;
  int xmax = ksize_x > 0 ? ksize_x / 2
                         : static_cast<int>(std::lround(std::max(std::fabs(nstds * sigma_x * c),
                                                                  std::fabs(nstds * sigma_y * s))));
  int ymax = ksize_y > 0 ? ksize_y / 2
                         : static_cast<int>(std::lround(std::max(std::fabs(nstds * sigma_x * s),
                                                                  std::fabs(nstds * sigma_y * c))));
  if (xmax > 511 || ymax > 511) throw ValueError("ksize: Gabor kernel larger than 1023 taps");
  Kernel2D k;
  k.rows = 2 * ymax + 1;
  k.cols = 2 * xmax + 1;
  k.values.assign(static_cast<std::size_t>(k.rows) * k.cols, 0.f);
  const double ex = -0.5 / (sigma_x * sigma_x), ey = -0.5 / (sigma_y * sigma_y);
  const double cscale = 2 * 3.14159265358979323846 / lambd;
  for (int y = -ymax; y <= ymax; ++y)
    for (int x = -xmax; x <= xmax; ++x) {
      const double xr = x * c + y * s, yr = -x * s + y * c;
      const double v = std::exp(ex * xr * xr + ey * yr * yr) * std::cos(cscale * xr + psi);
      // OpenCV stores the value at (ymax - y, xmax - x).
      k.values[static_cast<std::size_t>(ymax - y) * k.cols + (xmax - x)] = static_cast<float>(v);
    }
  return k;
}

void log_kernel_factors(int ksize, double sigma, std::vector<double>& g, std::vector<double>& gxx) {
  require_odd_ksize(ksize, "ksize");
  require_finite(sigma, "sigma");
  const double s = sigma > 0 ? sigma : ((ksize - 1) * 0.5 - 1) * 0.3 + 0.8;
  g.assign(static_cast<std::size_t>(ksize), 0.0);
  gxx.assign(static_cast<std::size_t>(ksize), 0.0);
  double sum = 0;
  for (int i = 0; i < ksize; ++i) {
    const double x = i - (ksize - 1) * 0.5;
    g[i] = std::exp(-0.5 * x * x / (s * s));
    sum += g[i];
  }
  double sum_xx = 0;
  for (int i = 0; i < ksize; ++i) {
    const double x = i - (ksize - 1) * 0.5;
    g[i] /= sum;
    gxx[i] = g[i] * (x * x - s * s) / (s * s * s * s);  // d2/dx2 of the Gaussian
    sum_xx += gxx[i];
  }
  // Truncation leaves sum(gxx) != 0; remove it so flat regions give exactly 0.
  for (int i = 0; i < ksize; ++i) gxx[i] -= g[i] * sum_xx;
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

}  // namespace keensight
