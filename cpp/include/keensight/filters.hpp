// keensight filters: OpenCV-compatible linear image filters.
//
// All operators take a source view and a destination view of the same rows,
// cols and channels (the caller allocates the destination; depths may differ).
// Arithmetic is float32; integer outputs are rounded to nearest (ties to even)
// and saturated, as OpenCV's saturate_cast does.
#pragma once

#include <vector>

#include "keensight/core.hpp"

namespace keensight::filters {

// The largest kernel side, in taps, that any filter or kernel maker accepts, for
// every depth and whether the size is given or derived from sigma (a Gaussian of
// sigma ~ 128 already fills it). It bounds the time and memory one size argument
// can ask for; larger sizes raise ValueError naming the argument.
constexpr int kMaxKernelSize = 1023;

// OpenCV's border modes; the numbers are cv::BorderTypes.
enum class Border : int { constant = 0, replicate = 1, reflect = 2, wrap = 3, reflect101 = 4 };

// Index of the source pixel that stands for coordinate p of a line of length len
// (cv::borderInterpolate). Returns -1 for Border::constant outside [0, len).
std::int64_t border_index(std::int64_t p, std::int64_t len, Border border);

// A 2-D kernel, row-major, kh x kw.
struct Kernel2D {
  std::vector<float> values;
  int rows = 0, cols = 0;
  float at(int i, int j) const { return values[static_cast<std::size_t>(i) * cols + j]; }
};

// Common options of the filters: where the output pixel sits in the kernel,
// how the border is extended, and a constant added to every output.
// How a general 2-D kernel runs: direct (row passes, exact tap order) or by
// FFT (overlap-save tiles; cheaper for large kernels, float rounding differs).
// automatic picks by kernel size and image size.
enum class FilterMethod : int { automatic = 0, direct = 1, fft = 2 };

struct FilterOptions {
  int anchor_x = -1, anchor_y = -1;  // -1: the kernel centre (ksize / 2)
  Border border = Border::reflect101;
  double border_value = 0.0;  // for Border::constant
  double delta = 0.0;
  FilterMethod method = FilterMethod::automatic;  // filter2d / filter_bank only
};

// ---------------------------------------------------------------------------
// Kernel makers (double precision, as OpenCV returns CV_64F).
// cv::getGaussianKernel, with its bit-exact arithmetic: sigma <= 0 ->
// 0.3*((ksize-1)*0.5-1)+0.8, fixed tables for ksize <= 9 with sigma <= 0; a sigma
// whose square underflows gives the identity kernel. Odd ksize up to
// kMaxKernelSize. Sums to 1.
std::vector<double> gaussian_kernel(int ksize, double sigma);
// cv::getGaborKernel(ksize, sigma, theta, lambd, gamma, psi); size is
// (2*(ksize_y/2)+1) x (2*(ksize_x/2)+1), or derived from sigma for ksize <= 0
// (within kMaxKernelSize either way).
Kernel2D gabor_kernel(int ksize_x, int ksize_y, double sigma, double theta, double lambd,
                      double gamma, double psi);
// Laplacian of Gaussian: gxx (x) g + g (x) gxx with g the sampled normalised
// Gaussian and gxx its second derivative, corrected to sum to zero; so the 2-D
// kernel sums to zero and runs as two separable passes. A sigma far below a pixel
// gives the zero kernel.
Kernel2D log_kernel(int ksize, double sigma);
void log_kernel_factors(int ksize, double sigma, std::vector<double>& g, std::vector<double>& gxx);
// cv::getDerivKernels (unnormalised): derivative of order `order` with aperture
// ksize (1, 3, 5, 7; ksize 1 gives [1] for order 0 and the 3-tap kernel otherwise;
// -1 is Scharr).
std::vector<double> deriv_kernel(int order, int ksize);
// The ksize OpenCV's GaussianBlur uses when it is not given (ValueError naming
// sigma beyond kMaxKernelSize).
int gaussian_ksize_for_sigma(double sigma, Depth depth);

// ---------------------------------------------------------------------------
// Operators.

// Cross-correlation with a general 2-D kernel (cv::filter2D).
void filter2d(const ImageView& src, const ImageView& dst, const Kernel2D& kernel,
              const FilterOptions& opt = {});

// Several kernels of one size over one image, in one pass (a filter bank, e.g.
// Gabor): dsts[k] receives kernel k.
void filter_bank(const ImageView& src, const std::vector<ImageView>& dsts,
                 const std::vector<Kernel2D>& kernels, const FilterOptions& opt = {});

// Separable filter: rows with kx, then columns with ky (cv::sepFilter2D).
void sep_filter2d(const ImageView& src, const ImageView& dst, const std::vector<float>& kx,
                  const std::vector<float>& ky, const FilterOptions& opt = {});

// How a sum of separable terms is combined into the output.
enum class Combine : int { sum = 0, magnitude_l2 = 1, magnitude_l1 = 2 };

// A sum (or, for two terms, the L2/L1 magnitude) of separable terms over one
// pass of the image. Terms must share kx and ky sizes. Used by Laplacian, LoG,
// DoG and gradient magnitude.
void sep_filter2d_terms(const ImageView& src, const ImageView& dst,
                        const std::vector<std::vector<float>>& kx,
                        const std::vector<std::vector<float>>& ky, Combine combine,
                        const FilterOptions& opt = {});

// cv::GaussianBlur. ksize_x/ksize_y <= 0 are derived from sigma as OpenCV does;
// sigma_y <= 0 takes sigma_x. uint8 -> uint8 and uint16 -> uint16 are OpenCV's
// fixed-point results bit for bit; other depths run in float32.
void gaussian_blur(const ImageView& src, const ImageView& dst, int ksize_x, int ksize_y,
                   double sigma_x, double sigma_y, Border border = Border::reflect101);

// cv::Sobel (ksize 1, 3, 5, 7; -1 = Scharr), cv::Scharr, Prewitt (3x3). The
// output is scale * derivative + delta, the scale applied to the finished sum
// (|scale| at most float32's largest value).
void sobel(const ImageView& src, const ImageView& dst, int dx, int dy, int ksize, double scale,
           const FilterOptions& opt = {});
void scharr(const ImageView& src, const ImageView& dst, int dx, int dy, double scale,
            const FilterOptions& opt = {});
void prewitt(const ImageView& src, const ImageView& dst, int dx, int dy, double scale,
             const FilterOptions& opt = {});

// cv::Laplacian (ksize 1 = 4-neighbour kernel, 3, 5, 7).
void laplacian(const ImageView& src, const ImageView& dst, int ksize, double scale,
               const FilterOptions& opt = {});

// Laplacian of Gaussian with log_kernel(ksize, sigma), two separable passes.
void laplacian_of_gaussian(const ImageView& src, const ImageView& dst, int ksize, double sigma,
                           double scale, const FilterOptions& opt = {});

// Difference of Gaussians G(sigma1) - G(sigma2), both of size ksize, one pass.
void difference_of_gaussians(const ImageView& src, const ImageView& dst, int ksize,
                             double sigma1, double sigma2, const FilterOptions& opt = {});

// Gradient magnitude from a derivative pair: method 0 Sobel (ksize), 1 Prewitt,
// 2 Scharr; L2 = sqrt(gx^2 + gy^2) or L1 = |gx| + |gy|.
enum class GradientOperator : int { sobel = 0, prewitt = 1, scharr = 2 };
void gradient_magnitude(const ImageView& src, const ImageView& dst, GradientOperator op,
                        int ksize, bool l1, const FilterOptions& opt = {});

}  // namespace keensight::filters
