#include "core/atomic_file.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

#include "keensight/core.hpp"

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#include <share.h>
#include <sys/stat.h>
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace keensight::detail {
namespace {

constexpr std::size_t kBufferBytes = std::size_t{1} << 20;

// Position of the last path separator, or npos.
std::size_t last_separator(const std::string& path) {
#ifdef _WIN32
  return path.find_last_of("/\\");
#else
  return path.find_last_of('/');
#endif
}

std::string folder_of(const std::string& path) {
  const std::size_t slash = last_separator(path);
  if (slash == std::string::npos) return ".";
  return slash == 0 ? path.substr(0, 1) : path.substr(0, slash);
}

std::string base_name(const std::string& path) {
  const std::size_t slash = last_separator(path);
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// 64 random bits as 16 hex digits: random_device mixed with a counter and the
// clock (random_device may be deterministic on some platforms; O_EXCL keeps
// even a predictable name safe, randomness keeps it from colliding).
std::string random_suffix() {
  static std::atomic<std::uint64_t> counter{0};
  std::uint64_t x = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  x ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  x ^= counter.fetch_add(0x9E3779B97F4A7C15ull);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;  // splitmix64 finaliser
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  static const char* digits = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 0; i < 16; ++i) s[static_cast<std::size_t>(i)] = digits[(x >> (4 * i)) & 15];
  return s;
}

#ifdef _WIN32
std::wstring widen(const std::string& s) {
  const int n = MultiByteToWideChar(CP_UTF8, 0, s.c_str(), -1, nullptr, 0);
  std::wstring w(static_cast<std::size_t>(n > 0 ? n : 1), L'\0');
  if (n > 0) MultiByteToWideChar(CP_UTF8, 0, s.c_str(), -1, &w[0], n);
  w.resize(w.size() - 1);
  return w;
}
#endif

int create_exclusive(const std::string& path) {
#ifdef _WIN32
  int fd = -1;
  const errno_t e = _wsopen_s(&fd, widen(path).c_str(), _O_WRONLY | _O_CREAT | _O_EXCL | _O_BINARY,
                              _SH_DENYRW, _S_IREAD | _S_IWRITE);
  if (e != 0) errno = e;
  return e == 0 ? fd : -1;
#else
  int flags = O_WRONLY | O_CREAT | O_EXCL;
#ifdef O_NOFOLLOW
  flags |= O_NOFOLLOW;
#endif
#ifdef O_CLOEXEC
  flags |= O_CLOEXEC;
#endif
  // 0644 before the umask: written files are readable like any other.
  int fd;
  do fd = ::open(path.c_str(), flags, 0644);
  while (fd < 0 && errno == EINTR);
  return fd;
#endif
}

bool write_all(int fd, const unsigned char* p, std::size_t n) {
  while (n > 0) {
#ifdef _WIN32
    const int chunk = static_cast<int>(std::min<std::size_t>(n, 1u << 30));
    const int w = _write(fd, p, static_cast<unsigned>(chunk));
#else
    const ssize_t w = ::write(fd, p, n);
#endif
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool sync_fd(int fd) {
#ifdef _WIN32
  return _commit(fd) == 0;
#else
  return ::fsync(fd) == 0;
#endif
}

void close_fd(int fd) {
#ifdef _WIN32
  _close(fd);
#else
  ::close(fd);
#endif
}

}  // namespace

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  if (path.empty()) throw ValueError("path: expected a non-empty path");
  if (path.find('\0') != std::string::npos) throw ValueError("path: a path cannot contain NUL characters");
  const std::string folder = folder_of(path);
  for (int attempt = 0; attempt < 64 && fd_ < 0; ++attempt) {
    temp_path_ = folder + "/." + base_name(path) + "." + random_suffix() + ".tmp";
    fd_ = create_exclusive(temp_path_);
    if (fd_ < 0 && errno != EEXIST) fail("cannot create a file in '" + folder + "'", errno);
  }
  if (fd_ < 0) fail("cannot create a temporary file in '" + folder + "'", EEXIST);
  buffer_.reserve(kBufferBytes);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) close_fd(fd_);
  if (!committed_ && !temp_path_.empty()) {
#ifdef _WIN32
    _wunlink(widen(temp_path_).c_str());
#else
    ::unlink(temp_path_.c_str());
#endif
  }
}

void AtomicFile::fail(const std::string& what, int error_number) const {
  throw FileError(what + ": " + std::strerror(error_number), error_number, path_);
}

void AtomicFile::flush_buffer() {
  if (buffer_.empty()) return;
  if (!write_all(fd_, buffer_.data(), buffer_.size())) fail("cannot write '" + path_ + "'", errno);
  buffer_.clear();
}

void AtomicFile::write(const void* data, std::size_t bytes) {
  if (fd_ < 0) throw ValueError("AtomicFile: write after commit");
  const auto* p = static_cast<const unsigned char*>(data);
  if (bytes >= kBufferBytes) {
    flush_buffer();
    if (!write_all(fd_, p, bytes)) fail("cannot write '" + path_ + "'", errno);
  } else {
    if (buffer_.size() + bytes > kBufferBytes) flush_buffer();
    buffer_.insert(buffer_.end(), p, p + bytes);
  }
  position_ += bytes;
  size_ = std::max(size_, position_);
}

void AtomicFile::seek(std::uint64_t offset) {
  if (offset > size_) throw ValueError("AtomicFile: seek past the end of the data written");
  flush_buffer();
#ifdef _WIN32
  const bool ok = _lseeki64(fd_, static_cast<__int64>(offset), SEEK_SET) >= 0;
#else
  const bool ok = ::lseek(fd_, static_cast<off_t>(offset), SEEK_SET) >= 0;
#endif
  if (!ok) fail("cannot seek in '" + path_ + "'", errno);
  position_ = offset;
}

void AtomicFile::commit() {
  if (fd_ < 0) throw ValueError("AtomicFile: commit twice");
  flush_buffer();
  if (!sync_fd(fd_)) fail("cannot write '" + path_ + "' to disk", errno);
  const int fd = fd_;
  fd_ = -1;
#ifdef _WIN32
  if (_close(fd) != 0) fail("cannot write '" + path_ + "'", errno);
  if (!MoveFileExW(widen(temp_path_).c_str(), widen(path_).c_str(),
                   MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
    fail("cannot replace '" + path_ + "'", EACCES);
  committed_ = true;
#else
  if (::close(fd) != 0) fail("cannot write '" + path_ + "'", errno);
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) fail("cannot replace '" + path_ + "'", errno);
  committed_ = true;
  // The rename itself reaches the disk with the folder's entry.
  const int dir = ::open(folder_of(path_).c_str(), O_RDONLY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
#endif
}

}  // namespace keensight::detail
