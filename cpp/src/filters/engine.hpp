// Internal: the two passes every linear filter runs on.
//
//   run_direct    K general 2-D kernels of one size over one image, sharing one
//                 ring of border-extended float rows (filter2D, filter banks).
//   run_separable a sum (or L2/L1 magnitude of two) of R separable terms: each
//                 source row is loaded once, filtered horizontally by every term
//                 into that term's ring, and each output row is a vertical pass
//                 over the rings (sepFilter2D, Sobel, Laplacian, LoG, DoG).
//
// Threads take contiguous bands of output rows, each with its own rings, so the
// result of every row is computed the same way whatever the thread count.
#pragma once

#include <vector>

#include "keensight/filters.hpp"

namespace keensight::filters_detail {

void run_direct(const ImageView& src, const std::vector<ImageView>& dsts,
                const std::vector<Kernel2D>& kernels, const FilterOptions& opt);

void run_separable(const ImageView& src, const ImageView& dst,
                   const std::vector<std::vector<float>>& kx,
                   const std::vector<std::vector<float>>& ky, Combine combine,
                   const FilterOptions& opt);

// The integer path for uint8 sources, one term or the magnitude of two. kx, ky:
// integer taps. fixed_point (one term, uint8 dst): OpenCV's bit-exact uint8
// Gaussian (taps in units of 1/256, u16 saturating row sums, output
// (sum + 2^15) >> 16); otherwise exact integer sums (the caller checks
// integer_kernels_fit_u8), converted like the float path.
bool integer_kernels_fit_u8(const std::vector<float>& kx, const std::vector<float>& ky);
void run_separable_u8(const ImageView& src, const ImageView& dst,
                      const std::vector<std::vector<std::int16_t>>& kx,
                      const std::vector<std::vector<std::int16_t>>& ky, Combine combine,
                      bool fixed_point, const FilterOptions& opt);

// Validation shared by the operators.
void check_pair(const ImageView& src, const ImageView& dst);
void check_options(const FilterOptions& opt, int kh, int kw);

}  // namespace keensight::filters_detail
