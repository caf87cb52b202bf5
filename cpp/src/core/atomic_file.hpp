// Internal: the one way keensight's C++ core writes a file. Readers see the old
// file or the complete new one, never a part, and nothing planted beside the
// target (a file or a symlink at a guessable temporary name) is opened or
// followed:
//   1. a temporary file with a random name is created in the target's folder,
//      exclusively (O_CREAT | O_EXCL | O_NOFOLLOW: it must not exist, a symlink
//      there is refused), so the final rename never crosses file systems;
//   2. the bytes are written through a buffer; seek() lets a format rewrite a
//      header once its checksum is known;
//   3. commit() flushes, fsyncs the file, renames it over the target (rename
//      replaces a symlink at the target itself, never the file it points to)
//      and fsyncs the folder;
//   4. the destructor removes the temporary file unless commit() succeeded.
// Portable: POSIX open/fsync/rename, Windows _wsopen_s/_commit/MoveFileExW.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace keensight::detail {

class AtomicFile {
 public:
  // Throws FileError (errno-carrying: missing folder, permission denied, ...).
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, std::size_t bytes);
  // Moves the write position to `offset` (at most the bytes written so far).
  void seek(std::uint64_t offset);
  std::uint64_t size() const { return size_; }
  void commit();

  const std::string& path() const { return path_; }

 private:
  void flush_buffer();
  [[noreturn]] void fail(const std::string& what, int error_number) const;

  std::string path_, temp_path_;
  int fd_ = -1;
  std::vector<unsigned char> buffer_;
  std::uint64_t position_ = 0, size_ = 0;  // logical write position, bytes in the file
  bool committed_ = false;
};

}  // namespace keensight::detail
