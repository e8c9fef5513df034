#include "index/index_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "index/checkpoint_format.h"
#include "index/group.h"
#include "util/crc32c.h"
#include "util/file.h"

namespace sisu {

namespace f = index_file;

namespace {

constexpr std::uint64_t kMetaBytes = index_internal::kGroupMetaBytes;
constexpr std::uint64_t kTableHeaderBytes = 64;  // the in-memory table header, not stored

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string where(const std::string& path, std::uint64_t offset) {
  return path + " at offset " + std::to_string(offset) + " (" + hex(offset) + "): ";
}

// The typed loader's long-standing format for the shared checks.
std::string at_offset(const std::string& path, std::uint64_t offset) {
  return path + " at offset " + std::to_string(offset) + ": ";
}

}  // namespace

Status index_file::check_header(const FileHeader& h, const std::string& path) {
  if (std::memcmp(h.magic, kMagic, sizeof(h.magic)) != 0) {
    return Status::corruption(path + ": not a sisu index file (bad magic at offset 0)");
  }
  if (h.crc != crc32c::value(&h, offsetof(FileHeader, crc))) {
    return Status::corruption(at_offset(path, offsetof(FileHeader, crc)) +
                              "header checksum mismatch");
  }
  if (h.format_version < kOldestFormatVersion || h.format_version > kFormatVersion ||
      h.header_bytes != sizeof(FileHeader)) {
    return Status::corruption(path + ": unsupported format version " +
                              std::to_string(h.format_version));
  }
  return Status::OK();
}

Status index_file::check_footer(const Footer& ft, const FileHeader& h, std::uint64_t body_end,
                                const std::string& path) {
  if (std::memcmp(ft.magic, kFooterMagic, sizeof(ft.magic)) != 0 ||
      ft.crc != crc32c::value(&ft, offsetof(Footer, crc))) {
    return Status::corruption(at_offset(path, body_end) +
                              "bad footer (truncated or extended file?)");
  }
  if (ft.body_bytes != body_end || ft.entries != h.entries || ft.tables != h.tables) {
    return Status::corruption(at_offset(path, body_end) + "footer does not match the header");
  }
  return Status::OK();
}

IndexFile::IndexFile() = default;

IndexFile::~IndexFile() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
}

IndexFile::IndexFile(IndexFile&& o) noexcept { *this = std::move(o); }

IndexFile& IndexFile::operator=(IndexFile&& o) noexcept {
  if (this != &o) {
    if (map_ != nullptr) ::munmap(map_, map_bytes_);
    path_ = std::move(o.path_);
    map_ = o.map_;
    map_bytes_ = o.map_bytes_;
    section_offset_ = o.section_offset_;
    owned_ = std::move(o.owned_);
    checkpoint_sequence_ = o.checkpoint_sequence_;
    data_ = owned_.empty() ? o.data_ : reinterpret_cast<const std::uint8_t*>(owned_.data());
    size_ = o.size_;
    header_ = o.header_;
    o.map_ = nullptr;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

Status IndexFile::open(const std::string& path, IndexFile* out) {
  return open_section(path, 0, ~std::uint64_t{0}, out);
}

Status IndexFile::open_section(const std::string& path, std::uint64_t offset,
                               std::uint64_t bytes, IndexFile* out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::io_error(path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return Status::io_error(path + ": " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::corruption(path + ": not a regular file" +
                              (S_ISDIR(st.st_mode) ? std::string(" (a directory)") : ""));
  }
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  if (offset > file_size) {
    ::close(fd);
    return Status::corruption(path + ": index section past the end of the file");
  }
  const std::uint64_t size = std::min(bytes, file_size - offset);
  if (size < sizeof(f::FileHeader) + sizeof(f::Footer)) {
    ::close(fd);
    return Status::corruption(path + ": too short for a sisu index file (" + std::to_string(size) +
                              " bytes)");
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) return Status::io_error(path + ": mmap: " + std::strerror(map_errno));

  IndexFile v;
  v.path_ = path;
  v.map_ = map;
  v.map_bytes_ = file_size;
  v.section_offset_ = offset;
  v.data_ = static_cast<const std::uint8_t*>(map) + offset;
  v.size_ = size;
  if (offset == 0 && std::memcmp(v.data_, checkpoint_file::kMagic, 8) == 0) {
    // A checkpoint file: view the image of its last complete commit.
    FileReader r;
    if (Status st = r.open(path); !st.ok()) return st;
    if (Status st = checkpoint_file::read_image(r, path, &v.owned_, &v.checkpoint_sequence_);
        !st.ok()) {
      return st;
    }
    v.data_ = reinterpret_cast<const std::uint8_t*>(v.owned_.data());
    v.size_ = v.owned_.size();
  }
  f::FileHeader& h = v.header_;
  std::memcpy(&h, v.data_, sizeof(h));
  if (Status st = f::check_header(h, path); !st.ok()) return st;
  const std::uint32_t key_align = h.alignments >> 16, value_align = h.alignments & 0xffff;
  auto pow2 = [](std::uint32_t a) { return a != 0 && a <= 64 && (a & (a - 1)) == 0; };
  const std::uint64_t value_offset =
      pow2(value_align) ? (std::uint64_t{h.key_bytes} + value_align - 1) / value_align * value_align
                        : 0;
  if (h.key_bytes == 0 || !pow2(key_align) || !pow2(value_align) ||
      h.slot_bytes < value_offset + h.value_bytes ||
      kTableHeaderBytes +
              index_internal::GroupLayout::for_version(h.format_version).group_bytes(h.slot_bytes) >
          f::kMaxTableBytes) {
    return Status::corruption(where(path, offsetof(f::FileHeader, key_bytes)) +
                              "impossible key/value layout");
  }
  if (h.global_depth > f::kMaxDepth) {
    return Status::corruption(where(path, offsetof(f::FileHeader, global_depth)) + "global depth " +
                              std::to_string(h.global_depth) + " exceeds " +
                              std::to_string(f::kMaxDepth));
  }
  const std::uint64_t min_record = sizeof(f::TableHeader) + v.group_bytes();
  if (h.tables > (v.body_end() - sizeof(f::FileHeader)) / min_record) {
    return Status::corruption(where(path, offsetof(f::FileHeader, tables)) +
                              std::to_string(h.tables) + " tables cannot fit in " +
                              std::to_string(size) + " bytes");
  }
  f::Footer ft;
  std::memcpy(&ft, v.data_ + v.body_end(), sizeof(ft));
  if (Status st = f::check_footer(ft, h, v.body_end(), path); !st.ok()) return st;
  *out = std::move(v);
  return Status::OK();
}

bool IndexFile::parse_table(std::uint64_t offset, std::uint32_t n, IndexFileTable* t,
                            IndexFileFault* fault) const {
  const std::string name = "table " + std::to_string(n) + ": ";
  if (offset + sizeof(f::TableHeader) > body_end()) {
    *fault = {offset, name + "runs past the footer (the header promises " +
                          std::to_string(header_.tables) + " tables)"};
    return false;
  }
  f::TableHeader th;
  std::memcpy(&th, at(offset), sizeof(th));
  if (th.magic != f::kTableMagic || th.reserved != 0 || th.flags > f::kTableIsOverflow) {
    *fault = {offset, name + "bad table header"};
    return false;
  }
  if (th.groups == 0 || th.groups > f::kMaxGroups ||
      kTableHeaderBytes + th.groups * group_bytes() > f::kMaxTableBytes) {
    *fault = {offset + offsetof(f::TableHeader, groups),
              name + "bad size (" + std::to_string(th.groups) + " groups)"};
    return false;
  }
  const std::uint64_t payload = th.groups * group_bytes();
  if (payload > body_end() - offset - sizeof(th)) {
    *fault = {offset, name + "runs past the footer"};
    return false;
  }
  t->index = n;
  t->offset = offset;
  t->groups = th.groups;
  t->slots = layout().slots;
  t->size = th.size;
  t->overflow = (th.flags & f::kTableIsOverflow) != 0;
  t->prefix = th.prefix;
  t->local_depth = th.local_depth;
  t->trie_base = th.trie_base;
  f::TableHeader zeroed = th;
  zeroed.crc = 0;
  t->intact = th.crc == crc32c::extend(crc32c::value(&zeroed, sizeof(zeroed)),
                                       at(offset + sizeof(th)), payload);
  return true;
}

std::vector<IndexFileTable> IndexFile::tables() const {
  std::vector<IndexFileTable> out;
  std::uint64_t offset = sizeof(f::FileHeader);
  for (std::uint32_t n = 0; n < header_.tables; ++n) {
    IndexFileTable t;
    IndexFileFault fault;
    if (!parse_table(offset, n, &t, &fault)) break;
    out.push_back(t);
    offset += sizeof(f::TableHeader) + t.groups * group_bytes();
  }
  return out;
}

std::vector<IndexFileFault> IndexFile::verify(
    const std::function<void(std::uint64_t, std::uint64_t)>& progress) const {
  std::vector<IndexFileFault> faults;
  const index_internal::GroupLayout layout = this->layout();
  const unsigned depth = header_.global_depth;
  std::uint64_t offset = sizeof(f::FileHeader);
  std::uint64_t entries = 0;
  bool walked = true;
  const IndexFileTable* head = nullptr;
  std::vector<IndexFileTable> all;
  all.reserve(header_.tables);
  // Directory ranges [begin, begin + count) of the main tables, to check the tiling.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (std::uint32_t n = 0; n < header_.tables; ++n) {
    IndexFileTable t;
    IndexFileFault fault;
    if (!parse_table(offset, n, &t, &fault)) {
      faults.push_back(fault);
      walked = false;
      break;
    }
    all.push_back(t);
    const std::string name = "table " + std::to_string(n) + ": ";
    if (!t.intact) faults.push_back({offset, name + "checksum mismatch"});
    const bool placed = t.local_depth <= depth && t.trie_base <= t.local_depth &&
                        (t.local_depth == 0 || t.prefix >> t.local_depth == 0);
    if (!placed) {
      faults.push_back(
          {offset + offsetof(f::TableHeader, prefix), name + "bad place in the directory"});
    } else if (t.overflow) {
      if (head == nullptr || head->prefix != t.prefix || head->local_depth != t.local_depth ||
          head->trie_base != t.trie_base) {
        faults.push_back(
            {offset + offsetof(f::TableHeader, flags), name + "overflow table without its table"});
      }
    } else {
      head = &all.back();
      const unsigned shift = depth - t.local_depth;
      ranges.push_back({t.prefix << shift, std::uint64_t{1} << shift});
    }
    if (t.intact) {
      const std::uint8_t* meta = at(offset + sizeof(f::TableHeader));
      std::uint32_t full = 0, tombstones = 0;
      for (std::uint32_t i = 0; i < t.capacity(); ++i) {
        const std::uint8_t top = layout.top_of(meta, i);
        full += top > index_internal::kTombstone;
        tombstones += top == index_internal::kTombstone;
      }
      // The map never fills a table further (see ExtendibleHashMap::max_load).
      if (full != t.size || full + tombstones > layout.max_used(t.groups)) {
        faults.push_back({offset + offsetof(f::TableHeader, size),
                          name + "metadata counts do not match (record says " +
                              std::to_string(t.size) + " entries, metadata " +
                              std::to_string(full) + ")"});
      }
      if (layout.filter) {
        if (const char* fault = index_internal::filter_fault(meta, t.groups)) {
          faults.push_back({offset + sizeof(f::TableHeader), name + fault});
        }
      }
      entries += full;
    } else {
      entries += t.size;
    }
    offset += sizeof(f::TableHeader) + t.groups * group_bytes();
    if (progress && n % 1024 == 1023) progress(offset, size_);
  }
  if (progress) progress(offset, size_);
  if (!walked) return faults;
  if (offset != body_end()) {
    faults.push_back(
        {offset, std::to_string(body_end() - offset) + " unexpected bytes before the footer"});
  }
  if (header_.tables > 0) {
    std::sort(ranges.begin(), ranges.end());
    // Every overlap and every gap, the one at the end included.
    std::uint64_t next = 0;
    for (const auto& [begin, count] : ranges) {
      if (begin < next) {
        faults.push_back({offsetof(f::FileHeader, global_depth),
                          "two tables claim directory slot " + std::to_string(begin)});
      } else if (begin > next) {
        faults.push_back({offsetof(f::FileHeader, global_depth),
                          "no table covers directory slot " + std::to_string(next)});
      }
      next = std::max(next, begin + count);
    }
    if (next != (std::uint64_t{1} << depth)) {
      faults.push_back({offsetof(f::FileHeader, global_depth),
                        "no table covers directory slot " + std::to_string(next)});
    }
  }
  if (entries != header_.entries) {
    faults.push_back(
        {offsetof(f::FileHeader, entries), "header says " + std::to_string(header_.entries) +
                                               " entries, tables hold " + std::to_string(entries)});
  }
  return faults;
}

IndexStats IndexFile::stats(std::vector<std::size_t>* fill_histogram) const {
  IndexStats s;
  const index_internal::GroupLayout layout = this->layout();
  s.global_depth = header_.global_depth;
  // As the map reports it: no tables, no histogram.
  if (header_.tables > 0) s.local_depth_histogram.assign(header_.global_depth + 1, 0);
  s.memory_bytes = size_;
  if (fill_histogram != nullptr) fill_histogram->assign(10, 0);
  double miss_groups = 0;
  for (const IndexFileTable& t : tables()) {
    ++s.tables;
    s.capacity += t.capacity();
    if (t.local_depth < s.local_depth_histogram.size()) s.local_depth_histogram[t.local_depth]++;
    std::uint32_t full = t.size;
    if (t.intact) {
      const std::uint8_t* meta = at(t.offset + sizeof(f::TableHeader));
      full = 0;
      for (std::uint32_t i = 0; i < t.capacity(); ++i) {
        const std::uint8_t top = layout.top_of(meta, i);
        full += top > index_internal::kTombstone;
        s.tombstones += top == index_internal::kTombstone;
      }
      // As ExtendibleHashMap::stats: a miss lands in this table's chain with probability
      // 2^-local_depth and scans each of its tables (an overflow table has its head's depth).
      miss_groups += std::ldexp(index_internal::mean_miss_groups(meta, t.groups, layout),
                                -static_cast<int>(t.local_depth));
    }
    s.size += full;
    if (t.overflow) {
      ++s.overflow_tables;
      s.overflow_entries += full;
    }
    if (fill_histogram != nullptr) {
      const std::size_t bucket = std::min<std::size_t>(9, full * 10 / t.capacity());
      (*fill_histogram)[bucket]++;
    }
  }
  s.load_factor = s.capacity ? static_cast<double>(s.size) / static_cast<double>(s.capacity) : 0.0;
  s.mean_miss_probe_groups = miss_groups;
  return s;
}

void IndexFile::for_each_entry(
    const std::function<bool(std::string_view key, std::string_view value)>& f) const {
  const index_internal::GroupLayout layout = this->layout();
  const std::uint64_t value_align = header_.alignments & 0xffff;
  const std::uint64_t value_offset =
      (header_.key_bytes + value_align - 1) / value_align * value_align;
  for (const IndexFileTable& t : tables()) {
    if (!t.intact) continue;
    const std::uint8_t* meta = at(t.offset + sizeof(f::TableHeader));
    const std::uint8_t* slots = meta + t.groups * kMetaBytes;
    for (std::uint32_t i = 0; i < t.capacity(); ++i) {
      if (layout.top_of(meta, i) <= index_internal::kTombstone) continue;
      const char* slot =
          reinterpret_cast<const char*>(slots) + std::uint64_t{i} * header_.slot_bytes;
      if (!f(std::string_view(slot, header_.key_bytes),
             std::string_view(slot + value_offset, header_.value_bytes))) {
        return;
      }
    }
  }
}

}  // namespace sisu

namespace sisu::checkpoint_file {
namespace {
std::string where(const std::string& path, std::uint64_t offset) {
  return path + " at offset " + std::to_string(offset) + ": ";
}
}  // namespace

Status read_image(const FileReader& r, const std::string& path, std::string* image,
                  std::uint64_t* sequence) {
  namespace f = index_file;
  image->clear();
  const std::uint64_t size = r.size();
  f::FileHeader h;
  if (size < sizeof(h)) return Status::corruption(path + ": too short for a checkpoint file");
  if (Status s = r.read_at(0, &h, sizeof(h)); !s.ok()) return s;
  if (h.crc != crc32c::value(&h, offsetof(f::FileHeader, crc))) {
    return Status::corruption(where(path, 0) + "checkpoint header checksum mismatch");
  }
  if (h.format_version < f::kOldestFormatVersion || h.format_version > f::kFormatVersion ||
      h.header_bytes != sizeof(h)) {
    return Status::corruption(path + ": unknown checkpoint format version " +
                              std::to_string(h.format_version));
  }
  std::vector<std::uint64_t> page_offsets;  // intact page frames, in file order
  std::vector<std::uint64_t> pages;         // the last intact commit's page list
  CommitBody commit{};
  bool committed = false;
  std::vector<char> body;
  // A frame's header is sane if its magic and checksum hold and its body fits.
  auto sane = [&](const FrameHeader& fh, std::uint64_t at) {
    return fh.magic == kFrameMagic &&
           fh.crc == crc32c::value(&fh, offsetof(FrameHeader, crc)) &&
           fh.body_bytes <= size - at - sizeof(fh) &&
           ((fh.kind == kPageFrame && fh.body_bytes >= sizeof(f::TableHeader) &&
             fh.body_bytes <= f::kMaxTableBytes + sizeof(f::TableHeader)) ||
            (fh.kind == kCommitFrame && fh.body_bytes >= sizeof(CommitBody) &&
             (fh.body_bytes - sizeof(CommitBody)) % 8 == 0));
  };
  std::uint64_t at = sizeof(h);
  bool damaged = false;
  while (size - at >= sizeof(FrameHeader)) {
    FrameHeader fh;
    if (Status s = r.read_at(at, &fh, sizeof(fh)); !s.ok()) return s;
    if (!sane(fh, at)) {
      damaged = true;
      break;
    }
    body.resize(fh.body_bytes);
    if (Status s = r.read_at(at + sizeof(fh), body.data(), body.size()); !s.ok()) return s;
    if (fh.body_crc != crc32c::value(body.data(), body.size())) {
      damaged = true;
      break;
    }
    if (fh.kind == kPageFrame) {
      page_offsets.push_back(at);
    } else {
      CommitBody cb;
      std::memcpy(&cb, body.data(), sizeof(cb));
      std::vector<std::uint64_t> list((fh.body_bytes - sizeof(cb)) / 8);
      if (!list.empty()) std::memcpy(list.data(), body.data() + sizeof(cb), list.size() * 8);
      // Every page it names must be an intact page frame before it, each named once (so the
      // assembled image is never larger than the file).
      std::vector<std::uint64_t> sorted = list;
      std::sort(sorted.begin(), sorted.end());
      const bool unique = std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end();
      const bool known = std::all_of(sorted.begin(), sorted.end(), [&](std::uint64_t o) {
        return std::binary_search(page_offsets.begin(), page_offsets.end(), o);
      });
      if (cb.tables != list.size() || !unique || !known) {
        return Status::corruption(where(path, at) +
                                  "a commit names pages that are not in the file");
      }
      commit = cb;
      pages = std::move(list);
      committed = true;
    }
    at += sizeof(fh) + fh.body_bytes;
  }
  // A bad frame is a torn tail only if no intact commit follows it. A checkpoint syncs its
  // pages before it appends its commit, and the previous commit before its pages, so a crash
  // tears only frames after the last durable commit: an intact commit after a bad frame
  // means the file was damaged, not torn. The search never looks inside the body of a frame
  // whose header is intact (magic and checksum hold): a page's body is user data, and a
  // value may hold the bytes of a commit frame. It steps over such bodies, and goes byte by
  // byte only where no intact header says where the next frame starts. An intact header
  // whose body runs past the end of the file is a torn tail; one with impossible fields was
  // not torn, it was written so.
  if (damaged) {
    std::string tail(size - at, '\0');
    if (Status s = r.read_at(at, tail.data(), tail.size()); !s.ok()) return s;
    for (std::size_t i = 0; i + sizeof(FrameHeader) <= tail.size();) {
      FrameHeader fh;
      std::memcpy(&fh, tail.data() + i, sizeof(fh));
      if (fh.magic != kFrameMagic || fh.crc != crc32c::value(&fh, offsetof(FrameHeader, crc))) {
        ++i;
        continue;
      }
      const std::uint64_t left = tail.size() - i - sizeof(fh);
      if (fh.body_bytes > left) break;  // the frame a crash cut short
      if (!sane(fh, at + i)) {
        return Status::corruption(where(path, at + i) + "impossible frame header");
      }
      if (i > 0 && fh.kind == kCommitFrame &&
          fh.body_crc == crc32c::value(tail.data() + i + sizeof(fh), fh.body_bytes)) {
        return Status::corruption(where(path, at) +
                                  "damaged frame before a later checkpoint's commit");
      }
      i += sizeof(fh) + static_cast<std::size_t>(fh.body_bytes);
    }
  }
  if (!committed) {
    return Status::corruption(path + ": no complete checkpoint in the file");
  }
  // The image save() would have written: header, the pages' table records, footer.
  f::FileHeader ih = h;
  std::memcpy(ih.magic, f::kMagic, sizeof(ih.magic));
  ih.global_depth = commit.global_depth;
  ih.entries = commit.entries;
  ih.tables = commit.tables;
  ih.crc = crc32c::value(&ih, offsetof(f::FileHeader, crc));
  image->append(reinterpret_cast<const char*>(&ih), sizeof(ih));
  for (std::uint64_t at : pages) {
    FrameHeader fh;
    if (Status s = r.read_at(at, &fh, sizeof(fh)); !s.ok()) return s;
    const std::size_t from = image->size();
    image->resize(from + fh.body_bytes);
    if (Status s = r.read_at(at + sizeof(fh), image->data() + from, fh.body_bytes); !s.ok()) {
      return s;
    }
  }
  f::Footer ft{};
  std::memcpy(ft.magic, f::kFooterMagic, sizeof(ft.magic));
  ft.entries = commit.entries;
  ft.body_bytes = image->size();
  ft.tables = commit.tables;
  ft.crc = crc32c::value(&ft, offsetof(f::Footer, crc));
  image->append(reinterpret_cast<const char*>(&ft), sizeof(ft));
  *sequence = commit.sequence;
  return Status::OK();
}

}  // namespace sisu::checkpoint_file
