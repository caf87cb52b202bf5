// Internal: the one aligned buffer every area uses (packed GEMM panels, graph
// storage, scratch). 64-byte alignment: a cache line, and what the AVX-512
// kernels load aligned. RAII over the aligned operator new of C++17, which
// exists on every compiler (MSVC has no std::aligned_alloc).
//
// Pages::huge_when_large: arrays of 4 MiB and more are 2 MiB aligned and, where
// the OS has transparent huge pages (Linux madvise(MADV_HUGEPAGE)), advised to
// use them. For arrays read at random (graph search: nearly every vector it
// reads would also miss the TLB with 4 KiB pages). Only whole huge pages are
// advised: a partly used one would hold up to 2 MiB more than asked for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace keensight::detail {

constexpr std::size_t kBufferAlignment = 64;
constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

enum class Pages { normal, huge_when_large };

template <class T>
class AlignedBuffer {
  static_assert(std::is_trivially_copyable<T>::value && std::is_trivially_destructible<T>::value,
                "AlignedBuffer holds plain values");

 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::int64_t n) { resize(n); }
  explicit AlignedBuffer(Pages pages) : pages_(pages) {}

  // Grows to hold at least n values (never shrinks). Contents are not kept:
  // use grow_keep() for that. New values are uninitialised.
  void resize(std::int64_t n) {
    if (n <= capacity_) return;
    ptr_ = allocate(n);
    capacity_ = n;
  }
  // Grows to exactly n values keeping the first size_kept; the rest are zero.
  void grow_keep(std::int64_t n, std::int64_t size_kept) {
    if (n <= capacity_) return;
    Owned fresh = allocate(n);
    if (size_kept > 0 && ptr_) std::memcpy(fresh.get(), ptr_.get(), static_cast<std::size_t>(size_kept) * sizeof(T));
    std::memset(static_cast<void*>(fresh.get() + size_kept), 0, static_cast<std::size_t>(n - size_kept) * sizeof(T));
    ptr_ = std::move(fresh);
    capacity_ = n;
  }
  void clear() {
    ptr_.reset();
    capacity_ = 0;
  }
  T* get() const { return ptr_.get(); }
  T* data() const { return ptr_.get(); }
  T& operator[](std::int64_t i) const { return ptr_.get()[i]; }
  std::int64_t capacity() const { return capacity_; }
  // The bytes held: the values, rounded up to whole cache lines.
  std::size_t bytes() const {
    return (static_cast<std::size_t>(capacity_) * sizeof(T) + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  }

 private:
  struct Free {
    std::size_t alignment = kBufferAlignment;
    void operator()(T* p) const { ::operator delete[](p, std::align_val_t(alignment)); }
  };
  using Owned = std::unique_ptr<T, Free>;

  Owned allocate(std::int64_t n) const {
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    const bool huge = pages_ == Pages::huge_when_large && bytes >= 2 * kHugePageBytes;
    const std::size_t alignment = huge ? kHugePageBytes : kBufferAlignment;
    // Whole cache lines (a row's last AVX load stays inside the allocation).
    const std::size_t rounded = (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
    Owned p(static_cast<T*>(::operator new[](rounded, std::align_val_t(alignment))), Free{alignment});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (huge) madvise(p.get(), rounded / kHugePageBytes * kHugePageBytes, MADV_HUGEPAGE);
#endif
    return p;
  }

  Owned ptr_;
  std::int64_t capacity_ = 0;
  Pages pages_ = Pages::normal;
};

}  // namespace keensight::detail
