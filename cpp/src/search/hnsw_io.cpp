// The HNSW index file: written through the shared container (core/container:
// magic, version, FNV-1a 64 checksum, atomic write) as format version 4;
// versions 1 to 3, written by earlier keensight with a header of their own, are
// still read (LegacyBody below).
//
// Container (version 4): magic "KEENHNSW", u32 version, the body, u64 FNV-1a
// 64 of every byte before it. Versions 1 to 3: 8 bytes magic "KEENHNSW", u32
// version, u32 header size (32), u64 body size, u64 FNV-1a 64 of the body,
// then the body. The body (little-endian; version 2 has no centre, version 1
// also no rotation kind 2):
//   u32 dim, metric, M, ef_construction, ef_search, granule,
//   early_termination (version 4: option flags, bit 0 early termination, bit 1
//   pca, bit 2 pca_auto), rotation kind (0 none, 1 dense, 2 reflectors);
//   u64 seed, count; i32 max_level; u32 entry;
//   [kind 1: rotation dim*dim f32; kind 2: u32 k, V dim*k f32, T k*k f32 (the
//   WY form, see hnsw_rotation.hpp); kinds 1 and 2: centre dim f32 (zeros:
//   none)]; labels count*i64; levels count*u8; deleted count*u8; heads
//   count*h f32 (h = min(granule, dim), 0 for ip: the first coordinates of
//   each vector as stored); node blocks count*(dim-h f32 rest of the vector,
//   2M u32 layer-0 links, 0xffffffff = unused); u64 n, n u32 upper links (M
//   slots per node and layer >= 1, in node order).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/container.hpp"
#include "search/hnsw_index.hpp"
#include "search/kernels.hpp"

namespace keensight::search {

namespace detail {

// The body of a file, from either container, read field by field; every
// failure is a ValueError naming the file.
class HNSWFileBody {
 public:
  explicit HNSWFileBody(const std::string& path) : path_(path) {}
  virtual ~HNSWFileBody() = default;
  virtual void read(void* out, std::size_t n) = 0;
  virtual std::uint64_t left() const = 0;
  template <class T>
  T value() {
    T v;
    read(&v, sizeof(T));
    return v;
  }
  // Throws unless n items of `item` bytes fit in what is left (checked before
  // allocating, so a corrupt count cannot ask for absurd memory).
  void need(std::uint64_t n, std::uint64_t item) {
    if (item && n > left() / item) fail("sections run past the end of the payload");
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw ValueError("HNSWIndex.load: " + path_ + " is not a valid keensight HNSW index (" + why + ")");
  }

 private:
  std::string path_;
};

}  // namespace detail

namespace {

using detail::HNSWFileBody;

using detail::kMaxGranule;
using detail::kMaxLevel;
using detail::kNoLink;
using detail::SearchKernels;
using detail::Split;
using detail::kMaxNorm2;

constexpr char kMagic[] = "KEENHNSW";
constexpr std::uint32_t kFormatVersion = 4;
constexpr std::uint32_t kLegacyHeaderBytes = 32;  // versions 1 to 3

class ContainerBody : public HNSWFileBody {
 public:
  ContainerBody(keensight::detail::ContainerReader& in, const std::string& path) : HNSWFileBody(path), in_(in) {}
  void read(void* out, std::size_t n) override {
    if (n > in_.remaining()) fail("sections run past the end of the payload");
    in_.read(out, n);
  }
  std::uint64_t left() const override { return in_.remaining(); }

 private:
  keensight::detail::ContainerReader& in_;
};

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// Versions 1 to 3: the header of their own (checked here: size, checksum),
// then the body.
class LegacyBody : public HNSWFileBody {
 public:
  LegacyBody(std::FILE* f, const std::string& path) : HNSWFileBody(path), f_(f) {
    char header[kLegacyHeaderBytes];
    if (std::fread(header, 1, kLegacyHeaderBytes, f_) != kLegacyHeaderBytes) fail("truncated header");
    std::uint32_t header_bytes;
    std::uint64_t checksum;
    std::memcpy(&header_bytes, header + 12, 4);
    std::memcpy(&left_, header + 16, 8);
    std::memcpy(&checksum, header + 24, 8);
    if (header_bytes != kLegacyHeaderBytes) fail("bad header size");
    // The size and checksum of the body, before trusting any of it.
    std::uint64_t hash = keensight::detail::kFnvOffset, total = 0;
    std::vector<char> buf(1 << 20);
    for (;;) {
      const std::size_t got = std::fread(buf.data(), 1, buf.size(), f_);
      if (got == 0) break;
      hash = keensight::detail::fnv1a64(buf.data(), got, hash);
      total += got;
    }
    if (total < left_) fail("truncated file");
    if (total > left_) fail("trailing bytes after the payload");
    if (hash != checksum) fail("checksum mismatch: the file is corrupt");
    if (std::fseek(f_, kLegacyHeaderBytes, SEEK_SET) != 0) fail("cannot seek");
  }
  void read(void* out, std::size_t n) override {
    if (n > left_) fail("sections run past the end of the payload");
    if (n && std::fread(out, 1, n, f_) != n) fail("truncated file");
    left_ -= n;
  }
  std::uint64_t left() const override { return left_; }

 private:
  std::FILE* f_;
  std::uint64_t left_ = 0;
};

// The version of a file of HNSW magic (0 if it has not, or is too short).
std::uint32_t peek_version(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) throw FileError("HNSWIndex.load: cannot open " + path + " (" + std::strerror(errno) + ")", errno, path);
  char head[12];
  if (std::fread(head, 1, sizeof head, file.get()) != sizeof head || std::memcmp(head, kMagic, 8) != 0) return 0;
  std::uint32_t version;
  std::memcpy(&version, head + 8, 4);
  return version;
}

// Every field of the body, checked (a valid checksum does not make a crafted
// file safe to search).
}  // namespace

std::unique_ptr<HNSWIndex::Impl> HNSWIndex::Impl::parse(HNSWFileBody& in, std::uint32_t version) {
  const auto dim = in.value<std::uint32_t>();
  HNSWOptions o;
  const auto metric = in.value<std::uint32_t>();
  o.M = static_cast<int>(in.value<std::uint32_t>());
  o.ef_construction = static_cast<int>(in.value<std::uint32_t>());
  o.ef_search = static_cast<int>(in.value<std::uint32_t>());
  o.granule = static_cast<int>(in.value<std::uint32_t>());
  const auto early = in.value<std::uint32_t>();
  const auto has_rotation = in.value<std::uint32_t>();
  o.seed = in.value<std::uint64_t>();
  const auto count = in.value<std::uint64_t>();
  const auto max_level = in.value<std::int32_t>();
  const auto entry = in.value<std::uint32_t>();
  const auto ef_ok = [](int ef) { return ef >= 1 && ef <= kHNSWMaxEf; };
  // Version 4 keeps option flags in this word: bit 0 early termination, bit 1 pca, bit 2 pca_auto
  // (an index saved before its first add fits its rotation on the first add after load).
  if (metric > 2 || early > (version >= 4 ? 7u : 1u) || has_rotation > (version == 1 ? 1u : 2u) || o.M < 2 || o.M > 2048 ||
      !ef_ok(o.ef_construction) || !ef_ok(o.ef_search) || o.granule < 1 || o.granule > kMaxGranule || dim < 1 ||
      dim > (1u << 24))
    in.fail("bad parameters");
  o.metric = static_cast<Metric>(metric);
  o.early_termination = (early & 1u) != 0;
  o.pca = (early & 2u) != 0;
  o.pca_auto = (early & 4u) != 0;
  auto impl = std::make_unique<Impl>(static_cast<std::int64_t>(dim), o);
  const std::size_t file_words = impl->tail_dim + impl->M0;  // a node block in the file
  const std::uint64_t per_node = 8 + 2 + (impl->head_dim + file_words) * 4;
  in.need(count, per_node);
  if (count == 0 ? max_level != -1 : (max_level < 0 || max_level > kMaxLevel || entry >= count))
    in.fail("bad entry point");
  if (has_rotation == 2) {
    const auto k = in.value<std::uint32_t>();
    if (k < 1 || k > dim) in.fail("bad rotation");
    in.need(std::uint64_t{dim} * k + std::uint64_t{k} * k, 4);
    std::vector<float> V(std::size_t{dim} * k), T(std::size_t{k} * k);
    in.read(V.data(), V.size() * 4);
    in.read(T.data(), T.size() * 4);
    for (std::size_t i = 0; i < dim; ++i)
      for (std::size_t j = 0; j < k; ++j) {
        const float v = V[i * k + j];
        if (!std::isfinite(v) || (i < j && v != 0.f) || (i == j && v != 1.f)) in.fail("bad rotation");
      }
    for (std::size_t i = 0; i < k; ++i)
      for (std::size_t j = 0; j < k; ++j)
        if (!std::isfinite(T[i * k + j]) || (j < i && T[i * k + j] != 0.f)) in.fail("bad rotation");
    try {
      impl->rotation.set_wy(V.data(), T.data(), k);  // checks that the reflectors make a rotation
    } catch (const ValueError& e) {
      in.fail(e.what());
    }
  } else if (has_rotation == 1) {
    in.need(std::uint64_t{dim} * dim, 4);
    std::vector<float> r(static_cast<std::size_t>(dim) * dim);
    in.read(r.data(), r.size() * 4);
    try {
      impl->rotation.set_dense(r.data());  // checks it
    } catch (const ValueError& e) {
      in.fail(e.what());
    }
  }
  if (has_rotation != 0 && version >= 3) {
    in.need(dim, 4);
    std::vector<float> c(dim);
    in.read(c.data(), c.size() * 4);
    const bool zero = std::all_of(c.begin(), c.end(), [](float v) { return v == 0.f; });
    if (!std::all_of(c.begin(), c.end(), [](float v) { return std::isfinite(v); }) ||
        (!zero && o.metric != Metric::l2))  // add centres l2 indexes only
      in.fail("bad centre");
    if (!zero) impl->centre = std::move(c);
  }
  impl->reserve(static_cast<std::int64_t>(count));
  const auto n = static_cast<std::size_t>(count);
  std::vector<std::int64_t> labels(n);
  in.read(labels.data(), n * 8);
  in.read(impl->levels.data(), n);
  in.read(impl->deleted.data(), n);
  in.read(impl->heads.data(), n * impl->head_dim * 4);
  if (!impl->narrow) {
    in.read(impl->nodes.data(), n * impl->node_words * 4);
  } else {  // narrowed a chunk of nodes at a time; a link must fit before it is narrowed
    constexpr std::size_t kChunk = 256;
    std::vector<std::uint32_t> block(kChunk * file_words);
    for (std::size_t i0 = 0; i0 < n; i0 += kChunk) {
      const std::size_t m = std::min(kChunk, n - i0);
      in.read(block.data(), m * file_words * 4);
      for (std::size_t i = i0; i < i0 + m; ++i) {
        const std::uint32_t* b = block.data() + (i - i0) * file_words;
        for (std::size_t j = 0; j < impl->M0; ++j)
          if (b[impl->tail_dim + j] != kNoLink && b[impl->tail_dim + j] >= count) in.fail("link to a missing node");
        std::memcpy(impl->tail(static_cast<std::uint32_t>(i)), b, impl->tail_dim * sizeof(float));
        impl->put_links0(static_cast<std::uint32_t>(i), b + impl->tail_dim);
      }
    }
  }
  const auto n_upper = in.value<std::uint64_t>();
  in.need(n_upper, 4);
  impl->upper.resize(static_cast<std::size_t>(n_upper));
  in.read(impl->upper.data(), impl->upper.size() * 4);
  if (in.left() != 0) in.fail("trailing bytes in the payload");
  impl->count = static_cast<std::int64_t>(count);

  // Structure: levels and the upper-list offsets they imply, link counts and
  // targets (in range, and on a level the target has), labels, flags, values.
  std::size_t offset = 0;
  int top = -1;
  for (std::size_t i = 0; i < n; ++i) {
    if (impl->levels[i] > kMaxLevel) in.fail("bad node level");
    if (impl->deleted[i] > 1) in.fail("bad deletion flag");
    if (labels[i] < 0) in.fail("negative id");
    top = std::max<int>(top, impl->levels[i]);
    impl->upper_offset[i] = static_cast<std::uint32_t>(offset);
    offset += impl->levels[i] * impl->M;
    if (offset > n_upper) in.fail("upper layers do not match the node levels");
  }
  if (offset != n_upper) in.fail("upper layers do not match the node levels");
  if (count > 0 && (top != max_level || impl->levels[entry] != max_level)) in.fail("bad entry point");
  // Each list holds distinct other nodes (INSERT never links a node to itself
  // or twice to one node): last_seen[t] is the last list that linked to t.
  std::vector<std::uint32_t> list0(impl->M0);
  std::vector<std::uint64_t> last_seen(n, ~std::uint64_t{0});
  std::uint64_t list_number = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (int l = 0; l <= impl->levels[i]; ++l, ++list_number) {
      const std::uint32_t* list = impl->links(static_cast<std::uint32_t>(i), l);
      if (l == 0) {
        impl->get_links0(static_cast<std::uint32_t>(i), list0.data());
        list = list0.data();
      }
      const std::size_t cap = impl->max_links(l);
      std::size_t n_links = 0;
      while (n_links < cap && list[n_links] != kNoLink) ++n_links;
      for (std::size_t j = 0; j < cap; ++j) {
        if (j >= n_links) {
          if (list[j] != kNoLink) in.fail("links after the end of a list");
          continue;
        }
        const std::uint32_t t = list[j];
        if (t >= count || impl->levels[t] < l) in.fail("link to a missing node");
        if (t == i) in.fail("a node linked to itself");
        if (last_seen[t] == list_number) in.fail("a node linked twice from one list");
        last_seen[t] = list_number;
      }
    }
    impl->n_deleted += impl->deleted[i];
  }
  // Vectors as add() stores them: finite, of norm at most kHNSWMaxNorm
  // (centred ones included: the centre was subtracted before storing), unit
  // for cosine (to the rotation's tolerance).
  const SearchKernels& kernels = detail::search_kernels();
  for (std::size_t i = 0; i < n; ++i) {
    const Split v = impl->node(static_cast<std::uint32_t>(i));
    for (std::int64_t j = 0; j < impl->dim; ++j)
      if (!std::isfinite(j < impl->head_dim ? v.head[j] : v.tail[j - impl->head_dim]))
        in.fail("non-finite vector");
    const float norm2 = kernels.dot(v.head, v.head, impl->head_dim) +
                        kernels.dot(v.tail, v.tail, static_cast<std::int64_t>(impl->tail_dim));
    if (!(norm2 <= kMaxNorm2)) in.fail("vector too large");
    if (o.metric == Metric::cosine && std::fabs(norm2 - 1.f) > 1e-2f) in.fail("cosine vector not of unit norm");
  }
  bool dense = true;
  for (std::size_t i = 0; i < n && dense; ++i) dense = labels[i] == static_cast<std::int64_t>(i);
  if (!dense) {
    impl->dense_ids = false;
    detail::grow_exact(impl->labels, static_cast<std::size_t>(impl->capacity));
    impl->lookup.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      if (!impl->lookup.emplace(labels[i], static_cast<std::uint32_t>(i)).second) in.fail("duplicate id");
    std::copy(labels.begin(), labels.end(), impl->labels.begin());
  }
  impl->entry = entry;
  impl->max_level = max_level;
  return impl;
}
std::unique_ptr<HNSWIndex::Impl> HNSWIndex::Impl::load(const std::string& path) {
  const std::uint32_t version = peek_version(path);
  if (version >= 1 && version <= 3) {
    std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
    if (!file) throw FileError("HNSWIndex.load: cannot open " + path + " (" + std::strerror(errno) + ")", errno, path);
    LegacyBody body(file.get(), path);
    return parse(body, version);
  }
  keensight::detail::ContainerReader in(path, kMagic, "HNSWIndex");
  in.require_version(kFormatVersion);
  ContainerBody body(in, path);
  return parse(body, in.version());
}

void HNSWIndex::Impl::save(const std::string& path) const {
  std::shared_lock<std::shared_mutex> read(rw);
  keensight::detail::ContainerWriter w(path, kMagic, kFormatVersion);
  write_container(w);
}

std::vector<unsigned char> HNSWIndex::Impl::to_bytes() const {
  std::shared_lock<std::shared_mutex> read(rw);
  std::vector<unsigned char> bytes;
  keensight::detail::ContainerWriter w(bytes, kMagic, kFormatVersion);
  write_container(w);
  return bytes;
}

// The same checks as load (the container's, then parse's); the legacy
// versions 1 to 3 have a header of their own and exist only as files.
std::unique_ptr<HNSWIndex::Impl> HNSWIndex::Impl::from_bytes(const void* data, std::size_t size) {
  if (!data && size) throw ValueError("HNSWIndex.from_bytes: null data");
  static const unsigned char kEmpty = 0;
  keensight::detail::ContainerReader in(data ? data : &kEmpty, size, kMagic, "HNSWIndex");
  in.require_version(kFormatVersion);
  ContainerBody body(in, "bytes");
  if (in.version() != kFormatVersion)
    body.fail("format version " + std::to_string(in.version()) + " exists only as a file: load it");
  return parse(body, in.version());
}

// The body of format 4 (the caller holds the lock), then the checksum.
void HNSWIndex::Impl::write_container(keensight::detail::ContainerWriter& w) const {
  w.write_value<std::uint32_t>(static_cast<std::uint32_t>(dim));
  w.write_value<std::uint32_t>(static_cast<std::uint32_t>(opt.metric));
  w.write_value<std::uint32_t>(static_cast<std::uint32_t>(opt.M));
  w.write_value<std::uint32_t>(static_cast<std::uint32_t>(opt.ef_construction));
  w.write_value<std::uint32_t>(static_cast<std::uint32_t>(opt.ef_search));
  w.write_value<std::uint32_t>(static_cast<std::uint32_t>(opt.granule));
  w.write_value<std::uint32_t>((opt.early_termination ? 1u : 0u) | (opt.pca ? 2u : 0u) |
                              (opt.pca_auto ? 4u : 0u));  // option flags
  const bool rotated = rotation.active();
  const std::int64_t k = rotated ? rotation.reflectors() : 0;
  w.write_value<std::uint32_t>(!rotated ? 0u : k == 0 ? 1u : 2u);
  w.write_value<std::uint64_t>(opt.seed);
  w.write_value<std::uint64_t>(static_cast<std::uint64_t>(count));
  w.write_value<std::int32_t>(max_level);
  w.write_value<std::uint32_t>(entry);
  const auto n = static_cast<std::size_t>(count);
  if (rotated && k == 0) {
    const std::vector<float> r = rotation.dense();
    w.write(r.data(), r.size() * sizeof(float));
  } else if (rotated) {
    const auto [V, T] = rotation.wy_factors();
    w.write_value<std::uint32_t>(static_cast<std::uint32_t>(k));
    w.write(V.data(), V.size() * sizeof(float));
    w.write(T.data(), T.size() * sizeof(float));
  }
  if (rotated) {
    const std::vector<float> c = centre.empty() ? std::vector<float>(static_cast<std::size_t>(dim), 0.f) : centre;
    w.write(c.data(), c.size() * sizeof(float));
  }
  for (std::size_t i = 0; i < n; ++i) w.write_value<std::int64_t>(label(static_cast<std::uint32_t>(i)));
  w.write(levels.data(), n);
  w.write(deleted.data(), n);
  w.write(heads.data(), n * static_cast<std::size_t>(head_dim) * sizeof(float));
  if (!narrow) {
    w.write(nodes.data(), n * node_words * sizeof(std::uint32_t));
  } else {  // the file holds uint32 links: widened a chunk of nodes at a time
    constexpr std::size_t kChunk = 256;
    const std::size_t words = tail_dim + M0;
    std::vector<std::uint32_t> block(kChunk * words);
    for (std::size_t i0 = 0; i0 < n; i0 += kChunk) {
      const std::size_t m = std::min(kChunk, n - i0);
      for (std::size_t i = i0; i < i0 + m; ++i) {
        std::uint32_t* b = block.data() + (i - i0) * words;
        std::memcpy(b, tail(static_cast<std::uint32_t>(i)), tail_dim * sizeof(float));
        get_links0(static_cast<std::uint32_t>(i), b + tail_dim);
      }
      w.write(block.data(), m * words * sizeof(std::uint32_t));
    }
  }
  w.write_value<std::uint64_t>(upper.size());
  w.write(upper.data(), upper.size() * sizeof(std::uint32_t));
  w.commit();
}

}  // namespace keensight::search
