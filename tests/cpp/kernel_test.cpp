// The C++ kernel test: every entry of every area's kernel table, at every level this
// CPU has, against the same entry of the scalar table (the reference), on lengths
// 0 .. 3 * 16 (three AVX-512 float vectors: full vectors, tails and the empty case),
// pointers 1..3 elements past 64-byte alignment where the kernel's contract allows it,
// and odd strides. Outputs carry guard elements after their end that must stay
// untouched. Integer kernels and pure data movement must agree bit for bit; float sums
// within a relative bound of the sum of |terms| (SIMD lanes reorder the additions and
// fuse multiply-adds). Also: every table is complete (no null entry), and the
// TensorView checks accept good views and refuse bad ones.
//
// Built by CMake with -DKEENSIGHT_BUILD_TESTS=ON (target kernel_test); run by
// tests/test_kernels_cpp.py. Exits 1 after printing every mismatch as
// "FAIL <area>.<kernel> level=<level> n=<length> ...".
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/dispatch.hpp"
#include "core/gemm.hpp"
#include "filters/kernels.hpp"
#include "keensight/core.hpp"
#include "nn/pool_window.hpp"  // nn ops section
#include "nn/kernels.hpp"
#include "preprocess/kernels.hpp"
#include "search/kernels.hpp"

namespace {

using keensight::Isa;
namespace kf = keensight::filters::detail;
namespace ks = keensight::search::detail;
namespace kp = keensight::preprocess::detail;
namespace kd = keensight::detail;

constexpr std::int64_t kMaxLen = 48;  // 3 x 16 floats
constexpr std::int64_t kGuard = 16;   // elements after an output that must stay untouched

int g_failures = 0;
int g_checks = 0;
Isa g_level = Isa::scalar;
const char* g_kernel = "";

// Mismatches per "<kernel> level=<level>": the first few are printed in full.
std::map<std::string, int> g_failed;

void fail(std::int64_t n, const std::string& what) {
  ++g_failures;
  if (++g_failed[std::string(g_kernel) + " level=" + keensight::isa_name(g_level)] <= 3)
    std::printf("FAIL %s level=%s n=%lld %s\n", g_kernel, keensight::isa_name(g_level), static_cast<long long>(n),
                what.c_str());
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// A buffer of T whose data() is `misalign` elements past a 64-byte boundary, with
// kGuard sentinel elements after `size` elements.
template <class T>
class Buf {
 public:
  Buf(std::int64_t size, int misalign = 0) : size_(size) {
    storage_.resize(static_cast<std::size_t>(size + kGuard) * sizeof(T) + 64 + 64 * sizeof(T));
    auto addr = reinterpret_cast<std::uintptr_t>(storage_.data());
    addr = (addr + 63) & ~std::uintptr_t(63);
    data_ = reinterpret_cast<T*>(addr) + misalign;
    if (size > 0) std::memset(static_cast<void*>(data_), 0, static_cast<std::size_t>(size) * sizeof(T));
    std::memset(static_cast<void*>(data_ + size), 0xA5, static_cast<std::size_t>(kGuard) * sizeof(T));
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](std::int64_t i) { return data_[i]; }
  const T& operator[](std::int64_t i) const { return data_[i]; }
  std::int64_t size() const { return size_; }
  bool guard_intact() const {
    const auto* g = reinterpret_cast<const unsigned char*>(data_ + size_);
    for (std::size_t i = 0; i < static_cast<std::size_t>(kGuard) * sizeof(T); ++i)
      if (g[i] != 0xA5) return false;
    return true;
  }

 private:
  std::int64_t size_;
  std::vector<unsigned char> storage_;
  T* data_;
};

std::mt19937 g_rng(12345);
float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(g_rng); }
int uniform_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g_rng); }
template <class T>
void fill(Buf<T>& b, float lo, float hi) {
  for (std::int64_t i = 0; i < b.size(); ++i) b[i] = static_cast<T>(uniform(lo, hi));
}
template <class T>
void fill_int(Buf<T>& b, int lo, int hi) {
  for (std::int64_t i = 0; i < b.size(); ++i) b[i] = static_cast<T>(uniform_int(lo, hi));
}

// Float results: |got - want| <= rel * magnitude, magnitude >= sum of |terms| of the
// result (passed by the caller); NaN never matches.
constexpr double kRel = 2e-6;
void expect_close(std::int64_t n, const char* what, std::int64_t i, double got, double want, double magnitude,
                  double rel = kRel) {
  ++g_checks;
  const double tol = rel * std::max(magnitude, std::fabs(want)) + 1e-30;
  if (got != want && !(std::fabs(got - want) <= tol))
    fail(n, std::string(what) + "[" + std::to_string(i) + "] got " + num(got) + " want " + num(want) +
                " (tolerance " + num(tol) + ")");
}
template <class T>
void expect_equal(std::int64_t n, const char* what, std::int64_t i, T got, T want) {
  ++g_checks;
  if (!(got == want) && !(std::isnan(static_cast<double>(got)) && std::isnan(static_cast<double>(want))))
    fail(n, std::string(what) + "[" + std::to_string(i) + "] got " + num(static_cast<double>(got)) + " want " +
                num(static_cast<double>(want)) + " (bit-exact expected)");
}
template <class T>
void expect_guard(std::int64_t n, const Buf<T>& b, const char* what) {
  ++g_checks;
  if (!b.guard_intact()) fail(n, std::string(what) + ": wrote past the end of its output");
}

// ---------------------------------------------------------------------------
// filters
void test_filters(const kf::FilterKernels& sim, const kf::FilterKernels& ref) {
  using keensight::Depth;
  for (std::int64_t n = 0; n <= kMaxLen; ++n) {
    const int mis = static_cast<int>(n % 3) + 1;
    // load_row / store_row, every depth.
    for (Depth d : {Depth::u8, Depth::u16, Depth::s16, Depth::f32}) {
      g_kernel = "filters.load_row";
      Buf<std::uint8_t> src(n * 4, mis);
      fill_int(src, 0, 255);
      Buf<float> a(n, mis), b(n, mis);
      sim.load_row(src.data(), d, n, a.data());
      ref.load_row(src.data(), d, n, b.data());
      for (std::int64_t i = 0; i < n; ++i) expect_equal(n, keensight::depth_name(d), i, a[i], b[i]);
      expect_guard(n, a, "dst");

      g_kernel = "filters.store_row";
      Buf<float> in(n, mis);
      // Out-of-range values, exact halves (round half to even) and NaN.
      for (std::int64_t i = 0; i < n; ++i)
        in[i] = (i % 7 == 3) ? std::floor(uniform(-300.f, 300.f)) + 0.5f : uniform(-70000.f, 70000.f);
      if (n > 5) in[5] = std::numeric_limits<float>::quiet_NaN();
      for (const auto& sd : {std::pair<float, float>{1.f, 0.f}, {1.f, 0.5f}, {0.37f, -2.25f}}) {
        Buf<std::uint8_t> o1(n * 4, mis), o2(n * 4, mis);
        if (d == Depth::f32 && n > 5) in[5] = 1.f;  // NaN stays NaN in f32: compared separately below
        sim.store_row(in.data(), n, sd.first, sd.second, d, o1.data());
        ref.store_row(in.data(), n, sd.first, sd.second, d, o2.data());
        const std::int64_t bytes = n * static_cast<std::int64_t>(keensight::depth_size(d));
        const std::string label = std::string(keensight::depth_name(d)) + " scale " + num(sd.first) + " delta " +
                                  num(sd.second) + " byte";
        for (std::int64_t i = 0; i < bytes; ++i) expect_equal<int>(n, label.c_str(), i, o1[i], o2[i]);
        if (n > 5) in[5] = std::numeric_limits<float>::quiet_NaN();
      }
    }
    // accumulate_taps / accumulate_pairs: taps into one row at odd offsets (a
    // horizontal pass over 3 channels), accumulate and stream both ways.
    for (int ntaps : {1, 2, 3, 5, 7}) {
      const int step = 3;
      Buf<float> row(n + ntaps * step, mis);
      fill(row, -1.f, 1.f);
      std::vector<const float*> p(ntaps), q(ntaps);
      std::vector<float> coeffs(ntaps);
      for (int t = 0; t < ntaps; ++t) {
        p[t] = row.data() + t * step;
        q[t] = row.data() + (ntaps - 1 - t) * step + 1;
        coeffs[t] = uniform(-2.f, 2.f);
      }
      for (bool accumulate : {false, true})
        for (bool stream : {false, true}) {
          g_kernel = "filters.accumulate_taps";
          Buf<float> a(n, mis), b(n, mis);
          fill(a, -1.f, 1.f);
          for (std::int64_t i = 0; i < n; ++i) b[i] = a[i];
          sim.accumulate_taps(p.data(), coeffs.data(), ntaps, n, a.data(), accumulate, stream);
          ref.accumulate_taps(p.data(), coeffs.data(), ntaps, n, b.data(), accumulate, stream);
          kf::stream_fence();
          const double mag = 2.0 * ntaps + 1;  // |c| <= 2, |x| <= 1
          for (std::int64_t i = 0; i < n; ++i) expect_close(n, "dst", i, a[i], b[i], mag);
          expect_guard(n, a, "dst");
          for (bool subtract : {false, true}) {
            g_kernel = "filters.accumulate_pairs";
            Buf<float> c(n, mis), e(n, mis);
            fill(c, -1.f, 1.f);
            for (std::int64_t i = 0; i < n; ++i) e[i] = c[i];
            sim.accumulate_pairs(p.data(), q.data(), coeffs.data(), ntaps, subtract, n, c.data(), accumulate, stream);
            ref.accumulate_pairs(p.data(), q.data(), coeffs.data(), ntaps, subtract, n, e.data(), accumulate, stream);
            kf::stream_fence();
            for (std::int64_t i = 0; i < n; ++i) expect_close(n, "dst", i, c[i], e[i], 2 * mag);
            expect_guard(n, c, "dst");
          }
        }
    }
    // magnitude
    {
      g_kernel = "filters.magnitude";
      Buf<float> a(n, mis), b(n, 3 - mis + 1);
      fill(a, -100.f, 100.f);
      fill(b, -100.f, 100.f);
      for (bool l1 : {false, true}) {
        Buf<float> o1(n, mis), o2(n, mis);
        sim.magnitude(a.data(), b.data(), n, l1, o1.data());
        ref.magnitude(a.data(), b.data(), n, l1, o2.data());
        for (std::int64_t i = 0; i < n; ++i) expect_close(n, l1 ? "l1" : "l2", i, o1[i], o2[i], std::fabs(o2[i]), 4e-7);
        expect_guard(n, o1, "dst");
      }
    }
    // The uint8 integer path: bit-exact.
    for (int ntaps : {1, 3, 5}) {
      const int channels = 3;
      Buf<std::uint8_t> src(n + ntaps * channels, mis);
      fill_int(src, 0, 255);
      std::vector<std::int64_t> offsets(ntaps);
      for (int t = 0; t < ntaps; ++t) offsets[t] = t * channels;
      for (bool fixed_point : {false, true}) {
        g_kernel = "filters.hpass_u8";
        std::vector<std::int16_t> coeffs(ntaps);
        // Fixed point: non-negative ufixedpoint16 taps (<= 256, so sums saturate at
        // times); otherwise signed taps small enough never to overflow 16 bits.
        for (auto& c : coeffs) c = static_cast<std::int16_t>(fixed_point ? uniform_int(0, 256) : uniform_int(-25, 25));
        Buf<std::int16_t> a(n, mis), b(n, mis);
        sim.hpass_u8(src.data(), offsets.data(), coeffs.data(), ntaps, n, fixed_point, a.data());
        ref.hpass_u8(src.data(), offsets.data(), coeffs.data(), ntaps, n, fixed_point, b.data());
        for (std::int64_t i = 0; i < n; ++i) expect_equal<int>(n, fixed_point ? "fixed" : "signed", i, a[i], b[i]);
        expect_guard(n, a, "dst");
      }
      std::vector<Buf<std::int16_t>> rows_a, rows_b;
      std::vector<const std::int16_t*> pa, pb;
      for (int t = 0; t < ntaps; ++t) {
        rows_a.emplace_back(n, (mis + t) % 4);
        rows_b.emplace_back(n, (mis + 2 * t) % 4);
      }
      for (int t = 0; t < ntaps; ++t) {
        fill_int(rows_a[t], -32768, 32767);
        fill_int(rows_b[t], -32768, 32767);
        pa.push_back(rows_a[t].data());
        pb.push_back(rows_b[t].data());
      }
      std::vector<std::int16_t> ca(ntaps), cb(ntaps);
      for (auto& c : ca) c = static_cast<std::int16_t>(uniform_int(-3000, 3000));
      for (auto& c : cb) c = static_cast<std::int16_t>(uniform_int(-3000, 3000));
      {
        g_kernel = "filters.vpass_s16_u8";
        // Rows and taps of the Gaussian column pass: the sum >> 16 lands in and around 0..255.
        std::vector<std::int16_t> cu(ntaps);
        for (auto& c : cu) c = static_cast<std::int16_t>(uniform_int(0, 300));
        Buf<std::uint8_t> a(n, mis), b(n, mis);
        sim.vpass_s16_u8(pa.data(), cu.data(), ntaps, n, 1 << 15, a.data());
        ref.vpass_s16_u8(pa.data(), cu.data(), ntaps, n, 1 << 15, b.data());
        for (std::int64_t i = 0; i < n; ++i) expect_equal<int>(n, "dst", i, a[i], b[i]);
        expect_guard(n, a, "dst");
        Buf<std::uint8_t> c(n, mis), e(n, mis);
        sim.vpass_s16_u8(pa.data(), ca.data(), ntaps, n, 1 << 15, c.data());
        ref.vpass_s16_u8(pa.data(), ca.data(), ntaps, n, 1 << 15, e.data());
        for (std::int64_t i = 0; i < n; ++i) expect_equal<int>(n, "saturated", i, c[i], e[i]);
      }
      {
        g_kernel = "filters.vpass_s16_f32";
        Buf<float> a(n, mis), b(n, mis);
        sim.vpass_s16_f32(pa.data(), ca.data(), ntaps, n, 0.125f, -3.f, a.data());
        ref.vpass_s16_f32(pa.data(), ca.data(), ntaps, n, 0.125f, -3.f, b.data());
        for (std::int64_t i = 0; i < n; ++i) expect_close(n, "dst", i, a[i], b[i], std::fabs(b[i]) + 3.0, 2e-7);
        expect_guard(n, a, "dst");
      }
      for (bool l1 : {false, true}) {
        g_kernel = "filters.vpass_s16_magnitude";
        Buf<float> a(n, mis), b(n, mis);
        sim.vpass_s16_magnitude(pa.data(), ca.data(), ntaps, pb.data(), cb.data(), ntaps, n, l1, a.data());
        ref.vpass_s16_magnitude(pa.data(), ca.data(), ntaps, pb.data(), cb.data(), ntaps, n, l1, b.data());
        for (std::int64_t i = 0; i < n; ++i) expect_close(n, l1 ? "l1" : "l2", i, a[i], b[i], std::fabs(b[i]), 4e-7);
        expect_guard(n, a, "dst");
      }
    }
    // FFT down columns: n columns (any count), rows a power of two.
    for (std::int64_t rows : {1, 2, 4, 8, 16}) {
      g_kernel = "filters.fft_columns";
      std::vector<float> tw_re(static_cast<std::size_t>(std::max<std::int64_t>(rows / 2, 1))), tw_im(tw_re.size());
      for (std::int64_t k = 0; k < rows / 2; ++k) {
        tw_re[k] = static_cast<float>(std::cos(2 * M_PI * k / rows));
        tw_im[k] = static_cast<float>(-std::sin(2 * M_PI * k / rows));
      }
      Buf<float> re(rows * n, mis), im(rows * n, mis);
      fill(re, -1.f, 1.f);
      fill(im, -1.f, 1.f);
      Buf<float> re2(rows * n, mis), im2(rows * n, mis);
      for (std::int64_t i = 0; i < rows * n; ++i) {
        re2[i] = re[i];
        im2[i] = im[i];
      }
      sim.fft_columns(re.data(), im.data(), rows, n, tw_re.data(), tw_im.data());
      ref.fft_columns(re2.data(), im2.data(), rows, n, tw_re.data(), tw_im.data());
      // Each output is a sum of `rows` terms of modulus <= sqrt(2), through log2(rows) stages.
      const double mag = 1.5 * static_cast<double>(rows) * 8;
      for (std::int64_t i = 0; i < rows * n; ++i) {
        expect_close(n, "re", i, re[i], re2[i], mag);
        expect_close(n, "im", i, im[i], im2[i], mag);
      }
      expect_guard(n, re, "re");
      expect_guard(n, im, "im");
    }
    {
      g_kernel = "filters.complex_multiply";
      Buf<float> ar(n, mis), ai(n, 1), br(n, 2), bi(n, 3);
      for (auto* b : {&ar, &ai, &br, &bi}) fill(*b, -2.f, 2.f);
      Buf<float> o1(n, mis), o2(n, mis), p1(n, mis), p2(n, mis);
      sim.complex_multiply(ar.data(), ai.data(), br.data(), bi.data(), n, o1.data(), p1.data());
      ref.complex_multiply(ar.data(), ai.data(), br.data(), bi.data(), n, o2.data(), p2.data());
      for (std::int64_t i = 0; i < n; ++i) {
        const double mag = std::fabs(ar[i] * br[i]) + std::fabs(ai[i] * bi[i]) + std::fabs(ar[i] * bi[i]) +
                           std::fabs(ai[i] * br[i]);
        expect_close(n, "re", i, o1[i], o2[i], mag);
        expect_close(n, "im", i, p1[i], p2[i], mag);
      }
      expect_guard(n, o1, "out_re");
      expect_guard(n, p1, "out_im");
    }
    if (n > 0 && n % 8 == 0) {  // transpose_planes takes n x n planes, n a multiple of 8
      g_kernel = "filters.transpose_planes";
      Buf<float> sr(n * n, mis), si(n * n, mis);
      fill(sr, -5.f, 5.f);
      fill(si, -5.f, 5.f);
      std::vector<int> order(static_cast<std::size_t>(n));
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), g_rng);
      Buf<float> d1(n * n, mis), d2(n * n, mis), e1(n * n, mis), e2(n * n, mis);
      sim.transpose_planes(sr.data(), si.data(), n, order.data(), d1.data(), e1.data());
      ref.transpose_planes(sr.data(), si.data(), n, order.data(), d2.data(), e2.data());
      for (std::int64_t i = 0; i < n * n; ++i) {
        expect_equal(n, "re", i, d1[i], d2[i]);
        expect_equal(n, "im", i, e1[i], e2[i]);
      }
      expect_guard(n, d1, "dst_re");
    }
    for (int ksize : {1, 3, 5, 7, kf::kMaxColumnPairsX2}) {
      g_kernel = "filters.column_pairs_x2";
      std::vector<Buf<float>> rows;
      std::vector<const float*> ptrs;
      for (int t = 0; t <= ksize; ++t) rows.emplace_back(n, (mis + t) % 4);
      for (auto& r : rows) {
        fill(r, -1.f, 1.f);
        ptrs.push_back(r.data());
      }
      std::vector<float> coeffs((ksize + 1) / 2);
      for (auto& c : coeffs) c = uniform(-1.f, 1.f);
      for (bool subtract : {false, true}) {
        Buf<float> a0(n, mis), a1(n, mis), b0(n, mis), b1(n, mis);
        sim.column_pairs_x2(ptrs.data(), ksize, coeffs.data(), subtract, n, a0.data(), a1.data());
        ref.column_pairs_x2(ptrs.data(), ksize, coeffs.data(), subtract, n, b0.data(), b1.data());
        for (std::int64_t i = 0; i < n; ++i) {
          expect_close(n, "dst0", i, a0[i], b0[i], 2.0 * ksize);
          expect_close(n, "dst1", i, a1[i], b1[i], 2.0 * ksize);
        }
        expect_guard(n, a0, "dst0");
        expect_guard(n, a1, "dst1");
      }
    }
    for (std::int64_t step : {1, 3}) {
      g_kernel = "filters.symmetric3x3";
      Buf<float> up(n + 2 * step, mis), mid(n + 2 * step, 3 - mis + 1), down(n + 2 * step, mis);
      for (auto* b : {&up, &mid, &down}) fill(*b, -1.f, 1.f);
      for (const auto& cec : {std::array<float, 3>{1.f, 2.f, -12.f}, std::array<float, 3>{0.f, 1.f, -4.f},
                              std::array<float, 3>{0.f, 0.f, 3.f}})
        for (bool stream : {false, true}) {
          Buf<float> a(n, mis), b(n, mis);
          sim.symmetric3x3(up.data() + step, mid.data() + step, down.data() + step, n, step, cec[0], cec[1], cec[2],
                           a.data(), stream);
          ref.symmetric3x3(up.data() + step, mid.data() + step, down.data() + step, n, step, cec[0], cec[1], cec[2],
                           b.data(), stream);
          kf::stream_fence();
          const double mag = 4 * std::fabs(cec[0]) + 4 * std::fabs(cec[1]) + std::fabs(cec[2]);
          for (std::int64_t i = 0; i < n; ++i) expect_close(n, "dst", i, a[i], b[i], mag);
          expect_guard(n, a, "dst");
        }
    }
    // OpenCV's bit-exact uint16 Gaussian: odd symmetric integer taps summing to 2^16.
    for (int ksize : {1, 3, 5, 9}) {
      const int half = ksize / 2;
      std::vector<std::uint32_t> cu(half + 1);
      std::uint32_t rest = 65536;
      for (int i = 0; i < half; ++i) {
        cu[i] = static_cast<std::uint32_t>(uniform_int(1, static_cast<int>(rest / (2 * (half - i) + 1))));
        rest -= 2 * cu[i];
      }
      cu[half] = rest;
      {
        g_kernel = "filters.gauss_column_u16";
        std::vector<Buf<std::uint16_t>> rows;
        std::vector<const std::uint16_t*> ptrs;
        for (int t = 0; t < ksize; ++t) rows.emplace_back(n, (mis + t) % 4);
        for (auto& r : rows) {
          fill_int(r, 0, 65535);
          ptrs.push_back(r.data());
        }
        Buf<double> a(n, mis), b(n, mis);
        sim.gauss_column_u16(ptrs.data(), ksize, cu.data(), n, a.data());
        ref.gauss_column_u16(ptrs.data(), ksize, cu.data(), n, b.data());
        for (std::int64_t i = 0; i < n; ++i) expect_equal(n, "dst", i, a[i], b[i]);
        expect_guard(n, a, "dst");
      }
      for (std::int64_t step : {1, 3}) {
        g_kernel = "filters.gauss_row_u16";
        std::vector<double> cd(cu.begin(), cu.end());
        Buf<double> src(n + (ksize - 1) * step, mis);
        for (std::int64_t i = 0; i < src.size(); ++i) src[i] = static_cast<double>(uniform_int(0, 65535)) * 65536.0;
        Buf<std::uint16_t> a(n, mis), b(n, mis);
        sim.gauss_row_u16(src.data(), ksize, step, cd.data(), n, a.data());
        ref.gauss_row_u16(src.data(), ksize, step, cd.data(), n, b.data());
        for (std::int64_t i = 0; i < n; ++i) expect_equal<int>(n, "dst", i, a[i], b[i]);
        expect_guard(n, a, "dst");
      }
    }
  }
}

// ---------------------------------------------------------------------------
// search: pair distances, early abandoning, batches
void test_search(const ks::SearchKernels& sim, const ks::SearchKernels& ref) {
  const float inf = std::numeric_limits<float>::infinity();
  for (std::int64_t n = 0; n <= kMaxLen; ++n) {
    const int mis = static_cast<int>(n % 3) + 1;
    Buf<float> a(n, mis), b(n, 4 - mis), pa(n, mis), pb(n, 4 - mis);
    fill(a, -1.f, 1.f);
    fill(b, -1.f, 1.f);
    fill(pa, 0.f, 1.f);  // chi2 takes histograms
    fill(pb, 0.f, 1.f);
    if (n > 2) pa[2] = pb[2] = 0.f;  // a term with a + b == 0 is skipped
    double sum_sq = 0, sum_abs = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      sum_sq += (a[i] - b[i]) * (a[i] - b[i]);
      sum_abs += std::fabs(a[i] * b[i]);
    }
    g_kernel = "search.l2_sq";
    expect_close(n, "value", 0, sim.l2_sq(a.data(), b.data(), n), ref.l2_sq(a.data(), b.data(), n), sum_sq);
    g_kernel = "search.dot";
    expect_close(n, "value", 0, sim.dot(a.data(), b.data(), n), ref.dot(a.data(), b.data(), n), sum_abs);
    g_kernel = "search.l1";
    const float l1 = ref.l1(a.data(), b.data(), n);
    expect_close(n, "value", 0, sim.l1(a.data(), b.data(), n), l1, l1);
    g_kernel = "search.chi2";
    const float chi = ref.chi2(pa.data(), pb.data(), n);
    // Each term divides: a relative error of a few ulps per term.
    expect_close(n, "value", 0, sim.chi2(pa.data(), pb.data(), n), chi, chi, 4e-6);

    g_kernel = "search.l2_sq_bounded";
    const float full = sim.l2_sq_bounded(a.data(), b.data(), n, 0, inf, 0.f);
    expect_close(n, "unbounded", 0, full, ref.l2_sq_bounded(a.data(), b.data(), n, 0, inf, 0.f), sum_sq);
    for (std::int64_t granule : {std::int64_t(1), std::int64_t(5), std::int64_t(16), n}) {
      const float init = 0.25f;
      const float exact = sim.l2_sq_bounded(a.data(), b.data(), n, granule, inf, init);
      expect_close(n, "granules", granule, exact, ref.l2_sq_bounded(a.data(), b.data(), n, granule, inf, init),
                   sum_sq + init);
      for (float frac : {0.f, 0.3f, 0.9f, 2.f}) {
        const float bound = init + frac * static_cast<float>(sum_sq);
        const float got = sim.l2_sq_bounded(a.data(), b.data(), n, granule, bound, init);
        // Below the bound: the full value, bit for bit; at or above: a partial sum
        // that cannot exceed the full value, which is itself >= bound.
        ++g_checks;
        if (got < bound ? got != exact : !(exact >= bound && got <= exact))
          fail(n, "granule " + std::to_string(granule) + " bound " + num(bound) + ": got " + num(got) +
                      ", full value " + num(exact));
      }
    }
    // Batches: up to kBoundedLockstep / 5 rows, each row as if scored alone.
    for (std::int64_t count : {std::int64_t(1), std::int64_t(3), ks::kBoundedLockstep}) {
      std::vector<Buf<float>> rows;
      std::vector<const float*> ptrs;
      for (std::int64_t j = 0; j < count; ++j) rows.emplace_back(n, static_cast<int>((mis + j) % 4));
      for (auto& r : rows) {
        fill(r, -1.f, 1.f);
        ptrs.push_back(r.data());
      }
      g_kernel = "search.l2_sq_many";
      Buf<float> o1(count, 0), o2(count, 0);
      sim.l2_sq_many(a.data(), ptrs.data(), count, n, o1.data());
      ref.l2_sq_many(a.data(), ptrs.data(), count, n, o2.data());
      for (std::int64_t j = 0; j < count; ++j) {
        float alone;
        sim.l2_sq_many(a.data(), ptrs.data() + j, 1, n, &alone);
        expect_equal(n, "alone vs batch", j, o1[j], alone);
        expect_close(n, "row", j, o1[j], o2[j], o2[j]);
      }
      expect_guard(n, o1, "out");
      g_kernel = "search.l2_sq_bounded_many";
      std::vector<float> bound(count), init(count);
      for (std::int64_t j = 0; j < count; ++j) {
        init[j] = uniform(0.f, 1.f);
        bound[j] = j == 0 ? inf : init[j] + uniform(0.f, 1.f) * o2[j];
      }
      for (std::int64_t granule : {std::int64_t(4), std::int64_t(16)}) {
        Buf<float> got(count, 0);
        sim.l2_sq_bounded_many(a.data(), ptrs.data(), count, n, granule, bound.data(), init.data(), got.data());
        for (std::int64_t j = 0; j < count; ++j) {
          const float one = sim.l2_sq_bounded(a.data(), ptrs[j], n, granule, bound[j], init[j]);
          expect_equal(n, "row vs l2_sq_bounded", j, got[j], one);
          const float want = ref.l2_sq_bounded(a.data(), ptrs[j], n, granule, inf, init[j]);
          if (got[j] < bound[j]) expect_close(n, "full row", j, got[j], want, want);
        }
        expect_guard(n, got, "out");
      }
    }
    // l2_sq_rows: width n, an odd number of rows, accumulating.
    for (std::int64_t nrows : {std::int64_t(0), std::int64_t(1), std::int64_t(5), std::int64_t(9)}) {
      g_kernel = "search.l2_sq_rows";
      Buf<float> rows(nrows * n, mis);
      fill(rows, -1.f, 1.f);
      Buf<float> acc1(nrows, mis), acc2(nrows, mis);
      fill(acc1, 0.f, 2.f);
      for (std::int64_t i = 0; i < nrows; ++i) acc2[i] = acc1[i];
      sim.l2_sq_rows(a.data(), rows.data(), nrows, n, acc1.data());
      ref.l2_sq_rows(a.data(), rows.data(), nrows, n, acc2.data());
      for (std::int64_t i = 0; i < nrows; ++i) expect_close(n, "acc", i, acc1[i], acc2[i], acc2[i]);
      expect_guard(n, acc1, "acc");
    }
    g_kernel = "search.min_value";
    Buf<float> v(n, mis);
    fill(v, -10.f, 10.f);
    expect_equal(n, "min", 0, sim.min_value(v.data(), n), ref.min_value(v.data(), n));
  }
}

// ---------------------------------------------------------------------------
// core GEMM tile_rows_fused: rows x cols of a tile (every edge shape), with and
// without accumulation and the epilogue (bias, residual, clamp), against the
// product summed in double; nothing outside rows x cols is written.
void test_gemm_fused(const kd::GemmF32Kernels& sim) {
  const int mr = sim.mr, nr = sim.nr;
  g_kernel = "gemm.tile_rows_fused";
  for (std::int64_t kc : {std::int64_t{0}, std::int64_t{1}, std::int64_t{7}, std::int64_t{33}})
    for (int rows = 1; rows <= mr; ++rows)
      for (int cols = 1; cols <= nr; cols += (cols < 4 || cols > nr - 4) ? 1 : 5) {
        const std::int64_t lda = kc + 2, ldc = nr + 5, ldr = nr + 1;
        Buf<float> a(rows * lda, 1), b(kc * nr, 0), bias(nr, 2), res(rows * ldr, 3);
        fill(a, -1.f, 1.f);
        fill(b, -1.f, 1.f);
        fill(bias, -1.f, 1.f);
        fill(res, -1.f, 1.f);
        for (int variant = 0; variant < 4; ++variant) {
          const bool accumulate = variant & 1, epilogue = variant & 2;
          Buf<float> c(mr * ldc, 1);
          fill(c, -1.f, 1.f);
          std::vector<float> before(c.data(), c.data() + c.size());
          kd::TileEpilogue ep;
          ep.bias = bias.data();
          ep.residual = res.data();
          ep.ld_residual = ldr;
          ep.lo = -0.5f;
          ep.hi = 0.75f;
          sim.tile_rows_fused(kc, a.data(), lda, rows, b.data(), c.data(), ldc, cols, accumulate,
                              epilogue ? &ep : nullptr);
          for (int i = 0; i < mr; ++i)
            for (std::int64_t j = 0; j < ldc; ++j) {
              const std::int64_t at = i * ldc + j;
              if (i >= rows || j >= cols) {
                expect_equal(kc, "c outside rows x cols", at, c[at], before[static_cast<std::size_t>(at)]);
                continue;
              }
              double want = accumulate ? before[static_cast<std::size_t>(at)] : 0.0, mag = std::fabs(want) + 3.0;
              for (std::int64_t p = 0; p < kc; ++p) {
                want += static_cast<double>(a[i * lda + p]) * b[p * nr + j];
                mag += std::fabs(static_cast<double>(a[i * lda + p]) * b[p * nr + j]);
              }
              if (epilogue) {
                want += bias[j] + res[i * ldr + j];
                want = std::min(std::max(want, -0.5), 0.75);
              }
              expect_close(kc, "c", at, c[at], want, mag, 4e-7 * (kc + 4));
            }
          expect_guard(kc, c, "c");
        }
      }
}

// ---------------------------------------------------------------------------
// core GEMM f32 tiles: against the scalar tile when both have the same mr x nr shape,
// and always against the product summed in double (a level may pick another tile shape).
void test_gemm(const kd::GemmF32Kernels& sim, const kd::GemmF32Kernels& ref) {
  const int mr = sim.mr, nr = sim.nr;
  g_kernel = "gemm.shape";
  ++g_checks;
  if (mr <= 0 || nr <= 0 || nr % 8 != 0) fail(0, "mr " + std::to_string(mr) + " nr " + std::to_string(nr));
  for (std::int64_t kc = 0; kc <= kMaxLen; ++kc) {
    const int mis = static_cast<int>(kc % 3) + 1;
    // a and b of `tile` are packed panels, 32-byte aligned by contract; c is any
    // pointer with an odd row stride.
    Buf<float> ap(kc * mr, 0), b(kc * nr, 0);
    fill(ap, -1.f, 1.f);
    fill(b, -1.f, 1.f);
    const std::int64_t lda = kc + 3, ldc = nr + 3;
    Buf<float> arows(mr * lda, mis);
    for (int i = 0; i < mr; ++i)
      for (std::int64_t p = 0; p < kc; ++p) arows[i * lda + p] = ap[p * mr + i];
    std::vector<double> want(static_cast<std::size_t>(mr * nr)), mag(want.size());
    for (int i = 0; i < mr; ++i)
      for (int j = 0; j < nr; ++j)
        for (std::int64_t p = 0; p < kc; ++p) {
          want[i * nr + j] += static_cast<double>(ap[p * mr + i]) * b[p * nr + j];
          mag[i * nr + j] += std::fabs(static_cast<double>(ap[p * mr + i]) * b[p * nr + j]);
        }
    for (bool accumulate : {false, true})
      for (int rows_variant = 0; rows_variant < 2; ++rows_variant) {
        g_kernel = rows_variant ? "gemm.tile_rows" : "gemm.tile";
        Buf<float> c((mr - 1) * ldc + nr, mis);
        fill(c, -1.f, 1.f);
        std::vector<float> before(c.data(), c.data() + c.size());
        Buf<float> cref((mr - 1) * ldc + nr, mis);
        for (std::int64_t i = 0; i < c.size(); ++i) cref[i] = c[i];
        const bool same_shape = ref.mr == mr && ref.nr == nr;
        if (rows_variant) {
          sim.tile_rows(kc, arows.data(), lda, b.data(), c.data(), ldc, accumulate);
          if (same_shape) ref.tile_rows(kc, arows.data(), lda, b.data(), cref.data(), ldc, accumulate);
        } else {
          sim.tile(kc, ap.data(), b.data(), c.data(), ldc, accumulate);
          if (same_shape) ref.tile(kc, ap.data(), b.data(), cref.data(), ldc, accumulate);
        }
        if (same_shape)
          for (int i = 0; i < mr; ++i)
            for (int j = 0; j < nr; ++j)
              expect_close(kc, "c vs scalar", i * ldc + j, c[i * ldc + j], cref[i * ldc + j], mag[i * nr + j] + 1.0,
                           4e-7 * (kc + 2));
        for (int i = 0; i < mr; ++i) {
          for (int j = 0; j < nr; ++j) {
            const double w = want[i * nr + j] + (accumulate ? before[i * ldc + j] : 0.0);
            expect_close(kc, "c", i * ldc + j, c[i * ldc + j], w, mag[i * nr + j] + 1.0, 4e-7 * (kc + 2));
          }
          if (i + 1 < mr)
            for (std::int64_t j = nr; j < ldc; ++j)
              expect_equal(kc, "c padding (ldc > nr)", i * ldc + j, c[i * ldc + j], before[i * ldc + j]);
        }
        expect_guard(kc, c, "c");
      }
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (std::int64_t n = 0; n <= kMaxLen; ++n) {
    const int mis = static_cast<int>(n % 3) + 1;
    Buf<float> dots(n, mis), bias(n, 4 - mis);
    fill(dots, -10.f, 10.f);
    fill(bias, 0.f, 20.f);
    g_kernel = "gemm.bias_scale_min";
    Buf<float> o1(n, mis), o2(n, mis);
    const float m1 = sim.bias_scale_min(dots.data(), bias.data(), -2.f, n, o1.data());
    const float m2 = ref.bias_scale_min(dots.data(), bias.data(), -2.f, n, o2.data());
    expect_close(n, "min", 0, m1, m2, 40.0);
    for (std::int64_t i = 0; i < n; ++i) expect_close(n, "out", i, o1[i], o2[i], 40.0);
    expect_guard(n, o1, "out");
    g_kernel = "gemm.bias_scale_argmin";
    for (float bound : {inf, m2 + 1.f, m2 - 1.f}) {
      std::int64_t i1 = -7, i2 = -7;
      const float b1 = sim.bias_scale_argmin(dots.data(), bias.data(), -2.f, n, bound, &i1);
      const float b2 = ref.bias_scale_argmin(dots.data(), bias.data(), -2.f, n, bound, &i2);
      expect_close(n, "min", 0, b1, b2, 40.0);
      ++g_checks;
      if (b1 < bound ? !(i1 >= 0 && i1 < n && o1[i1] == b1) : i1 != -7)
        fail(n, "bound " + num(bound) + ": index " + std::to_string(i1) + " for minimum " + num(b1) +
                    " (reference index " + std::to_string(i2) + ")");
    }
  }
  // pack_panel_b: nr rows (some null) of k floats, offset or none, and their norms.
  for (std::int64_t k = 0; k <= kMaxLen; ++k) {
    g_kernel = "gemm.pack_panel_b";
    const int mis = static_cast<int>(k % 3) + 1;
    std::vector<Buf<float>> rows;
    std::vector<const float*> ptrs;
    for (int i = 0; i < nr; ++i) rows.emplace_back(k, (mis + i) % 4);
    for (int i = 0; i < nr; ++i) {
      fill(rows[i], -3.f, 3.f);
      ptrs.push_back(i % 5 == 4 ? nullptr : rows[i].data());
    }
    Buf<float> offset(k, mis);
    fill(offset, -1.f, 1.f);
    for (bool with_offset : {false, true}) {
      Buf<float> d1(k * nr, 0), d2(k * ref.nr, 0), n1(nr, mis), n2(ref.nr, mis);
      sim.pack_panel_b(ptrs.data(), k, with_offset ? offset.data() : nullptr, d1.data(), n1.data());
      if (ref.nr == nr) {
        ref.pack_panel_b(ptrs.data(), k, with_offset ? offset.data() : nullptr, d2.data(), n2.data());
        for (std::int64_t i = 0; i < k * nr; ++i) expect_equal(k, "dst", i, d1[i], d2[i]);
        for (int i = 0; i < nr; ++i) expect_close(k, "sq_norms", i, n1[i], n2[i], n2[i]);
      }
      for (int i = 0; i < nr; ++i)
        for (std::int64_t j = 0; j < k; ++j) {
          const float v = ptrs[i] ? (with_offset ? ptrs[i][j] - offset[j] : ptrs[i][j]) : 0.f;
          expect_equal(k, "dst by definition", j * nr + i, d1[j * nr + i], v);
        }
      expect_guard(k, d1, "dst");
      expect_guard(k, n1, "sq_norms");
      Buf<float> d3(k * nr, 0);  // sq_norms may be null
      sim.pack_panel_b(ptrs.data(), k, nullptr, d3.data(), nullptr);
      expect_guard(k, d3, "dst");
    }
  }
}

// ---------------------------------------------------------------------------
// preprocess
void test_preprocess(const kp::PreprocessKernels& sim, const kp::PreprocessKernels& ref) {
  for (std::int64_t n = 0; n <= kMaxLen; ++n) {
    const int mis = static_cast<int>(n % 3) + 1;
    for (int ntaps : {1, 2, 4}) {
      g_kernel = "preprocess.vertical_u8";
      std::vector<Buf<std::uint8_t>> rows;
      std::vector<const std::uint8_t*> ptrs;
      for (int t = 0; t < ntaps; ++t) rows.emplace_back(n, (mis + t) % 4);
      for (auto& r : rows) {
        fill_int(r, 0, 255);
        ptrs.push_back(r.data());
      }
      std::vector<float> w(ntaps);
      for (auto& x : w) x = uniform(-0.2f, 1.f);
      Buf<float> a(n, mis), b(n, mis);
      sim.vertical_u8(ptrs.data(), w.data(), ntaps, n, a.data());
      ref.vertical_u8(ptrs.data(), w.data(), ntaps, n, b.data());
      for (std::int64_t i = 0; i < n; ++i) expect_close(n, "dst", i, a[i], b[i], 255.0 * ntaps);
      expect_guard(n, a, "dst");
    }
    for (int channels : {1, 3, 4})
      for (std::int64_t step : {1, 3}) {
        g_kernel = "preprocess.horizontal_store";
        const int ntaps = 3;
        const std::int64_t width = n + ntaps + 2;
        Buf<float> row(width * channels, mis);
        fill(row, 0.f, 255.f);
        const int map[3] = {channels - 1, 0, channels > 1 ? 1 : 0};
        std::vector<std::int32_t> start(static_cast<std::size_t>(n));
        for (std::int64_t x = 0; x < n; ++x) start[x] = static_cast<std::int32_t>(std::min<std::int64_t>(x, width - ntaps));
        Buf<float> weights(ntaps * n, 0);
        fill(weights, -0.2f, 0.8f);
        const float scale[3] = {1 / 58.4f, 1 / 57.1f, 1 / 57.4f}, bias[3] = {-2.1f, -2.0f, -1.8f};
        const std::int64_t plane = n == 0 ? 0 : (n - 1) * step + 1;
        std::vector<Buf<float>> o1, o2;
        for (int c = 0; c < 3; ++c) {
          o1.emplace_back(plane, (mis + c) % 4);
          o2.emplace_back(plane, (mis + c) % 4);
        }
        float* d1[3] = {o1[0].data(), o1[1].data(), o1[2].data()};
        float* d2[3] = {o2[0].data(), o2[1].data(), o2[2].data()};
        sim.horizontal_store(row.data(), channels, map, start.data(), weights.data(), ntaps, n, scale, bias, d1, step);
        ref.horizontal_store(row.data(), channels, map, start.data(), weights.data(), ntaps, n, scale, bias, d2, step);
        for (int c = 0; c < 3; ++c) {
          for (std::int64_t i = 0; i < plane; ++i)
            expect_close(n, "dst", c * 1000 + i, o1[c][i], o2[c][i], 255.0 * 1.2 * ntaps / 57 + 2.1);
          expect_guard(n, o1[c], "dst");
        }
      }
  }
}

// ---------------------------------------------------------------------------
// TensorView: good views pass, bad ones raise ValueError naming the argument.
void test_tensor_view() {
  using keensight::DType;
  using keensight::TensorView;
  g_level = Isa::scalar;
  g_kernel = "core.check_tensor";
  float storage[2 * 3 * 4 * 5] = {};
  const auto accepts = [](const TensorView& v, const char* label) {
    ++g_checks;
    try {
      keensight::check_tensor(v, "input");
    } catch (const keensight::ValueError& e) {
      fail(0, std::string(label) + ": refused a good view: " + e.what());
    }
  };
  const auto refuses = [](const TensorView& v, const char* label) {
    ++g_checks;
    try {
      keensight::check_tensor(v, "input");
      fail(0, std::string(label) + ": accepted a bad view");
    } catch (const keensight::ValueError& e) {
      if (std::string(e.what()).rfind("input: ", 0) != 0)
        fail(0, std::string(label) + ": message does not name the argument: " + e.what());
    }
  };
  const TensorView dense = TensorView::contiguous(storage, DType::f32, 2, 3, 4, 5);
  accepts(dense, "dense");
  ++g_checks;
  if (!dense.is_contiguous() || dense.elements() != 120 || dense.ptr<float>(1, 2, 3, 4) != storage + 119 ||
      dense.offset(1, 0, 0, 0) != 60)
    fail(0, "dense: is_contiguous / elements / ptr / offset");
  // NHWC memory seen as NCHW: strides (h*w*c, 1, w*c, c).
  TensorView nhwc{storage, DType::f32, 2, 3, 4, 5, 60, 1, 15, 3};
  accepts(nhwc, "nhwc");
  ++g_checks;
  if (nhwc.is_contiguous() || nhwc.ptr<float>(0, 1, 0, 0) != storage + 1) fail(0, "nhwc: not contiguous / ptr");
  // A channel slice of a larger tensor and a batch of one with any batch stride.
  accepts(TensorView{storage, DType::f32, 2, 1, 4, 5, 60, 20, 5, 1}, "channel slice");
  TensorView one = TensorView::contiguous(storage, DType::u8, 1, 3, 4, 5);
  one.stride_n = 0;
  accepts(one, "n=1, stride_n 0");
  ++g_checks;
  if (!one.is_contiguous() || one.at(0, 1, 0, 0) != reinterpret_cast<std::uint8_t*>(storage) + 20)
    fail(0, "u8 view: is_contiguous / at");
  for (DType t : {DType::f32, DType::u8, DType::s8, DType::s32})
    accepts(TensorView::contiguous(storage, t, 1, 1, 2, 3), keensight::dtype_name(t));

  refuses(TensorView::contiguous(nullptr, DType::f32, 1, 1, 1, 1), "null data");
  refuses(TensorView::contiguous(storage, DType::f32, 0, 3, 4, 5), "n = 0");
  refuses(TensorView::contiguous(storage, DType::f32, 2, 3, -4, 5), "negative h");
  refuses(TensorView{storage, DType::f32, 2, 3, 4, 5, 60, 20, -5, 1}, "negative stride");
  refuses(TensorView{storage, DType::f32, 2, 3, 4, 5, 60, 20, 4, 1}, "rows overlap");
  refuses(TensorView{storage, DType::f32, 2, 3, 4, 5, 60, 0, 5, 1}, "channels share memory");
  refuses(TensorView{storage, DType::f32, 2, 3, 4, 5, 30, 20, 5, 1}, "batches overlap");
  refuses(TensorView{storage, DType::f32, 2, 3, 4, 5, 60, 20, 5, 0}, "stride_w 0");
  refuses(TensorView{storage, DType::f32, 2, 3, 4, 5, 60, 20, 2, 10}, "interleaved axes");
  const std::int64_t big = std::int64_t(1) << 40;
  refuses(TensorView{storage, DType::f32, big, big, 1, 1, big, 1, 1, 1}, "span overflows");
  refuses(TensorView{storage, DType::s32, 4, 1, 1, 1, std::numeric_limits<std::int64_t>::max() / 8, 1, 1, 1},
          "bytes overflow");
  refuses(TensorView{storage, static_cast<DType>(9), 1, 1, 1, 1, 1, 1, 1, 1}, "unknown dtype");
}

// The dispatch mechanism itself: fallback chains and select() following set_isa.
// core GEMM integer tiles (uint8 x int8 -> int32, xnor bits -> differing-bit
// counts): exact, so every tile is checked bit for bit against the sum of its packed
// panels computed here, over kc = 0..kMaxLen packed elements, overwrite and
// accumulate, an odd row stride of C and guards after it.
std::int64_t packed_product(std::uint32_t a, std::uint32_t b, int group) {
  std::int64_t sum = 0;
  for (int t = 0; t < (group == 4 ? 4 : 2); ++t) {  // four bytes or two int16 per word
    if (group == 4)
      sum += std::int64_t{static_cast<std::uint8_t>(a >> (8 * t))} * static_cast<std::int8_t>(b >> (8 * t));
    else
      sum += std::int64_t{static_cast<std::int16_t>(a >> (16 * t))} * static_cast<std::int16_t>(b >> (16 * t));
  }
  return sum;
}
std::int64_t packed_product(std::uint64_t a, std::uint64_t b, int) {
  std::int64_t count = 0;
  for (std::uint64_t x = a ^ b; x; x &= x - 1) ++count;
  return count;
}
std::uint32_t random_word(std::uint32_t, int group, bool is_a) {
  std::uint32_t w = 0;
  if (group == 4) {
    for (int t = 0; t < 4; ++t) w |= std::uint32_t(uniform_int(0, 255)) << (8 * t);  // u8 (A) or s8 bits (B)
  } else {
    for (int t = 0; t < 2; ++t) {
      const int v = is_a ? uniform_int(0, 255) : uniform_int(-128, 127);  // widened to int16
      w |= std::uint32_t(static_cast<std::uint16_t>(static_cast<std::int16_t>(v))) << (16 * t);
    }
  }
  return w;
}
std::uint64_t random_word(std::uint64_t, int, bool) {
  return (std::uint64_t(static_cast<std::uint32_t>(g_rng())) << 32) | static_cast<std::uint32_t>(g_rng());
}

template <class T>
void test_gemm_exact(const kd::GemmKernels<T>& kern, const char* name) {
  using PA = typename T::PackedA;
  using Acc = typename T::Acc;
  const int mr = kern.mr, nr = kern.nr;
  g_kernel = name;
  ++g_checks;
  if (mr <= 0 || nr <= 0 || kern.k_group <= 0) fail(0, "mr " + std::to_string(mr) + " nr " + std::to_string(nr));
  for (std::int64_t kc = 0; kc <= kMaxLen; ++kc) {
    const int mis = static_cast<int>(kc % 3) + 1;
    Buf<PA> a(kc * mr, 0), b(kc * nr, 0);  // panels: 64-byte aligned by contract
    for (std::int64_t i = 0; i < a.size(); ++i) a[i] = random_word(PA{}, kern.k_group, true);
    for (std::int64_t i = 0; i < b.size(); ++i) b[i] = random_word(PA{}, kern.k_group, false);
    const std::int64_t ldc = nr + 3;
    for (bool accumulate : {false, true}) {
      Buf<Acc> c((mr - 1) * ldc + nr, mis);
      fill_int(c, -1000, 1000);
      std::vector<Acc> before(c.data(), c.data() + c.size());
      kern.tile(kc, a.data(), b.data(), c.data(), ldc, accumulate);
      for (int i = 0; i < mr; ++i) {
        for (int j = 0; j < nr; ++j) {
          std::int64_t want = accumulate ? before[i * ldc + j] : 0;
          for (std::int64_t p = 0; p < kc; ++p) want += packed_product(a[p * mr + i], b[p * nr + j], kern.k_group);
          expect_equal(kc, "c", i * ldc + j, static_cast<std::int64_t>(c[i * ldc + j]), want);
        }
        if (i + 1 < mr)
          for (std::int64_t j = nr; j < ldc; ++j)
            expect_equal(kc, "c padding (ldc > nr)", i * ldc + j, c[i * ldc + j], before[i * ldc + j]);
      }
      expect_guard(kc, c, "c");
    }
  }
}

void test_dispatch(const std::vector<Isa>& levels) {
  g_kernel = "core.dispatch";
  g_level = Isa::scalar;
  ++g_checks;
  if (keensight::isa_chain(Isa::avx512_vnni).bits != 0b11011u || keensight::isa_chain(Isa::avx2_vnni).bits != 0b111u ||
      keensight::isa_chain(Isa::avx512_vpopcntdq).bits != 0b101011u || keensight::isa_chain(Isa::scalar).bits != 1u)
    fail(0, "isa_chain");
  const Isa before = keensight::active_isa();
  for (Isa level : levels) {
    g_level = level;
    ++g_checks;
    if (keensight::set_isa(level) != level) fail(0, "set_isa did not take a level the CPU has");
    // Naming the CPU's best level enables every level again (see core.hpp), so the
    // tables of other chains (u8s8's avx512_vnni beside avx512_vpopcntdq) are then
    // selected: the chain identity holds only when set_isa restricted the levels.
    if (keensight::enabled_isas() != (keensight::isa_chain(level) & keensight::cpu_info().levels)) continue;
    if (&ks::search_kernels() != &ks::search_kernels(level) || &kf::filter_kernels() != &kf::filter_kernels(level) ||
        &kp::preprocess_kernels() != &kp::preprocess_kernels(level) ||
        &kd::gemm_f32_kernels() != &kd::gemm_f32_kernels(level) ||
        &kd::gemm_u8s8_kernels() != &kd::gemm_u8s8_kernels(level) ||
        &kd::gemm_xnor_kernels() != &kd::gemm_xnor_kernels(level))
      fail(0, "select() after set_isa is not the table of the level's chain");
  }
  keensight::set_isa(before);
}

// ===========================================================================
// nn ops (nn/ops_{scalar,avx2,avx512}.cpp; branch ops): every entry of OpsKernels
// against the scalar table. Bit-exact, except sigmoid / swish (polynomial exp: a few
// ulp). Pools and conv_direct on random shapes (1x1 .. 11x12, channels 1..40, pads,
// strides, dilation, ceil mode), run over a split row range with in_row0 / out_row0
// offsets as the fused blocks call them.
namespace kn = keensight::nn::detail;
using keensight::nn::ActKind;
using keensight::nn::Activation;
using keensight::nn::ConvShape;

std::vector<Activation> nn_test_activations() {
  std::vector<Activation> acts(7);
  acts[1].kind = ActKind::clip;
  acts[1].lo = 0.f;
  acts[1].hi = 6.f;
  acts[2].kind = ActKind::clip;
  acts[2].lo = 0.f;  // relu: hi = inf
  acts[3].kind = ActKind::hardswish;
  acts[4].kind = ActKind::hardsigmoid;
  acts[4].alpha = 0.2f;
  acts[5].kind = ActKind::sigmoid;
  acts[6].kind = ActKind::swish;
  return acts;
}

bool nn_approx(const Activation& act) { return act.kind == ActKind::sigmoid || act.kind == ActKind::swish; }

// Bit-exact, or within 8 ulp-ish (1e-6 relative) for the exp-based activations.
void nn_expect(std::int64_t n, const char* what, std::int64_t i, float got, float want, bool approx) {
  if (approx) expect_close(n, what, i, got, want, std::fabs(want), 1e-6);
  else expect_equal(n, what, i, got, want);
}

void nn_fill_specials(Buf<float>& b, float lo, float hi, bool specials) {
  fill(b, lo, hi);
  if (!specials) return;
  for (std::int64_t i = 0; i < b.size(); ++i) {
    const int r = uniform_int(0, 40);
    if (r == 0) b[i] = std::numeric_limits<float>::quiet_NaN();
    if (r == 1) b[i] = -std::numeric_limits<float>::infinity();
    if (r == 2) b[i] = -0.f;
    if (r == 3) b[i] = 0.f;
  }
}

void test_nn_elementwise(const kn::OpsKernels& sim, const kn::OpsKernels& ref) {
  const auto acts = nn_test_activations();
  for (std::int64_t n = 0; n <= kMaxLen; ++n) {
    const int mis = static_cast<int>(n % 3) + 1;
    for (const Activation& act : acts) {
      const bool approx = nn_approx(act);
      Buf<float> a(n, mis), b(n, (mis + 1) % 4), y1(n, mis), y2(n, mis);
      nn_fill_specials(a, -12.f, 12.f, !approx);
      fill(b, -3.f, 3.f);
      g_kernel = "nn_ops.activate";
      sim.activate(act, a.data(), y1.data(), n);
      ref.activate(act, a.data(), y2.data(), n);
      for (std::int64_t i = 0; i < n; ++i) nn_expect(n, "y", i, y1[i], y2[i], approx);
      expect_guard(n, y1, "y");
      Buf<float> inplace(n, mis);
      for (std::int64_t i = 0; i < n; ++i) inplace[i] = a[i];
      sim.activate(act, inplace.data(), inplace.data(), n);
      for (std::int64_t i = 0; i < n; ++i) nn_expect(n, "y (in place)", i, inplace[i], y2[i], approx);
      for (int op = 0; op < 2; ++op) {
        g_kernel = op == 0 ? "nn_ops.add" : "nn_ops.mul";
        const auto fn_sim = op == 0 ? sim.add : sim.mul;
        const auto fn_ref = op == 0 ? ref.add : ref.mul;
        fn_sim(a.data(), b.data(), y1.data(), n, act);
        fn_ref(a.data(), b.data(), y2.data(), n, act);
        for (std::int64_t i = 0; i < n; ++i) nn_expect(n, "y", i, y1[i], y2[i], approx);
        expect_guard(n, y1, "y");
        Buf<float> ab(n, mis);  // y == b
        for (std::int64_t i = 0; i < n; ++i) ab[i] = b[i];
        fn_sim(a.data(), ab.data(), ab.data(), n, act);
        for (std::int64_t i = 0; i < n; ++i) nn_expect(n, "y (== b)", i, ab[i], y2[i], approx);
      }
    }
  }
  for (std::int64_t c = 1; c <= 40; ++c)
    for (std::int64_t pixels : {0, 1, 3, 7}) {
      const Activation& act = acts[static_cast<std::size_t>(c % 7)];
      const bool approx = nn_approx(act);
      Buf<float> x(pixels * c, 1), scale(c, 2), shift(c, 3);
      nn_fill_specials(x, -4.f, 4.f, !approx);
      fill(scale, -2.f, 2.f);
      fill(shift, -1.f, 1.f);
      for (int which = 0; which < 4; ++which) {
        g_kernel = "nn_ops.channel_affine";
        const float* sc = which & 1 ? scale.data() : nullptr;
        const float* sh = which & 2 ? shift.data() : nullptr;
        Buf<float> y1(pixels * c, 1), y2(pixels * c, 1);
        sim.channel_affine(x.data(), sc, sh, y1.data(), pixels, c, act);
        ref.channel_affine(x.data(), sc, sh, y2.data(), pixels, c, act);
        for (std::int64_t i = 0; i < pixels * c; ++i) nn_expect(c, "y", i, y1[i], y2[i], approx);
        expect_guard(c, y1, "y");
      }
      if (pixels == 0) continue;
      g_kernel = "nn_ops.global_avg_pool";
      Buf<float> g1(c, 2), g2(c, 2);
      sim.global_avg_pool(x.data(), pixels, c, g1.data());
      ref.global_avg_pool(x.data(), pixels, c, g2.data());
      for (std::int64_t i = 0; i < c; ++i) expect_equal(c, "y", i, g1[i], g2[i]);
      expect_guard(c, g1, "y");
    }
  for (std::int64_t pixels : {49, 196}) {  // EfficientNet's 7x7x1280 head and a longer sum
    g_kernel = "nn_ops.global_avg_pool";
    const std::int64_t c = 1280 + 7;
    Buf<float> x(pixels * c, 0), g1(c, 1), g2(c, 1);
    fill(x, 0.f, 6.f);
    sim.global_avg_pool(x.data(), pixels, c, g1.data());
    ref.global_avg_pool(x.data(), pixels, c, g2.data());
    for (std::int64_t i = 0; i < c; ++i) expect_equal(c, "y", i, g1[i], g2[i]);
    expect_guard(c, g1, "y");
  }
}

// A random geometry with in/out sizes >= 1, or false.
bool nn_random_shape(ConvShape& s, bool ceil_mode, int max_taps_hw) {
  s.in_h = uniform_int(1, 11);
  s.in_w = uniform_int(1, 12);
  s.kh = uniform_int(1, std::min(4, max_taps_hw));
  s.kw = uniform_int(1, std::max(1, std::min(4, max_taps_hw / s.kh)));
  s.stride_h = uniform_int(1, 3);
  s.stride_w = uniform_int(1, 3);
  s.dilation_h = uniform_int(0, 3) == 0 ? 2 : 1;
  s.dilation_w = uniform_int(0, 3) == 0 ? 2 : 1;
  const int eh = (s.kh - 1) * s.dilation_h + 1, ew = (s.kw - 1) * s.dilation_w + 1;
  s.pad_top = uniform_int(0, eh - 1);
  s.pad_bottom = uniform_int(0, eh - 1);
  s.pad_left = uniform_int(0, ew - 1);
  s.pad_right = uniform_int(0, ew - 1);
  s.out_h = kn::window_output_size(s.in_h, s.kh, s.stride_h, s.pad_top, s.pad_bottom, s.dilation_h, ceil_mode);
  s.out_w = kn::window_output_size(s.in_w, s.kw, s.stride_w, s.pad_left, s.pad_right, s.dilation_w, ceil_mode);
  return s.out_h >= 1 && s.out_w >= 1;
}

// Runs `call(in, in_row0, out, out_row0, y0, y1)` of `sim` over output rows split in
// two ranges, each with only the input rows it reads, and compares with `ref`'s whole
// image. out_c: channels of an output pixel.
template <class Call>
void nn_compare_rows(const ConvShape& s, std::int64_t out_c, const Buf<float>& in, Call&& call_sim,
                     Call&& call_ref, bool approx) {
  const std::int64_t out_row = s.out_w * out_c, in_row = s.in_w * s.in_c;
  Buf<float> want(s.out_h * out_row, 0);
  call_ref(in.data(), 0, want.data(), 0, 0, s.out_h);
  const std::int64_t split = uniform_int(0, static_cast<int>(s.out_h));
  for (int part = 0; part < 2; ++part) {
    const std::int64_t y0 = part == 0 ? 0 : split, y1 = part == 0 ? split : s.out_h;
    if (y0 >= y1) continue;
    const kn::RowSpan rows = kn::input_rows_for(y0, y1, s.stride_h, s.pad_top, s.dilation_h, s.kh, s.in_h);
    Buf<float> strip((rows.last - rows.first) * in_row, 1 + part);
    for (std::int64_t i = 0; i < strip.size(); ++i) strip[i] = in[rows.first * in_row + i];
    Buf<float> got((y1 - y0) * out_row, 2 - part);
    call_sim(strip.data(), rows.first, got.data(), y0, y0, y1);
    for (std::int64_t i = 0; i < got.size(); ++i)
      nn_expect(s.out_h * 1000 + s.out_w, "out", y0 * out_row + i, got[i], want[y0 * out_row + i], approx);
    expect_guard(s.out_h * 1000 + s.out_w, got, "out");
  }
}

void test_nn_pools(const kn::OpsKernels& sim, const kn::OpsKernels& ref) {
  for (int trial = 0; trial < 400; ++trial) {
    ConvShape s;
    const bool ceil_mode = trial % 2 == 1;
    if (!nn_random_shape(s, ceil_mode, 16)) continue;
    s.in_c = s.out_c = trial < 40 ? trial + 1 : uniform_int(1, 40);
    Buf<float> in(s.in_h * s.in_w * s.in_c, trial % 4);
    nn_fill_specials(in, -5.f, 5.f, trial % 5 == 0);
    for (int kind = 0; kind < 2; ++kind) {
      const bool include_pad = uniform_int(0, 1) == 1;
      g_kernel = kind == 0 ? "nn_ops.max_pool" : "nn_ops.avg_pool";
      const auto make = [&](const kn::OpsKernels& k) {
        return [&s, &k, kind, include_pad](const float* x, std::int64_t in_row0, float* y, std::int64_t out_row0,
                                           std::int64_t y0, std::int64_t y1) {
          kn::PoolArgs a;
          a.shape = &s;
          a.count_include_pad = include_pad;
          a.in = x;
          a.in_row0 = in_row0;
          a.out = y;
          a.out_row0 = out_row0;
          (kind == 0 ? k.max_pool : k.avg_pool)(a, y0, y1);
        };
      };
      auto f_sim = make(sim);
      auto f_ref = make(ref);
      nn_compare_rows(s, s.in_c, in, f_sim, f_ref, false);
    }
  }
  // Max pool semantics the contract states (checked on the table under test itself).
  g_kernel = "nn_ops.max_pool";
  ConvShape s;
  s.in_h = 1;
  s.in_w = 2;
  s.in_c = s.out_c = 17;
  s.kh = 1;
  s.kw = 2;
  s.out_h = 1;
  s.out_w = 1;
  Buf<float> in(2 * 17, 0), out(17, 0);
  for (int ch = 0; ch < 17; ++ch) {
    in[ch] = ch % 2 ? std::numeric_limits<float>::quiet_NaN() : 1.f;
    in[17 + ch] = ch % 3 ? 2.f : std::numeric_limits<float>::quiet_NaN();
  }
  kn::PoolArgs a;
  a.shape = &s;
  a.in = in.data();
  a.out = out.data();
  sim.max_pool(a, 0, 1);
  for (int ch = 0; ch < 17; ++ch) {
    ++g_checks;
    const bool want_nan = ch % 2 == 1 || ch % 3 == 0;
    if (want_nan != std::isnan(out[ch]) || (!want_nan && out[ch] != 2.f))
      fail(ch, "a NaN tap must give NaN, else the maximum");
  }
  expect_guard(17, out, "out");
}

void test_nn_conv_direct(const kn::OpsKernels& sim, const kn::OpsKernels& ref) {
  const auto acts = nn_test_activations();
  g_kernel = "nn_ops.conv_direct";
  for (int trial = 0; trial < 300; ++trial) {
    ConvShape s;
    s.in_c = trial < 10 ? 3 : uniform_int(1, 5);
    if (!nn_random_shape(s, false, static_cast<int>(kn::kDirectConvMaxTaps / s.in_c))) continue;
    if (trial < 10) {  // the stem: 3x3 stride 2, TF-SAME pads (0, 0, 1, 1) or (1, 1, 1, 1)
      s.kh = s.kw = 3;
      s.stride_h = s.stride_w = 2;
      s.dilation_h = s.dilation_w = 1;
      s.pad_top = s.pad_left = trial % 2;
      s.pad_bottom = s.pad_right = 1;
      s.in_h = uniform_int(3, 20);
      s.in_w = uniform_int(3, 40);
      s.out_h = kn::window_output_size(s.in_h, 3, 2, s.pad_top, 1, 1, false);
      s.out_w = kn::window_output_size(s.in_w, 3, 2, s.pad_left, 1, 1, false);
    }
    s.out_c = trial < 10 ? 32 : trial < 50 ? trial - 9 : uniform_int(1, 70);
    const Activation& act = acts[static_cast<std::size_t>(trial % 7)];
    Buf<float> in(s.in_h * s.in_w * s.in_c, trial % 4), w(s.kh * s.kw * s.in_c * s.out_c, 1), bias(s.out_c, 2);
    fill(in, -2.f, 2.f);
    fill(w, -1.f, 1.f);
    fill(bias, -1.f, 1.f);
    const auto make = [&](const kn::OpsKernels& k) {
      return [&s, &k, &w, &bias, &act](const float* x, std::int64_t in_row0, float* y, std::int64_t out_row0,
                                       std::int64_t y0, std::int64_t y1) {
        kn::DirectConvArgs a;
        a.shape = &s;
        a.in = x;
        a.in_row0 = in_row0;
        a.weights = w.data();
        a.bias = bias.data();
        a.act = act;
        a.out = y;
        a.out_row0 = out_row0;
        k.conv_direct(a, y0, y1);
      };
    };
    auto f_sim = make(sim);
    auto f_ref = make(ref);
    nn_compare_rows(s, s.out_c, in, f_sim, f_ref, nn_approx(act));
  }
}

void test_nn_ops(const kn::OpsKernels& sim, const kn::OpsKernels& ref) {
  g_kernel = "nn_ops.table";
  ++g_checks;
  if (!keensight::detail::table_is_complete(sim)) fail(0, "the nn ops table has a null entry");
  test_nn_elementwise(sim, ref);
  test_nn_pools(sim, ref);
  test_nn_conv_direct(sim, ref);
}
// nn ops: end
// ===========================================================================
// ---------------------------------------------------------------------------
// nn depthwise (begin; owned by the depthwise kernels, nn/depthwise_*.cpp)
//
// Every entry of the depthwise table at `level` against the scalar table on random
// NHWC shapes: channels 1..40 (vector tails), spatial sizes 1x1 .. 20x20, kernels
// 1/3/5/7, strides 1/2, dilation 1/2, every padding 0..k on each side independently,
// every activation; each call computes a random row range [y0, y1) into a strip
// buffer holding exactly those output rows (out_row0 = y0), reading a strip holding
// exactly the input rows they need (in_row0 = the first), with guards before and after
// the output. The reference is the scalar entry on the whole image. Bit-exact except
// sigmoid / swish (their exp is a polynomial): within 8 ulp.
namespace depthwise_test {

namespace kn = keensight::nn;
namespace knd = keensight::nn::detail;

std::int64_t out_size(std::int64_t in, int k, int s, int d, int p0, int p1) {
  const std::int64_t room = in + p0 + p1 - static_cast<std::int64_t>(d) * (k - 1) - 1;
  return room < 0 ? 0 : room / s + 1;
}

struct Case {
  kn::ConvShape shape;
  kn::Activation act;
  float scale = 1.f;  // input magnitude: 30 drives sigmoid / swish into exp's overflow / underflow
};

// A random shape for an entry: fixed (k, s) when k > 0, anything when k == 0.
Case random_case(int k, int s) {
  Case cs;
  kn::ConvShape& sh = cs.shape;
  for (;;) {
    sh.in_c = sh.out_c = uniform_int(1, 40);
    sh.groups = static_cast<int>(sh.in_c);
    const int pick = uniform_int(0, 5);  // tiny images often: 1x1, 2x3 and their borders
    sh.in_h = pick == 0 ? 1 : pick == 1 ? 2 : uniform_int(1, 20);
    sh.in_w = pick == 0 ? 1 : pick == 1 ? 3 : uniform_int(1, 20);
    sh.kh = k > 0 ? k : (uniform_int(0, 3) * 2 + 1 + (uniform_int(0, 4) == 0 ? 1 : 0));  // 1,3,5,7 and some even
    sh.kw = k > 0 ? k : (uniform_int(0, 4) == 0 ? uniform_int(1, 7) : sh.kh);
    sh.stride_h = s > 0 ? s : uniform_int(1, 3);
    sh.stride_w = s > 0 ? s : (uniform_int(0, 3) == 0 ? uniform_int(1, 3) : sh.stride_h);
    sh.dilation_h = k > 0 ? 1 : uniform_int(1, 2);
    sh.dilation_w = k > 0 ? 1 : uniform_int(1, 2);
    sh.pad_top = uniform_int(0, sh.kh);
    sh.pad_bottom = uniform_int(0, sh.kh);
    sh.pad_left = uniform_int(0, sh.kw);
    sh.pad_right = uniform_int(0, sh.kw);
    sh.out_h = out_size(sh.in_h, sh.kh, sh.stride_h, sh.dilation_h, sh.pad_top, sh.pad_bottom);
    sh.out_w = out_size(sh.in_w, sh.kw, sh.stride_w, sh.dilation_w, sh.pad_left, sh.pad_right);
    if (sh.out_h >= 1 && sh.out_w >= 1) break;
  }
  cs.act.kind = static_cast<kn::ActKind>(uniform_int(0, 5));
  cs.act.lo = uniform(-1.f, 0.5f);
  cs.act.hi = cs.act.lo + uniform(0.f, 2.f);
  if (uniform_int(0, 3) == 0) cs.act.hi = std::numeric_limits<float>::infinity();
  cs.act.alpha = uniform_int(0, 1) ? 1.f / 6.f : uniform(0.05f, 1.f);
  cs.act.beta = uniform(0.f, 1.f);
  cs.scale = uniform_int(0, 4) == 0 ? 30.f : 1.f;
  return cs;
}

std::uint32_t bits(float v) {
  std::uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

// Distance in ulps between two finite floats of any sign.
double ulp_distance(float a, float b) {
  const auto key = [](float v) {
    const std::int64_t u = bits(v);
    return u & 0x80000000u ? -(u & 0x7fffffff) : u;
  };
  return std::fabs(static_cast<double>(key(a) - key(b)));
}

using Entry = void (*)(const knd::DepthwiseArgs&, std::int64_t, std::int64_t);

void check_entry(const char* name, Entry sim, Entry ref, int k, int s, int cases) {
  g_kernel = name;
  for (int it = 0; it < cases; ++it) {
    const Case cs = random_case(k, s);
    const kn::ConvShape& sh = cs.shape;
    const std::int64_t c = sh.in_c, row_in = sh.in_w * c, row_out = sh.out_w * c;
    Buf<float> in(sh.in_h * row_in), w(static_cast<std::int64_t>(sh.kh) * sh.kw * c), bias(c);
    fill(in, -cs.scale, cs.scale);
    fill(w, -1.f, 1.f);
    fill(bias, -cs.scale, cs.scale);
    // The reference: the scalar entry, whole image.
    Buf<float> want(sh.out_h * row_out);
    knd::DepthwiseArgs a;
    a.shape = &sh;
    a.in = in.data();
    a.weights = w.data();
    a.bias = bias.data();
    a.act = cs.act;
    a.out = want.data();
    ref(a, 0, sh.out_h);
    // The entry under test: rows [y0, y1) from strips.
    const std::int64_t y0 = uniform_int(0, static_cast<int>(sh.out_h - 1));
    const std::int64_t y1 = uniform_int(0, 2) == 0 ? sh.out_h : uniform_int(static_cast<int>(y0) + 1, static_cast<int>(sh.out_h));
    const std::int64_t first = std::max<std::int64_t>(0, y0 * sh.stride_h - sh.pad_top);
    const std::int64_t last = std::min<std::int64_t>(
        sh.in_h, (y1 - 1) * sh.stride_h - sh.pad_top + static_cast<std::int64_t>(sh.kh - 1) * sh.dilation_h + 1);
    const std::int64_t strip_rows = std::max<std::int64_t>(0, last - first);
    Buf<float> strip(std::max<std::int64_t>(1, strip_rows * row_in), uniform_int(0, 3));
    for (std::int64_t i = 0; i < strip_rows * row_in; ++i) strip[i] = in[first * row_in + i];
    constexpr std::int64_t kPre = 16;  // guard elements before the output strip
    const std::int64_t n_out = (y1 - y0) * row_out;
    Buf<float> got(kPre + n_out, uniform_int(0, 3));
    for (std::int64_t i = 0; i < kPre + n_out; ++i) got[i] = std::numeric_limits<float>::quiet_NaN();
    a.in = strip.data();
    a.in_row0 = first;
    a.out = got.data() + kPre;
    a.out_row0 = y0;
    sim(a, y0, y1);
    const bool exact = cs.act.kind != kn::ActKind::sigmoid && cs.act.kind != kn::ActKind::swish;
    const std::int64_t n = c;  // reported as the case's channel count
    for (std::int64_t i = 0; i < n_out; ++i) {
      const float g = got[kPre + i], r = want[y0 * row_out + i];
      ++g_checks;
      const bool same = g == r || (std::isnan(g) && std::isnan(r));
      const bool close = !exact && std::isfinite(g) && std::isfinite(r) &&
                         (ulp_distance(g, r) <= 8 || std::fabs(g - r) <= 1e-37);
      if (!same && !close) {
        fail(n, "shape " + std::to_string(sh.in_h) + "x" + std::to_string(sh.in_w) + "x" + std::to_string(c) + " k " +
                    std::to_string(sh.kh) + "x" + std::to_string(sh.kw) + " s " + std::to_string(sh.stride_h) + "," +
                    std::to_string(sh.stride_w) + " d " + std::to_string(sh.dilation_h) + "," +
                    std::to_string(sh.dilation_w) + " pads " + std::to_string(sh.pad_top) + "," +
                    std::to_string(sh.pad_left) + "," + std::to_string(sh.pad_bottom) + "," +
                    std::to_string(sh.pad_right) + " act " + std::to_string(static_cast<int>(cs.act.kind)) +
                    " rows [" + std::to_string(y0) + "," + std::to_string(y1) + ") out[" + std::to_string(i) +
                    "] got " + num(g) + " want " + num(r) + (exact ? " (bit-exact expected)" : " (8 ulp)"));
        break;
      }
    }
    ++g_checks;
    bool pre_ok = true;
    for (std::int64_t i = 0; i < kPre; ++i) pre_ok = pre_ok && std::isnan(got[i]) && bits(got[i]) == bits(std::numeric_limits<float>::quiet_NaN());
    if (!pre_ok) fail(n, "wrote before the start of its output strip");
    expect_guard(n, got, "out");
  }
}

void test_depthwise(const knd::DepthwiseKernels& sim, const knd::DepthwiseKernels& ref) {
  check_entry("nn.dwconv_3x3s1", sim.dwconv_3x3s1, ref.dwconv_3x3s1, 3, 1, 250);
  check_entry("nn.dwconv_3x3s2", sim.dwconv_3x3s2, ref.dwconv_3x3s2, 3, 2, 250);
  check_entry("nn.dwconv_5x5s1", sim.dwconv_5x5s1, ref.dwconv_5x5s1, 5, 1, 250);
  check_entry("nn.dwconv_5x5s2", sim.dwconv_5x5s2, ref.dwconv_5x5s2, 5, 2, 250);
  check_entry("nn.dwconv_any", sim.dwconv_any, ref.dwconv_any, 0, 0, 400);
}

}  // namespace depthwise_test

// Every level's depthwise table against the scalar one; returns the failures added.
int test_nn_depthwise(const std::vector<Isa>& levels) {
  const int before = g_failures;
  const auto& ref = keensight::nn::detail::depthwise_kernels_at(Isa::scalar);
  for (Isa level : levels) {
    g_level = level;
    g_kernel = "nn.depthwise tables";
    ++g_checks;
    if (!keensight::detail::table_is_complete(keensight::nn::detail::depthwise_kernels_at(level)))
      fail(0, "the depthwise table has a null entry");
    depthwise_test::test_depthwise(keensight::nn::detail::depthwise_kernels_at(level), ref);
  }
  return g_failures - before;
}
// nn depthwise (end)

}  // namespace

int main() {
  const keensight::CpuInfo info = keensight::cpu_info();
  std::vector<Isa> levels;
  for (int i = 0; i < keensight::kIsaCount; ++i) {
    const Isa level = static_cast<Isa>(i);
    if (info.levels.contains(level) && info.compiled_levels.contains(level)) levels.push_back(level);
  }
  std::printf("levels:");
  for (Isa l : levels) std::printf(" %s", keensight::isa_name(l));
  std::printf("\n");

  const auto& filters_ref = kf::filter_kernels(Isa::scalar);
  const auto& search_ref = ks::search_kernels(Isa::scalar);
  const auto& gemm_ref = kd::gemm_f32_kernels(Isa::scalar);
  const auto& pre_ref = kp::preprocess_kernels(Isa::scalar);
  for (Isa level : levels) {
    g_level = level;
    g_kernel = "tables";
    ++g_checks;
    if (!keensight::detail::table_is_complete(kf::filter_kernels(level)) ||
        !keensight::detail::table_is_complete(ks::search_kernels(level)) ||
        !keensight::detail::table_is_complete(kd::gemm_f32_kernels(level)) ||
        !keensight::detail::table_is_complete(kd::gemm_u8s8_kernels(level)) ||
        !keensight::detail::table_is_complete(kd::gemm_xnor_kernels(level)) ||
        !keensight::detail::table_is_complete(kp::preprocess_kernels(level)))
      fail(0, "a table has a null entry");
    const int before = g_failures;
    test_filters(kf::filter_kernels(level), filters_ref);
    test_search(ks::search_kernels(level), search_ref);
    test_gemm(kd::gemm_f32_kernels(level), gemm_ref);
    test_gemm_fused(kd::gemm_f32_kernels(level));
    test_gemm_exact(kd::gemm_u8s8_kernels(level), "gemm_u8s8.tile");
    test_gemm_exact(kd::gemm_xnor_kernels(level), "gemm_xnor.tile");
    test_preprocess(kp::preprocess_kernels(level), pre_ref);
    test_nn_ops(keensight::nn::detail::ops_kernels_at(level), keensight::nn::detail::ops_kernels_scalar());
    std::printf("%-17s %s\n", keensight::isa_name(level), g_failures == before ? "ok" : "FAILED");
  }
  test_nn_depthwise(levels);  // nn depthwise: every level, its own FAIL lines
  test_dispatch(levels);
  test_tensor_view();
  for (const auto& entry : g_failed) std::printf("FAILED %s: %d mismatches\n", entry.first.c_str(), entry.second);
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
