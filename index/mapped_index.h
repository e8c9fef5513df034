// MappedIndex: a saved ExtendibleHashMap queried in place, from bytes the caller has mapped
// (a whole index file, or the index section of an engine table file), without building an
// in-memory copy of its entries.
//
//   open():  checks the header (magic, checksum, version, and that it was written for this
//            Key, Value and hash), the footer, then walks the table headers only: each must
//            lie inside the image, hold a valid place in the directory, and the places must
//            tile the directory exactly once. The directory (2^global_depth table numbers) is
//            rebuilt from those places: it costs one 32-byte header read per table, never a
//            read of the tables' entries. (Format version 1 does not store the directory;
//            the places in the headers are the directory, and they are checksummed.)
//   find():  hashes the key with the file's seed, goes to its table through the directory and
//            probes it as the map does (index/group.h), in the layout of the file's format
//            version (1 or 2). The first time a table is touched its
//            checksum and metadata counts are checked; a damaged table answers
//            is_corruption(), never a wrong value, and is reported again on every later touch.
//
// Every offset is bounds-checked at open() before anything is read through it, so damaged,
// truncated or hostile bytes give is_corruption(), never an out-of-bounds read or a huge
// allocation (the directory's size is bounded by the image's).
//
// Thread-safety: after open(), find() and for_each() may run on any number of threads. The
// bytes must stay mapped and unchanged while the MappedIndex is used.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "index/extendible_hash_map.h"
#include "index/group.h"
#include "index/index_file.h"
#include "index/index_file_format.h"
#include "util/crc32c.h"
#include "util/status.h"

namespace sisu {

template <class Key, class Value, class Hash = sisu::Hash<Key>, class KeyEqual = std::equal_to<>>
class MappedIndex {
  static_assert(std::is_trivially_copyable_v<Key> && std::is_trivially_copyable_v<Value>,
                "an index read in place holds trivially copyable keys and values");

 public:
  MappedIndex() = default;
  MappedIndex(MappedIndex&&) noexcept = default;
  MappedIndex& operator=(MappedIndex&&) noexcept = default;

  // `name` names the bytes in messages (a path, or "PATH index section").
  static Status open(const void* data, std::size_t bytes, std::string name, MappedIndex* out);

  // OK with *value set, not_found, or corruption when the key's table is damaged.
  Status find(const Key& key, Value* value) const {
    if (tables_.empty()) return Status::not_found("");
    const std::uint64_t h = hash_of(key);
    const std::uint32_t first = dir_[(h >> 1) >> (63 - global_depth_)];
    const std::uint8_t top = index_internal::tophash(h);
    for (std::uint32_t t = first; t != kNone; t = tables_[t].overflow) {
      const TableRef& r = tables_[t];
      if (Status s = check(t); !s.ok()) return s;
      const std::uint8_t trie = index_internal::triehash(h, r.trie_base);
      const std::uint8_t* payload = base_ + r.payload;
      std::uint32_t g = index_internal::home_group(top, r.groups);
      for (std::uint32_t probed = 0; probed < r.groups; ++probed) {
        const std::uint8_t* meta = payload + std::size_t{g} * index_internal::kGroupMetaBytes;
        for (auto m = index_internal::Group::match(meta, top, trie) & layout_.lanes; m != 0;
             m &= m - 1) {
          const std::uint32_t i = g * layout_.slots + index_internal::lowest_slot(m);
          const std::uint8_t* slot = slot_at(r, i);
          Key k;
          std::memcpy(&k, slot, sizeof(Key));
          if (eq_(k, key)) {
            std::memcpy(value, slot + kValueOffset, sizeof(Value));
            return Status::OK();
          }
        }
        if (layout_.stops(meta, trie)) break;
        if (++g == r.groups) g = 0;
      }
    }
    return Status::not_found("");
  }

  // Calls f(key, value) for every entry, table by table; stops at the first damaged table
  // and returns its corruption.
  template <class F>
  Status for_each(F&& f) const {
    for (std::uint32_t t = 0; t < tables_.size(); ++t) {
      if (Status s = check(t); !s.ok()) return s;
      const TableRef& r = tables_[t];
      const std::uint8_t* meta = base_ + r.payload;
      for (std::uint32_t i = 0; i < r.groups * layout_.slots; ++i) {
        if (layout_.top_of(meta, i) < 2) continue;
        Key k;
        Value v;
        std::memcpy(&k, slot_at(r, i), sizeof(Key));
        std::memcpy(&v, slot_at(r, i) + kValueOffset, sizeof(Value));
        f(k, v);
      }
    }
    return Status::OK();
  }

  std::uint64_t size() const { return entries_; }
  unsigned global_depth() const { return global_depth_; }
  std::size_t tables() const { return tables_.size(); }
  // The directory and table list this view allocated (the entries stay in the mapping).
  std::size_t memory_bytes() const {
    return dir_.capacity() * sizeof(std::uint32_t) + tables_.capacity() * sizeof(TableRef) +
           tables_.size();
  }

 private:
  using value_type = std::pair<const Key, Value>;
  static constexpr std::uint32_t kNone = ~std::uint32_t{0};
  static constexpr std::size_t kSlotBytes = sizeof(value_type);
  // std::pair lays out first, then second at its alignment.
  static constexpr std::size_t kValueOffset =
      (sizeof(Key) + alignof(Value) - 1) / alignof(Value) * alignof(Value);
  static_assert(kValueOffset + sizeof(Value) <= kSlotBytes);

  struct TableRef {
    std::uint64_t header;   // offset of its TableHeader
    std::uint64_t payload;  // offset of its metadata
    std::uint32_t groups;
    std::uint32_t overflow;  // the next table of its chain, or kNone
    std::uint8_t trie_base;
  };
  enum : std::uint8_t { kUnchecked = 0, kGood = 1, kBad = 2 };

  // As ExtendibleHashMap::hash_of: a hasher that does not declare itself avalanching is mixed.
  std::uint64_t hash_of(const Key& key) const {
    const auto h = static_cast<std::uint64_t>(hash_(key));
    if constexpr (requires { typename Hash::is_avalanching; }) {
      return h;
    } else {
      return hash_internal::mix64(h, 0);
    }
  }

  const std::uint8_t* slot_at(const TableRef& r, std::uint32_t i) const {
    return base_ + r.payload + std::size_t{r.groups} * index_internal::kGroupMetaBytes +
           std::size_t{i} * kSlotBytes;
  }

  // The table's checksum and counts, checked on first touch. Two threads may both check a
  // table at once; they reach the same answer, so the race is benign (and atomic).
  Status check(std::uint32_t t) const {
    std::uint8_t state = checked_[t].load(std::memory_order_acquire);
    if (state == kUnchecked) {
      state = verify_table(t) ? kGood : kBad;
      checked_[t].store(state, std::memory_order_release);
    }
    if (state == kGood) return Status::OK();
    return Status::corruption(name_ + " at offset " + std::to_string(tables_[t].header) +
                              ": table " + std::to_string(t) + ": checksum mismatch");
  }

  bool verify_table(std::uint32_t t) const {
    const TableRef& r = tables_[t];
    index_file::TableHeader th;
    std::memcpy(&th, base_ + r.header, sizeof(th));
    const std::uint32_t crc = th.crc;
    th.crc = 0;
    const std::size_t payload = std::size_t{r.groups} * layout_.group_bytes(kSlotBytes);
    if (crc != crc32c::extend(crc32c::value(&th, sizeof(th)), base_ + r.payload, payload)) {
      return false;
    }
    // At most 15/16 of the slots used, as the writer makes them. In format version 1 a probe
    // stops at a group with an empty slot; a table without one would be probed whole, which
    // is correct but not what the writer makes. In version 2 a probe stops where a group's
    // overflow filter lacks the key's bit: each entry's bit must be set on the way to it.
    const std::uint8_t* meta = base_ + r.payload;
    std::uint32_t used = 0, full = 0;
    for (std::uint32_t i = 0; i < r.groups * layout_.slots; ++i) {
      const std::uint8_t top = layout_.top_of(meta, i);
      used += top != index_internal::kEmpty;
      full += top >= 2;
    }
    if (full != th.size || used > layout_.max_used(r.groups)) return false;
    return !layout_.filter || index_internal::filter_fault(meta, r.groups) == nullptr;
  }

  std::string name_;
  const std::uint8_t* base_ = nullptr;
  std::uint64_t entries_ = 0;
  unsigned global_depth_ = 0;
  Hash hash_{};
  [[no_unique_address]] KeyEqual eq_{};
  std::vector<std::uint32_t> dir_;
  std::vector<TableRef> tables_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> checked_;
  index_internal::GroupLayout layout_ = index_internal::GroupLayout::for_version(2);
};

template <class K, class V, class H, class E>
Status MappedIndex<K, V, H, E>::open(const void* data, std::size_t bytes, std::string name,
                                     MappedIndex* out) {
  namespace f = index_file;
  const auto* base = static_cast<const std::uint8_t*>(data);
  if (bytes < sizeof(f::FileHeader) + sizeof(f::Footer)) {
    return Status::corruption(name + ": too short for a sisu index (" + std::to_string(bytes) +
                              " bytes)");
  }
  f::FileHeader h;
  std::memcpy(&h, base, sizeof(h));
  if (Status s = f::check_header(h, name); !s.ok()) return s;
  if (h.key_bytes != sizeof(K) || h.value_bytes != sizeof(V) || h.slot_bytes != kSlotBytes ||
      h.alignments != static_cast<std::uint32_t>(alignof(K) << 16 | alignof(V))) {
    return Status::corruption(name + ": written for other key and value types");
  }
  MappedIndex m;
  if constexpr (index_internal::SeededHasher<H>) {
    if (h.hash_version != hash_internal::SeededHash::kVersion) {
      return Status::corruption(name + ": written with hash version " +
                                std::to_string(h.hash_version));
    }
    m.hash_ = H(h.hash_seed);
  } else if (h.hash_version != 0) {
    return Status::corruption(name + ": written with sisu::Hash, read with another hasher");
  }
  const std::uint64_t body_end = bytes - sizeof(f::Footer);
  f::Footer ft;
  std::memcpy(&ft, base + body_end, sizeof(ft));
  if (Status s = f::check_footer(ft, h, body_end, name); !s.ok()) return s;
  m.layout_ = index_internal::GroupLayout::for_version(h.format_version);
  const std::uint64_t group_bytes = m.layout_.group_bytes(kSlotBytes);
  const std::uint64_t min_record = sizeof(f::TableHeader) + group_bytes;
  // The directory costs at most 16 bytes of memory per byte of image (plus a small one).
  if (h.global_depth > f::kMaxDepth || h.tables > (body_end - sizeof(f::FileHeader)) / min_record ||
      (h.global_depth > 0 && h.tables < h.global_depth + 1) ||
      (std::uint64_t{1} << h.global_depth) * sizeof(std::uint32_t) > 16 * bytes + 4096 ||
      (h.tables == 0 && h.entries != 0)) {
    return Status::corruption(name + ": header counts do not fit " + std::to_string(bytes) +
                              " bytes");
  }
  m.name_ = std::move(name);
  m.base_ = base;
  m.entries_ = h.entries;
  m.global_depth_ = h.global_depth;
  if (h.tables == 0) {
    // An empty index is a header and a footer: nothing between them goes unchecked.
    if (body_end != sizeof(f::FileHeader)) {
      return Status::corruption(m.name_ + " at offset " + std::to_string(sizeof(f::FileHeader)) +
                                ": unexpected bytes before the footer");
    }
    *out = std::move(m);
    return Status::OK();
  }
  m.dir_.assign(std::size_t{1} << h.global_depth, kNone);
  m.tables_.reserve(h.tables);
  std::uint64_t offset = sizeof(f::FileHeader);
  std::uint32_t tail = kNone;  // the last table of the current chain
  for (std::uint32_t n = 0; n < h.tables; ++n) {
    const std::string where =
        m.name_ + " at offset " + std::to_string(offset) + ": table " + std::to_string(n) + ": ";
    if (offset + sizeof(f::TableHeader) > body_end) {
      return Status::corruption(where + "runs past the footer");
    }
    f::TableHeader th;
    std::memcpy(&th, base + offset, sizeof(th));
    if (th.magic != f::kTableMagic || th.reserved != 0 || th.flags > f::kTableIsOverflow ||
        th.groups == 0 || th.groups > f::kMaxGroups) {
      return Status::corruption(where + "bad table header");
    }
    const std::uint64_t payload = th.groups * group_bytes;
    if (payload > body_end - offset - sizeof(th)) {
      return Status::corruption(where + "runs past the footer");
    }
    if (th.local_depth > h.global_depth || th.trie_base > th.local_depth ||
        (th.local_depth < 64 && th.prefix >> th.local_depth != 0)) {
      return Status::corruption(where + "bad place in the directory");
    }
    const auto t = static_cast<std::uint32_t>(m.tables_.size());
    m.tables_.push_back(TableRef{offset, offset + sizeof(th), th.groups, kNone, th.trie_base});
    if ((th.flags & f::kTableIsOverflow) != 0) {
      // It continues the chain of the record before, which must have the same place.
      f::TableHeader p{};
      if (tail != kNone) std::memcpy(&p, base + m.tables_[tail].header, sizeof(p));
      if (tail == kNone || p.prefix != th.prefix || p.local_depth != th.local_depth ||
          p.trie_base != th.trie_base) {
        return Status::corruption(where + "overflow table without its table");
      }
      m.tables_[tail].overflow = t;
    } else {
      const std::size_t begin = static_cast<std::size_t>(th.prefix)
                                << (h.global_depth - th.local_depth);
      const std::size_t count = std::size_t{1} << (h.global_depth - th.local_depth);
      for (std::size_t i = begin; i < begin + count; ++i) {
        if (m.dir_[i] != kNone) {
          return Status::corruption(where + "overlaps another table in the directory");
        }
        m.dir_[i] = t;
      }
    }
    tail = t;
    offset += sizeof(th) + payload;
  }
  if (offset != body_end) {
    return Status::corruption(m.name_ + " at offset " + std::to_string(offset) +
                              ": unexpected bytes before the footer");
  }
  for (std::size_t i = 0; i < m.dir_.size(); ++i) {
    if (m.dir_[i] == kNone) {
      return Status::corruption(m.name_ + ": directory slot " + std::to_string(i) +
                                " has no table");
    }
  }
  m.checked_ = std::make_unique<std::atomic<std::uint8_t>[]>(m.tables_.size());
  for (std::size_t i = 0; i < m.tables_.size(); ++i) m.checked_[i].store(kUnchecked);
  *out = std::move(m);
  return Status::OK();
}

}  // namespace sisu
