#include "core/container.hpp"

#include <algorithm>
#include <cerrno>
#include <vector>

#include "keensight/core.hpp"


namespace keensight::detail {
namespace {

constexpr std::size_t kMagicBytes = 8;
constexpr std::uint64_t kHeaderBytes = kMagicBytes + sizeof(std::uint32_t);
constexpr std::uint64_t kTrailerBytes = sizeof(std::uint64_t);

bool host_is_little_endian() {
  const std::uint32_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

void require_little_endian() {
  if (!host_is_little_endian())
    throw ValueError("index files are little-endian; this big-endian host is not supported");
}

std::string padded_magic(const std::string& magic) {
  if (magic.size() > kMagicBytes) throw ValueError("index magic longer than 8 bytes: " + magic);
  std::string m = magic;
  m.resize(kMagicBytes, '\0');
  return m;
}

bool seek(std::FILE* f, std::uint64_t offset) {
#ifdef _WIN32
  return _fseeki64(f, static_cast<__int64>(offset), SEEK_SET) == 0;
#else
  return fseeko(f, static_cast<off_t>(offset), SEEK_SET) == 0;
#endif
}

bool file_size(std::FILE* f, std::uint64_t* size) {
#ifdef _WIN32
  if (_fseeki64(f, 0, SEEK_END) != 0) return false;
  const __int64 end = _ftelli64(f);
#else
  if (fseeko(f, 0, SEEK_END) != 0) return false;
  const off_t end = ftello(f);
#endif
  if (end < 0) return false;
  *size = static_cast<std::uint64_t>(end);
  return true;
}

}  // namespace

std::uint64_t fnv1a64(const void* data, std::size_t bytes, std::uint64_t hash) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    hash ^= p[i];
    hash *= 1099511628211ull;
  }
  return hash;
}

// ---------------------------------------------------------------------------
ContainerWriter::ContainerWriter(const std::string& path, const std::string& magic, std::uint32_t version) {
  require_little_endian();
  const std::string m = padded_magic(magic);  // before the temporary file exists
  file_.emplace(path);
  write(m.data(), kMagicBytes);
  write_value(version);
}

ContainerWriter::ContainerWriter(std::vector<unsigned char>& sink, const std::string& magic, std::uint32_t version)
    : memory_(&sink) {
  require_little_endian();
  const std::string m = padded_magic(magic);
  sink.clear();
  write(m.data(), kMagicBytes);
  write_value(version);
}

void ContainerWriter::write(const void* data, std::size_t bytes) {
  if (bytes == 0) return;
  if (file_) {
    file_->write(data, bytes);
  } else {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    memory_->insert(memory_->end(), p, p + bytes);
  }
  hash_ = fnv1a64(data, bytes, hash_);
}

void ContainerWriter::commit() {
  const std::uint64_t checksum = hash_;
  if (file_) {
    file_->write(&checksum, sizeof checksum);
    file_->commit();
  } else {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(&checksum);
    memory_->insert(memory_->end(), p, p + sizeof checksum);
  }
}

// ---------------------------------------------------------------------------
ContainerReader::ContainerReader(const std::string& path, const std::string& magic, const char* what)
    : source_("file '" + path + "'"), what_(what) {
  require_little_endian();
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) throw FileError("cannot read '" + path + "': " + std::strerror(errno), errno, path);
  std::uint64_t size = 0;
  if (!file_size(file_, &size)) fail("cannot determine its size");
  if (size < kHeaderBytes + kTrailerBytes) fail("truncated (" + std::to_string(size) + " bytes)");

  // The checksum first, in one streaming pass, before any field is trusted.
  if (!seek(file_, 0)) fail("cannot seek");
  std::vector<unsigned char> buffer(std::size_t{1} << 20);
  std::uint64_t hash = kFnvOffset, left = size - kTrailerBytes;
  std::vector<unsigned char> head;
  while (left > 0) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size()));
    if (std::fread(buffer.data(), 1, want, file_) != want) fail("truncated (read error)");
    if (head.empty()) head.assign(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(want, kHeaderBytes)));
    hash = fnv1a64(buffer.data(), want, hash);
    left -= want;
  }
  std::uint64_t stored = 0;
  if (std::fread(&stored, 1, sizeof stored, file_) != sizeof stored) fail("truncated (no checksum)");
  verify(head.data(), head.size(), hash, stored, magic, size);
  if (!seek(file_, position_)) fail("cannot seek");
}

ContainerReader::ContainerReader(const void* data, std::size_t size, const std::string& magic, const char* what)
    : source_("bytes"), what_(what), memory_(static_cast<const unsigned char*>(data)) {
  require_little_endian();
  if (size < kHeaderBytes + kTrailerBytes) fail("truncated (" + std::to_string(size) + " bytes)");
  const std::uint64_t hash = fnv1a64(memory_, size - kTrailerBytes);
  std::uint64_t stored = 0;
  std::memcpy(&stored, memory_ + size - kTrailerBytes, sizeof stored);
  verify(memory_, kHeaderBytes, hash, stored, magic, size);
}

void ContainerReader::verify(const unsigned char* head, std::size_t head_size, std::uint64_t hash,
                             std::uint64_t stored, const std::string& magic, std::uint64_t size) {
  const std::string m = padded_magic(magic);
  if (head_size < kHeaderBytes || std::memcmp(head, m.data(), kMagicBytes) != 0)
    fail(std::string("not a ") + what_ + " " + (file_ ? "file" : "payload") + " (wrong magic)");
  if (hash != stored) fail(std::string("checksum mismatch: the ") + (file_ ? "file" : "data") + " is corrupt or truncated");
  std::memcpy(&version_, head + kMagicBytes, sizeof version_);
  position_ = kHeaderBytes;
  body_end_ = size - kTrailerBytes;
}

ContainerReader::~ContainerReader() {
  if (file_) std::fclose(file_);
}

void ContainerReader::fail(const std::string& why) const {
  throw ValueError(std::string(what_) + " " + source_ + ": " + why);
}

void ContainerReader::require_version(std::uint32_t newest) const {
  if (version_ < 1 || version_ > newest)
    fail("unsupported format version " + std::to_string(version_) + " (this build reads 1.." +
         std::to_string(newest) + ")");
}

void ContainerReader::read(void* data, std::size_t bytes) {
  if (bytes > remaining()) fail("truncated (fields past the end of the data)");
  if (bytes == 0) return;
  if (memory_)
    std::memcpy(data, memory_ + position_, bytes);
  else if (std::fread(data, 1, bytes, file_) != bytes)
    fail("truncated (read error)");
  position_ += bytes;
}

void ContainerReader::finish() const {
  if (remaining() != 0) fail(std::to_string(remaining()) + " unexpected bytes after the data");
}

}  // namespace keensight::detail
