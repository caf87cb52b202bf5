// Internal: the one aligned buffer every area uses (packed GEMM panels, graph
// storage, scratch). 64-byte alignment: a cache line, and what the AVX-512
// kernels load aligned. RAII over the aligned operator new of C++17, which
// exists on every compiler (MSVC has no std::aligned_alloc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

namespace keensight::detail {

constexpr std::size_t kBufferAlignment = 64;

template <class T>
class AlignedBuffer {
  static_assert(std::is_trivially_copyable<T>::value && std::is_trivially_destructible<T>::value,
                "AlignedBuffer holds plain values");

 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::int64_t n) { resize(n); }

  // Grows to hold at least n values (never shrinks). Contents are not kept:
  // use grow_keep() for that. New values are uninitialised.
  void resize(std::int64_t n) {
    if (n <= capacity_) return;
    ptr_.reset(allocate(n));
    capacity_ = n;
  }
  // Grows to exactly n values keeping the first size_kept; the rest are zero.
  void grow_keep(std::int64_t n, std::int64_t size_kept) {
    if (n <= capacity_) return;
    T* fresh = allocate(n);
    if (size_kept > 0 && ptr_) std::memcpy(fresh, ptr_.get(), static_cast<std::size_t>(size_kept) * sizeof(T));
    std::memset(static_cast<void*>(fresh + size_kept), 0, static_cast<std::size_t>(n - size_kept) * sizeof(T));
    ptr_.reset(fresh);
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
  std::size_t bytes() const { return static_cast<std::size_t>(capacity_) * sizeof(T); }

 private:
  static T* allocate(std::int64_t n) {
    return static_cast<T*>(::operator new[](static_cast<std::size_t>(n) * sizeof(T), std::align_val_t(kBufferAlignment)));
  }
  struct Free {
    void operator()(T* p) const { ::operator delete[](p, std::align_val_t(kBufferAlignment)); }
  };
  std::unique_ptr<T, Free> ptr_;
  std::int64_t capacity_ = 0;
};

}  // namespace keensight::detail
