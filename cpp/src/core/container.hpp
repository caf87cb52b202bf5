// Internal: the one binary file container of every index (FlatIndex,
// HNSW): one place for the magic, the format version, the checksum and the
// atomic write. The same bytes go to a file (save / load) or to memory
// (to_bytes / from_bytes, pickling): a writer with a memory sink produces
// exactly what the file writer would write, and a reader over memory checks
// them exactly as it checks a file.
//
// Layout (little-endian):
//   magic     8 bytes naming the index type ("KSFLAT" padded with zeros, ...)
//   version   uint32, the index type's format version
//   body      the index's own header fields, then its payload (ContainerWriter::write)
//   checksum  uint64, FNV-1a 64 of every byte before it
//
// A file is written through core/atomic_file.hpp (an exclusively created
// temporary file with a random name in the target's folder, fsync'ed, then
// renamed over the target), so a crash or a full disk leaves either the old
// file or the new one, never half of one, and no planted symlink is followed. A reader verifies the
// size, the checksum, the magic and the version before the index reads a byte
// of the body, and every read past the body's end is a ValueError
// ("truncated"), so an index can trust the sizes it reads once it has checked
// them against remaining().
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/atomic_file.hpp"

namespace keensight::detail {

// FNV-1a 64 (Fowler-Noll-Vo), continuing from `hash` (start: kFnvOffset).
constexpr std::uint64_t kFnvOffset = 14695981039346656037ull;
std::uint64_t fnv1a64(const void* data, std::size_t bytes, std::uint64_t hash = kFnvOffset);

class ContainerWriter {
 public:
  // Opens a temporary file beside `path`; `magic` has at most 8 characters.
  // The temporary file is removed unless commit() succeeds.
  ContainerWriter(const std::string& path, const std::string& magic, std::uint32_t version);
  // Appends to `sink` instead (cleared first); the container is complete in it
  // once commit() returns.
  ContainerWriter(std::vector<unsigned char>& sink, const std::string& magic, std::uint32_t version);
  ContainerWriter(const ContainerWriter&) = delete;
  ContainerWriter& operator=(const ContainerWriter&) = delete;

  void write(const void* data, std::size_t bytes);
  template <class T>
  void write_value(const T& value) {
    static_assert(std::is_trivially_copyable<T>::value, "plain values only");
    write(&value, sizeof(T));
  }
  // Appends the checksum; for a file, flushes, fsyncs and renames over the target.
  void commit();

 private:
  std::optional<detail::AtomicFile> file_;  // empty: memory_
  std::vector<unsigned char>* memory_ = nullptr;
  std::uint64_t hash_ = kFnvOffset;
};

class ContainerReader {
 public:
  // Opens and verifies `path` (size, checksum, magic); `what` names the index
  // type in messages ("FlatIndex"). Throws ValueError.
  ContainerReader(const std::string& path, const std::string& magic, const char* what);
  // Verifies `size` bytes at `data` the same way; they must outlive the reader
  // (nothing is copied). Messages name "<what> bytes" instead of the file.
  ContainerReader(const void* data, std::size_t size, const std::string& magic, const char* what);
  ~ContainerReader();
  ContainerReader(const ContainerReader&) = delete;
  ContainerReader& operator=(const ContainerReader&) = delete;

  std::uint32_t version() const { return version_; }
  // Throws ValueError unless version() is between 1 and `newest`.
  void require_version(std::uint32_t newest) const;

  std::uint64_t remaining() const { return body_end_ - position_; }
  void read(void* data, std::size_t bytes);  // throws ValueError past the body's end
  template <class T>
  T read_value() {
    static_assert(std::is_trivially_copyable<T>::value, "plain values only");
    T value;
    read(&value, sizeof(T));
    return value;
  }
  void finish() const;  // throws ValueError if body bytes are left unread

 private:
  [[noreturn]] void fail(const std::string& why) const;
  // The checks common to both sources, on the first bytes, the FNV-1a of all
  // but the trailer and the stored checksum.
  void verify(const unsigned char* head, std::size_t head_size, std::uint64_t hash, std::uint64_t stored,
              const std::string& magic, std::uint64_t size);
  std::string source_;  // "file '<path>'" or "bytes"
  const char* what_;
  std::FILE* file_ = nullptr;
  const unsigned char* memory_ = nullptr;  // the source when file_ is null
  std::uint32_t version_ = 0;
  std::uint64_t position_ = 0, body_end_ = 0;
};

}  // namespace keensight::detail
