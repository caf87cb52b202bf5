// Internal: the two passes every linear filter runs on.
//
//   run_direct    K general 2-D kernels of one size over one image, sharing one
//                 ring of border-extended float rows (filter2D, filter banks).
//   run_separable a sum (or L2/L1 magnitude of two) of R separable terms: each
//                 source row is loaded once, filtered horizontally by every term
//                 into that term's ring, and each output row is a vertical pass
//                 over the rings (sepFilter2D, Sobel, Laplacian, LoG, DoG).
//
//   run_gaussian_u16 OpenCV's bit-exact uint16 Gaussian (cv::GaussianBlur on CV_16U).
//
// `scale` multiplies each filtered value before `opt.delta` is added (cv::Sobel's
// and cv::Laplacian's scale): applied to the finished sum, not folded into a
// kernel, so an output overflows to inf only when its true value does, and a
// zero response stays 0 (a scaled tap would overflow on the way and give
// inf - inf = NaN).
//
// Threads take contiguous bands of output rows, each with its own rings, so the
// result of every row is computed the same way whatever the thread count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "keensight/filters.hpp"

namespace keensight::filters::detail {

void run_direct(const ImageView& src, const std::vector<ImageView>& dsts,
                const std::vector<Kernel2D>& kernels, const FilterOptions& opt, double scale = 1.0);

void run_separable(const ImageView& src, const ImageView& dst,
                   const std::vector<std::vector<float>>& kx,
                   const std::vector<std::vector<float>>& ky, Combine combine,
                   const FilterOptions& opt, double scale = 1.0);

// The integer path for uint8 sources, one term or the magnitude of two. kx, ky:
// integer taps. fixed_point (one term, uint8 dst): OpenCV's bit-exact uint8
// Gaussian (taps in units of 1/256, u16 saturating row sums, output
// (sum + 2^15) >> 16); otherwise exact integer sums (the caller checks
// integer_kernels_fit_u8), converted like the float path.
bool integer_kernels_fit_u8(const std::vector<float>& kx, const std::vector<float>& ky);
void run_separable_u8(const ImageView& src, const ImageView& dst,
                      const std::vector<std::vector<std::int16_t>>& kx,
                      const std::vector<std::vector<std::int16_t>>& ky, Combine combine,
                      bool fixed_point, const FilterOptions& opt, double scale = 1.0);

// OpenCV's uint16 Gaussian, bit for bit: kx, ky from gaussian_kernel_fixed(..., 16)
// (odd, symmetric, summing to 2^16); border value 0. The result is the exact
// integer min(65535, (sum_ij ky[i] kx[j] src[y + i][x + j] + 2^31) >> 32), which is
// what OpenCV's ufixedpoint32 rows and ufixedpoint64 columns compute (nothing
// saturates or rounds before the end), so it is computed exactly, columns first.
void run_gaussian_u16(const ImageView& src, const ImageView& dst, const std::vector<std::int32_t>& kx,
                      const std::vector<std::int32_t>& ky, const FilterOptions& opt);

// OpenCV's fixed-point Gaussian taps (getGaussianKernelFixedPoint_ED): the
// kernel of gaussian_kernel(ksize, sigma) in units of 2^-fraction_bits (8 for
// uint8 images, ufixedpoint16; 16 for uint16, ufixedpoint32), symmetric, summing
// to exactly 2^fraction_bits.
std::vector<std::int32_t> gaussian_kernel_fixed(int ksize, double sigma, int fraction_bits);

// Validation shared by the operators.
void check_pair(const ImageView& src, const ImageView& dst);
void check_options(const FilterOptions& opt, int kh, int kw);
// The one kernel-size check (kMaxKernelSize): ValueError "<name>: expected an (odd)
// kernel size in [1, kMaxKernelSize] ..." otherwise. Every size is checked with it
// before anything is allocated from it.
void check_kernel_size(std::int64_t ksize, const char* name, bool odd);
// A double for an error message: 6 significant digits ("1e+300", not 301 digits).
std::string number_text(double v);

}  // namespace keensight::filters::detail
