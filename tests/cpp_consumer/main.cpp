// Uses the installed keensight C++ library with no Python: a 3x3 box filter
// with the default reflect101 border, checked against a direct loop.
#include <keensight/filters.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  const int H = 7, W = 9;
  std::vector<float> src(H * W), dst(H * W);
  for (int i = 0; i < H * W; ++i) src[i] = static_cast<float>((i * 37) % 11);
  keensight::ImageView s{src.data(), keensight::Depth::f32, H, W, 1, W * 4};
  keensight::ImageView d{dst.data(), keensight::Depth::f32, H, W, 1, W * 4};
  keensight::filters::Kernel2D box{std::vector<float>(9, 1.f / 9.f), 3, 3};
  keensight::filters::filter2d(s, d, box);
  double worst = 0;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      double acc = 0;
      for (int i = -1; i <= 1; ++i)
        for (int j = -1; j <= 1; ++j) {
          const int yy = keensight::filters::border_index(y + i, H, keensight::filters::Border::reflect101);
          const int xx = keensight::filters::border_index(x + j, W, keensight::filters::Border::reflect101);
          acc += src[yy * W + xx] / 9.0;
        }
      worst = std::fmax(worst, std::fabs(acc - dst[y * W + x]));
    }
  const std::vector<double> g = keensight::filters::gaussian_kernel(5, 0.0);
  const double g_sum = g[0] + g[1] + g[2] + g[3] + g[4];
  std::printf("isa=%s worst=%g gsum=%.12f\n", keensight::isa_name(keensight::cpu_info().active), worst,
              g_sum);
  return (worst < 1e-5 && std::fabs(g_sum - 1.0) < 1e-12 && g[2] == 0.375) ? 0 : 1;
}
