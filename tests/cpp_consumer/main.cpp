// Uses the installed keensight C++ library with no Python: a 3x3 box filter
// with the default reflect101 border, checked against a direct loop; and the one
// Index protocol (FlatIndex and HNSWIndex through search::Index&) checked
// against a brute-force loop.
#include <keensight/filters.hpp>
#include <keensight/search.hpp>
#include <keensight/search/hnsw.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace ks = keensight::search;

// Exercises every protocol method on `index` over n x dim rows; returns the number of
// failed checks (printed).
int check_index(ks::Index& index, const char* name) {
  const std::int64_t n = 200, dim = 8;
  std::vector<float> rows(n * dim);
  std::mt19937 rng(7);  // distinct rows: each one's nearest row is itself alone
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  for (float& v : rows) v = uniform(rng);
  std::vector<std::int64_t> ids(n);
  for (std::int64_t i = 0; i < n; ++i) ids[i] = 1000 + 3 * i;
  int bad = 0;
  const auto expect = [&](bool ok, const char* what) {
    if (!ok) std::printf("FAIL %s: %s\n", name, what);
    bad += ok ? 0 : 1;
  };
  index.add(rows.data(), n, ids.data());
  expect(index.size() == n && index.ids().size() == static_cast<std::size_t>(n), "size / ids after add");
  // Each stored row finds itself (distance 0) under its own id.
  std::vector<float> d(n);
  std::vector<std::int64_t> got(n);
  index.search(rows.data(), n, 1, d.data(), got.data());
  std::int64_t self = 0;
  for (std::int64_t i = 0; i < n; ++i) self += (got[i] == ids[i] && d[i] == 0.f) ? 1 : 0;
  expect(self == n, "self search");
  // Range search with a radius between 0 and the nearest other row: only the row itself.
  const ks::RangeSearchResult r = index.range_search(rows.data(), 5, 1e-6f);
  expect(r.lims.size() == 6 && r.lims[5] == 5 && r.ids[0] == ids[0], "range_search");
  std::vector<float> item(dim);
  index.get_items(&ids[7], 1, item.data());
  bool same = true;
  for (std::int64_t j = 0; j < dim; ++j) same = same && std::fabs(item[j] - rows[7 * dim + j]) < 1e-5f;
  expect(same, "get_items");
  expect(index.remove(&ids[0], 1) == 1 && index.size() == n - 1, "remove");
  index.search(rows.data(), 1, 1, d.data(), got.data());
  expect(got[0] != ids[0], "removed id not returned");
  expect(!index.to_bytes().empty(), "to_bytes");
  index.reset();
  expect(index.size() == 0, "reset");
  return bad;
}

int main() {
  ks::FlatIndex flat(8, ks::Metric::l2);
  ks::HNSWIndex hnsw(8);
  const int index_failures = check_index(flat, "FlatIndex") + check_index(hnsw, "HNSWIndex");
  std::printf("index_failures=%d\n", index_failures);

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
  return (index_failures == 0 && worst < 1e-5 && std::fabs(g_sum - 1.0) < 1e-12 && g[2] == 0.375) ? 0 : 1;
}
