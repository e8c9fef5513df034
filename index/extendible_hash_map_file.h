// ExtendibleHashMap::save and ::load: the map as an index file (index/index_file_format.h,
// docs/index-format.md). Included by index/extendible_hash_map.h; not for direct use.
//
// save writes the tables' memory images, so a file is as large as the map's tables and
// writing it is a sequential copy. It goes through AtomicFileWriter: after a crash at any
// point, `path` holds the previous complete file or the new one.
//
// load trusts nothing it reads. Before allocating it checks sizes against the file's length;
// each table record must pass its CRC32C, fit the directory exactly once, hold well-formed
// metadata, and every key in it must hash to where it sits (its prefix, tophash and triehash)
// and be the one a lookup finds. A file that passes all of that answers every lookup as the
// saved map did. Anything else is is_corruption() (or is_io_error()), with the offset.
#pragma once

#include <array>
#include <bit>
#include <string>
#include <type_traits>
#include <vector>

#include "index/checkpoint_format.h"
#include "index/index_file.h"
#include "index/index_file_format.h"
#include "util/crc32c.h"
#include "util/file.h"

namespace sisu {
namespace index_internal {

template <class Hash>
concept SeededHasher = requires(const Hash& h, std::uint64_t seed) {
  { h.seed() } -> std::convertible_to<std::uint64_t>;
  Hash(seed);
};

static_assert(kMaxDepth == index_file::kMaxDepth, "the file format bounds the map's depth");

inline std::string at_offset(const std::string& path, std::uint64_t offset) {
  return path + " at offset " + std::to_string(offset) + ": ";
}

// Reads the header of table record n at `offset` and checks what needs no map: the record
// starts before the footer; magic, flags and reserved bits; 1..255 groups of `group_bytes`
// whose payload ends inside the body; a valid place in a directory of h's depth. *where gets
// the prefix of the record's messages.
template <class Reader>
Status read_table_header(Reader& r, const index_file::FileHeader& h, std::uint32_t n,
                         std::uint64_t offset, std::uint64_t body_limit, std::uint64_t group_bytes,
                         const std::string& path, index_file::TableHeader* th, std::string* where) {
  namespace f = index_file;
  if (offset + sizeof(*th) > body_limit) {
    return Status::corruption(at_offset(path, offset) + "table " + std::to_string(n) +
                              " runs past the footer");
  }
  if (Status s = r.read_at(offset, th, sizeof(*th)); !s.ok()) return s;
  *where = at_offset(path, offset) + "table " + std::to_string(n) + ": ";
  if (th->magic != f::kTableMagic || th->reserved != 0 || th->flags > f::kTableIsOverflow) {
    return Status::corruption(*where + "bad table header");
  }
  if (th->groups == 0 || th->groups > f::kMaxGroups) {
    return Status::corruption(*where + "bad size (" + std::to_string(th->groups) + " groups)");
  }
  if (th->groups * group_bytes > body_limit - offset - sizeof(*th)) {
    return Status::corruption(*where + "runs past the footer");
  }
  if (th->local_depth > h.global_depth || th->trie_base > th->local_depth ||
      (th->local_depth < 64 && th->prefix >> th->local_depth != 0)) {
    return Status::corruption(*where + "bad place in the directory");
  }
  return Status::OK();
}

}  // namespace index_internal

// The header fields that describe this map's layout and hash; the caller sets the counts
// and the checksum.
template <class K, class V, class H, class E>
index_file::FileHeader ExtendibleHashMap<K, V, H, E>::file_header(const char (&magic)[8]) const {
  namespace f = index_file;
  f::FileHeader h{};
  std::memcpy(h.magic, magic, sizeof(h.magic));
  h.format_version = f::kFormatVersion;
  h.header_bytes = sizeof(f::FileHeader);
  h.key_bytes = sizeof(K);
  h.value_bytes = sizeof(V);
  h.slot_bytes = sizeof(value_type);
  h.alignments = static_cast<std::uint32_t>(alignof(K) << 16 | alignof(V));
  if constexpr (index_internal::SeededHasher<H>) {
    h.hash_seed = hash_.seed();
    h.hash_version = hash_internal::SeededHash::kVersion;
  }
  return h;
}

// A table's record: its header, then its metadata and slots as in memory, with the slots that
// hold no entry zeroed (they may hold the bytes of erased entries).
template <class K, class V, class H, class E>
void ExtendibleHashMap<K, V, H, E>::table_record(Table* t, bool overflow,
                                                 index_file::TableHeader* th,
                                                 std::vector<char>* image) const {
  namespace f = index_file;
  const std::size_t payload = std::size_t{t->groups} * kGroupBytes;
  image->assign(reinterpret_cast<const char*>(t->meta(0)),
                reinterpret_cast<const char*>(t->meta(0)) + payload);
  char* slots = image->data() + std::size_t{t->groups} * index_internal::kGroupMetaBytes;
  for (std::uint32_t i = 0; i < t->capacity(); ++i) {
    char* out = slots + std::size_t{i} * kSlotBytes;
    std::memset(out, 0, kSlotBytes);
    if (!t->full(i)) continue;
    // Key and value only: the pair's padding may hold bytes of an erased entry.
    const value_type* v = t->slot(i);
    const auto* base = reinterpret_cast<const char*>(v);
    std::memcpy(out + (reinterpret_cast<const char*>(&v->first) - base), &v->first, sizeof(K));
    std::memcpy(out + (reinterpret_cast<const char*>(&v->second) - base), &v->second, sizeof(V));
  }
  *th = f::TableHeader{};
  th->magic = f::kTableMagic;
  th->groups = t->groups;
  th->size = t->size;
  th->flags = overflow ? f::kTableIsOverflow : 0;
  th->prefix = t->prefix;
  th->local_depth = t->local_depth;
  th->trie_base = t->trie_base;
  th->crc = crc32c::extend(crc32c::value(th, sizeof(*th)), image->data(), image->size());
}

// Calls f(table, header, image) with every table's record in save()'s order (each main table,
// then its overflow chain), until f returns an error.
template <class K, class V, class H, class E>
template <class F>
Status ExtendibleHashMap<K, V, H, E>::for_each_record(F&& f) const {
  if (dir_ == nullptr) return Status::OK();
  std::vector<char> image;
  Status status;
  for_each_main_table([&](Table* head) {
    for (Table* t = head; t != nullptr && status.ok(); t = t->overflow) {
      index_file::TableHeader th;
      table_record(t, t != head, &th, &image);
      status = f(t, th, image);
    }
  });
  return status;
}

template <class K, class V, class H, class E>
Status ExtendibleHashMap<K, V, H, E>::save(const std::string& path) const {
  AtomicFileWriter w(path);
  if (Status s = w.open(); !s.ok()) return s;
  if (Status s = write_to(w); !s.ok()) return s;
  return w.commit();
}

template <class K, class V, class H, class E>
template <class Sink>
Status ExtendibleHashMap<K, V, H, E>::write_to(Sink& sink) const {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>,
                "save() needs trivially copyable Key and Value");
  namespace f = index_file;
  // Offsets in the image are relative to its start, wherever the sink puts it.
  struct Counting {
    Sink& sink;
    std::uint64_t written = 0;
    Status append(const void* p, std::size_t n) {
      written += n;
      return sink.append(p, n);
    }
    std::uint64_t bytes_written() const { return written; }
  } w{sink};

  std::uint32_t tables = 0;
  if (dir_ != nullptr) for_each_table([&](Table*) { ++tables; });
  f::FileHeader h = file_header(f::kMagic);
  h.global_depth = global_depth_;
  h.entries = size_;
  h.tables = tables;
  h.crc = crc32c::value(&h, offsetof(f::FileHeader, crc));
  if (Status s = w.append(&h, sizeof(h)); !s.ok()) return s;

  Status status = for_each_record(
      [&](Table*, const f::TableHeader& th, const std::vector<char>& image) {
        Status st = w.append(&th, sizeof(th));
        if (st.ok()) st = w.append(image.data(), image.size());
        return st;
      });
  if (!status.ok()) return status;

  f::Footer ft{};
  std::memcpy(ft.magic, f::kFooterMagic, sizeof(ft.magic));
  ft.entries = size_;
  ft.body_bytes = w.bytes_written();
  ft.tables = tables;
  ft.crc = crc32c::value(&ft, offsetof(f::Footer, crc));
  return w.append(&ft, sizeof(ft));
}

template <class K, class V, class H, class E>
Status ExtendibleHashMap<K, V, H, E>::load(const std::string& path, ExtendibleHashMap* out) {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>,
                "load() needs trivially copyable Key and Value");
  FileReader r;
  if (Status s = r.open(path); !s.ok()) return s;
  char magic[8] = {};
  if (r.size() >= sizeof(magic)) {
    if (Status s = r.read_at(0, magic, sizeof(magic)); !s.ok()) return s;
  }
  if (std::memcmp(magic, checkpoint_file::kMagic, sizeof(magic)) == 0) {
    return load_checkpoint(r, path, out);
  }
  return load_image(r, path, out);
}

// Validates and loads a saved image, read from a file or (for a checkpoint) from memory.
template <class K, class V, class H, class E>
template <class Reader>
Status ExtendibleHashMap<K, V, H, E>::load_image(Reader& r, const std::string& path,
                                                 ExtendibleHashMap* out) {
  namespace f = index_file;
  using index_internal::at_offset;
  const std::uint64_t file_bytes = r.size();
  if (file_bytes < sizeof(f::FileHeader) + sizeof(f::Footer)) {
    return Status::corruption(path + ": too short for a sisu index file (" +
                              std::to_string(file_bytes) + " bytes)");
  }

  // --- header -------------------------------------------------------------------------------
  f::FileHeader h;
  if (Status s = r.read_at(0, &h, sizeof(h)); !s.ok()) return s;
  if (Status s = f::check_header(h, path); !s.ok()) return s;
  if (h.key_bytes != sizeof(K) || h.value_bytes != sizeof(V) ||
      h.slot_bytes != sizeof(value_type) ||
      h.alignments != static_cast<std::uint32_t>(alignof(K) << 16 | alignof(V))) {
    return Status::corruption(path + ": written for " + std::to_string(h.key_bytes) +
                              "-byte keys and " + std::to_string(h.value_bytes) +
                              "-byte values, not this map's " + std::to_string(sizeof(K)) +
                              " and " + std::to_string(sizeof(V)));
  }
  H hasher;
  if constexpr (index_internal::SeededHasher<H>) {
    if (h.hash_version != hash_internal::SeededHash::kVersion) {
      return Status::corruption(path + ": written with hash version " +
                                std::to_string(h.hash_version) + ", this build has " +
                                std::to_string(hash_internal::SeededHash::kVersion));
    }
    hasher = H(h.hash_seed);
  } else if (h.hash_version != 0) {
    return Status::corruption(path + ": written with sisu::Hash, loaded with another hasher");
  }
  if (h.global_depth > index_internal::kMaxDepth) {
    return Status::corruption(path + ": global depth " + std::to_string(h.global_depth) +
                              " exceeds " + std::to_string(index_internal::kMaxDepth));
  }
  // Every table record takes at least a header and one group: bound the counts by the file
  // size before allocating anything for them.
  const std::uint64_t body_limit = file_bytes - sizeof(f::Footer);
  const std::uint64_t min_record = sizeof(f::TableHeader) + kGroupBytes;
  // Tiling 2^depth directory slots takes at least depth + 1 tables; and the directory may not
  // cost more than 16 bytes of memory per byte of file (a saved map's tables take far more
  // file than its directory takes memory), beyond the small directory every map may have.
  if (h.tables > (body_limit - sizeof(f::FileHeader)) / min_record ||
      (h.global_depth > 0 && h.tables < h.global_depth + 1) ||
      (std::uint64_t{1} << h.global_depth) * sizeof(DirEntry) >
          16 * file_bytes + index_internal::kSmallDirectory * sizeof(DirEntry) ||
      (h.tables == 0 && h.entries != 0)) {
    return Status::corruption(path + ": header counts (" + std::to_string(h.tables) +
                              " tables, depth " + std::to_string(h.global_depth) +
                              ") do not fit a file of " + std::to_string(file_bytes) + " bytes");
  }

  // --- footer -------------------------------------------------------------------------------
  f::Footer ft;
  if (Status s = r.read_at(body_limit, &ft, sizeof(ft)); !s.ok()) return s;
  if (Status s = f::check_footer(ft, h, body_limit, path); !s.ok()) return s;

  if (h.format_version == 1) return load_v1_entries(r, h, body_limit, path, hasher, out);

  // --- tables -------------------------------------------------------------------------------
  ExtendibleHashMap m(0, hasher);
  if (h.tables == 0) {
    // An empty map's file is a header and a footer: nothing between them goes unchecked.
    if (body_limit != sizeof(f::FileHeader)) {
      return Status::corruption(at_offset(path, sizeof(f::FileHeader)) +
                                "unexpected bytes before the footer");
    }
    *out = std::move(m);
    return Status::OK();
  }
  m.global_depth_ = h.global_depth;
  m.dir_ = h.global_depth == 0 ? &m.inline_dir_ : new DirEntry[std::size_t{1} << h.global_depth];
  m.memory_ += m.dir_bytes();
  std::fill_n(m.dir_, m.dir_size(), DirEntry{});

  std::uint64_t offset = sizeof(f::FileHeader);
  std::uint64_t entries = 0;
  Table* head = nullptr;
  Table* tail = nullptr;  // the last table of head's chain
  for (std::uint32_t n = 0; n < h.tables; ++n) {
    f::TableHeader th;
    std::string where;
    if (Status s = index_internal::read_table_header(r, h, n, offset, body_limit, kGroupBytes, path,
                                                     &th, &where);
        !s.ok()) {
      return s;
    }
    if (block_bytes(th.groups) > SlabAllocator::kMaxBlockBytes) {
      return Status::corruption(where + "bad size (" + std::to_string(th.groups) + " groups)");
    }
    const std::uint64_t payload = std::uint64_t{th.groups} * kGroupBytes;
    const bool overflow = (th.flags & f::kTableIsOverflow) != 0;
    Table* t = nullptr;
    if (overflow) {
      if (head == nullptr || head->prefix != th.prefix || head->local_depth != th.local_depth ||
          head->trie_base != th.trie_base) {
        return Status::corruption(where + "overflow table without its table");
      }
      t = m.new_table(th.groups, th.local_depth, th.prefix, th.trie_base);
      tail->overflow = t;  // reachable, so freed by m if anything below fails
      tail = t;
    } else {
      t = m.new_table(th.groups, th.local_depth, th.prefix, th.trie_base);
      const std::size_t begin = m.range_begin(t), count = m.range_size(t);
      bool taken = false;
      for (std::size_t i = begin; i < begin + count; ++i) taken |= m.dir_[i].table != nullptr;
      if (taken) {
        m.free_table(t);
        return Status::corruption(where + "overlaps another table in the directory");
      }
      m.publish(t);
      head = tail = t;
    }
    // Read the image straight into the table and check it before looking at it.
    if (Status s = r.read_at(offset + sizeof(th), t->meta(0), payload); !s.ok()) return s;
    const std::uint32_t crc = th.crc;
    th.crc = 0;
    if (crc != crc32c::extend(crc32c::value(&th, sizeof(th)), t->meta(0), payload)) {
      return Status::corruption(where + "checksum mismatch");
    }
    // Metadata: counts, free space, and every entry where its hash puts it.
    std::uint32_t full = 0, tombstones = 0;
    for (std::uint32_t i = 0; i < t->capacity(); ++i) {
      const std::uint8_t top = t->top_of(i);
      if (top == index_internal::kTombstone) {
        ++tombstones;
        continue;
      }
      if (top == index_internal::kEmpty) continue;
      ++full;
      const std::uint64_t hv = m.hash_of(t->slot(i)->first);
      const bool placed = index_internal::tophash(hv) == top &&
                          index_internal::triehash(hv, t->trie_base) == t->trie_of(i) &&
                          (t->local_depth == 0 || hv >> (64 - t->local_depth) == t->prefix);
      if (!placed) {
        return Status::corruption(where + "slot " + std::to_string(i) +
                                  " holds a key that does not hash to it (written with "
                                  "another hash function or seed?)");
      }
    }
    if (full != th.size || full + tombstones > max_load(t->groups)) {
      return Status::corruption(where + "metadata counts do not match");
    }
    if (const char* fault = index_internal::filter_fault(t->meta(0), t->groups)) {
      return Status::corruption(where + fault);
    }
    t->size = full;
    t->tombstones = tombstones;
    t->growth_left = static_cast<std::uint32_t>(max_load(t->groups) - full - tombstones);
    t->erased = tombstones > 0;
    entries += full;
    offset += sizeof(th) + payload;
    if (overflow) m.publish(head);  // has_overflow
  }
  if (offset != body_limit) {
    return Status::corruption(at_offset(path, offset) + "unexpected bytes before the footer");
  }
  for (std::size_t i = 0; i < m.dir_size(); ++i) {
    if (m.dir_[i].table == nullptr) {
      return Status::corruption(path + ": directory slot " + std::to_string(i) + " has no table");
    }
  }
  if (entries != h.entries) {
    return Status::corruption(path + ": header says " + std::to_string(h.entries) +
                              " entries, tables hold " + std::to_string(entries));
  }
  m.size_ = entries;
  // Overflow chains are rebuilt compactly (their entries were all checked above): a file
  // may hold many sparse overflow tables, and lookups scan whole chains.
  std::vector<Table*> chained;
  m.for_each_main_table([&](Table* t) {
    if (t->overflow != nullptr) chained.push_back(t);
  });
  for (Table* t : chained) m.rebuild_table(t, t->groups);
  // Every entry must be the one a lookup of its key finds: this rejects duplicate keys and
  // entries cut off from their home group.
  std::string bad;
  m.for_each_table([&](Table* t) {
    for (std::uint32_t i = 0; i < t->capacity() && bad.empty(); ++i) {
      if (!t->full(i)) continue;
      const K& key = t->slot(i)->first;
      const Slot s = m.find_slot(m.hash_of(key), key);
      if (s.table != t || s.index != i) {
        bad = "an entry of a table at depth " + std::to_string(t->local_depth) +
              " is unreachable or duplicated";
      }
    }
  });
  if (!bad.empty()) return Status::corruption(path + ": " + bad);
  m.recount_tables_at_global_depth();
  *out = std::move(m);
  return Status::OK();
}

// A format version 1 file (16 slots per group, no overflow filters: index/group.h) cannot
// become tables byte for byte. Each table record is checked (header, place, overflow chain,
// checksum, the 15/16 bound) and each entry against its hash (table, tophash, triehash) and
// its reachability by a version 1 probe, then inserted, so the loaded map has this build's
// layout and its next save or checkpoint writes version 2. Unlike version 2 loading it does
// not check that the tables' places tile the directory: no directory is built from them,
// and a missing table shows as a count that does not add up.
template <class K, class V, class H, class E>
template <class Reader>
Status ExtendibleHashMap<K, V, H, E>::load_v1_entries(Reader& r, const index_file::FileHeader& h,
                                                      std::uint64_t body_limit,
                                                      const std::string& path, const H& hasher,
                                                      ExtendibleHashMap* out) {
  namespace f = index_file;
  using index_internal::at_offset;
  const index_internal::GroupLayout layout = index_internal::GroupLayout::for_version(1);
  const std::uint64_t group_bytes = layout.group_bytes(kSlotBytes);
  // std::pair lays out first, then second at its alignment.
  constexpr std::size_t kValueOffset = (sizeof(K) + alignof(V) - 1) / alignof(V) * alignof(V);
  // The header's count sizes the map only as far as the file's bytes can back it.
  const std::uint64_t hint = std::min<std::uint64_t>(h.entries, body_limit / kSlotBytes);
  ExtendibleHashMap m(static_cast<std::size_t>(hint), hasher);
  std::vector<std::uint8_t> payload;
  std::uint64_t offset = sizeof(f::FileHeader);
  std::uint64_t entries = 0;
  f::TableHeader head{};  // the last main table's record
  for (std::uint32_t n = 0; n < h.tables; ++n) {
    std::uint32_t full = 0;
    f::TableHeader th;
    std::string where;
    if (Status s = index_internal::read_table_header(r, h, n, offset, body_limit, group_bytes, path,
                                                     &th, &where);
        !s.ok()) {
      return s;
    }
    const std::uint64_t bytes = th.groups * group_bytes;
    payload.resize(bytes);
    if (Status s = r.read_at(offset + sizeof(th), payload.data(), bytes); !s.ok()) return s;
    const std::uint32_t crc = th.crc;
    th.crc = 0;
    if (crc != crc32c::extend(crc32c::value(&th, sizeof(th)), payload.data(), bytes)) {
      return Status::corruption(where + "checksum mismatch");
    }
    // An overflow record continues the chain of the record before, at the same place.
    if ((th.flags & f::kTableIsOverflow) != 0) {
      if (n == 0 || head.prefix != th.prefix || head.local_depth != th.local_depth ||
          head.trie_base != th.trie_base) {
        return Status::corruption(where + "overflow table without its table");
      }
    } else {
      head = th;
    }
    const std::uint8_t* meta = payload.data();
    const std::uint8_t* slots = meta + th.groups * index_internal::kGroupMetaBytes;
    std::uint32_t used = 0;
    for (std::uint32_t i = 0; i < th.groups * layout.slots; ++i) {
      const std::uint8_t top = layout.top_of(meta, i);
      used += top != index_internal::kEmpty;
      if (top <= index_internal::kTombstone) continue;
      ++full;
      // Copied out as bytes: K and V are trivially copyable, not necessarily constructible.
      const std::uint8_t* slot = slots + std::size_t{i} * kSlotBytes;
      std::array<std::uint8_t, sizeof(K)> key_bytes;
      std::array<std::uint8_t, sizeof(V)> value_bytes;
      std::memcpy(key_bytes.data(), slot, sizeof(K));
      std::memcpy(value_bytes.data(), slot + kValueOffset, sizeof(V));
      const K key = std::bit_cast<K>(key_bytes);
      const std::uint64_t hv = m.hash_of(key);
      const std::uint32_t g = i / layout.slots;
      if (index_internal::tophash(hv) != top ||
          index_internal::triehash(hv, th.trie_base) !=
              meta[std::size_t{g} * index_internal::kGroupMetaBytes + index_internal::kGroupWidth +
                   i % layout.slots] ||
          (th.local_depth != 0 && hv >> (64 - th.local_depth) != th.prefix)) {
        return Status::corruption(where + "slot " + std::to_string(i) +
                                  " holds a key that does not hash to it (written with "
                                  "another hash function or seed?)");
      }
      // Reachable by a version 1 probe: no group before it (from its home) has an empty slot,
      // so the map loads exactly what MappedIndex finds in the same file.
      bool reachable = true;
      index_internal::for_each_passed_group(
          index_internal::home_group(top, th.groups), g, th.groups, [&](std::uint32_t x) {
            reachable &= (index_internal::Group::match_empty(
                              meta + std::size_t{x} * index_internal::kGroupMetaBytes) &
                          layout.lanes) == 0;
          });
      if (!reachable) {
        return Status::corruption(where + "slot " + std::to_string(i) +
                                  " is cut off from its home group");
      }
      if (!m.try_emplace(key, std::bit_cast<V>(value_bytes)).second) {
        return Status::corruption(where + "a key is stored twice");
      }
    }
    if (used > layout.max_used(th.groups)) {
      return Status::corruption(where + "fuller than any table the map writes");
    }
    if (full != th.size) return Status::corruption(where + "metadata counts do not match");
    entries += full;
    offset += sizeof(th) + bytes;
  }
  if (offset != body_limit) {
    return Status::corruption(at_offset(path, offset) + "unexpected bytes before the footer");
  }
  if (entries != h.entries) {
    return Status::corruption(path + ": header says " + std::to_string(h.entries) +
                              " entries, tables hold " + std::to_string(entries));
  }
  *out = std::move(m);
  return Status::OK();
}

// --- checkpoints ---------------------------------------------------------------------------

namespace index_internal {

// Reads an image held in memory with FileReader's interface.
struct MemoryReader {
  std::string_view bytes;
  std::uint64_t size() const { return bytes.size(); }
  Status read_at(std::uint64_t offset, void* out, std::size_t n) const {
    if (offset > bytes.size() || n > bytes.size() - offset) {
      return Status::corruption("truncated at offset " + std::to_string(offset));
    }
    std::memcpy(out, bytes.data() + offset, n);
    return Status::OK();
  }
};

// A frame: header, then body. The body's checksum is computed as the bytes are appended.
template <class Writer>
Status append_frame(Writer& w, std::uint32_t kind, const void* a, std::size_t an, const void* b,
                    std::size_t bn) {
  namespace c = checkpoint_file;
  c::FrameHeader fh{};
  fh.magic = c::kFrameMagic;
  fh.kind = kind;
  fh.body_bytes = an + bn;
  fh.body_crc = crc32c::extend(crc32c::value(a, an), b, bn);
  fh.crc = crc32c::value(&fh, offsetof(c::FrameHeader, crc));
  Status s = w.append(&fh, sizeof(fh));
  if (s.ok()) s = w.append(a, an);
  if (s.ok() && bn > 0) s = w.append(b, bn);
  return s;
}

inline std::uint64_t content_hash(const index_file::TableHeader& th,
                                  const std::vector<char>& image) {
  return hash_internal::hash_bytes(image.data(), image.size(),
                                   hash_internal::hash_bytes(&th, sizeof(th), 0));
}

}  // namespace index_internal

template <class K, class V, class H, class E>
Status ExtendibleHashMap<K, V, H, E>::checkpoint(const std::string& path) {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>,
                "checkpoint() needs trivially copyable Key and Value");
  namespace c = checkpoint_file;
  namespace f = index_file;
  using State = index_internal::CheckpointState;
  State* st = checkpoint_.state.get();
  // Incremental only onto a file this map wrote and left as it is, while at least half of
  // it is live (so the file stays within about twice the map's size).
  if (st == nullptr || st->path != path || st->file_bytes > 2 * st->live_bytes + (1u << 20)) {
    return checkpoint_full(path);
  }
  AppendFileWriter w;
  if (Status s = w.open(path, FileId{st->file_device, st->file_inode}, st->file_bytes); !s.ok()) {
    checkpoint_.state.reset();
    return s.is_corruption() ? checkpoint_full(path) : s;
  }
  std::unordered_map<const void*, State::Page> pages;
  std::vector<std::uint64_t> offsets;
  std::uint64_t live = 0;
  Status status = for_each_record(
      [&](Table* t, const f::TableHeader& th, const std::vector<char>& image) {
        const std::uint64_t content = index_internal::content_hash(th, image);
        auto old = st->pages.find(t);
        State::Page page;
        Status st2;
        if (old != st->pages.end() && old->second.content == content) {
          page = old->second;  // unchanged since the last checkpoint: its page is reused
        } else {
          page = State::Page{w.size(), content,
                             sizeof(c::FrameHeader) + sizeof(th) + image.size()};
          st2 = index_internal::append_frame(w, c::kPageFrame, &th, sizeof(th), image.data(),
                                             image.size());
        }
        pages[t] = page;
        offsets.push_back(page.offset);
        live += page.bytes;
        return st2;
      });
  c::CommitBody commit{st->sequence + 1, size_, global_depth_,
                       static_cast<std::uint32_t>(offsets.size())};
  // Pages durable before the commit that names them: see load_checkpoint's torn-tail rule.
  if (status.ok() && w.size() != st->file_bytes) status = w.sync();
  if (status.ok()) {
    status = index_internal::append_frame(w, c::kCommitFrame, &commit, sizeof(commit),
                                          offsets.data(), offsets.size() * 8);
  }
  if (status.ok()) status = w.sync();
  if (!status.ok()) {
    // The file now ends in a torn tail that loading ignores; the next checkpoint rewrites it.
    checkpoint_.state.reset();
    return status;
  }
  st->pages = std::move(pages);
  st->file_bytes = w.size();
  st->live_bytes = live + sizeof(c::FrameHeader) + sizeof(commit) + offsets.size() * 8 +
                   sizeof(f::FileHeader);
  st->sequence = commit.sequence;
  return Status::OK();
}

template <class K, class V, class H, class E>
Status ExtendibleHashMap<K, V, H, E>::checkpoint_full(const std::string& path) {
  namespace c = checkpoint_file;
  namespace f = index_file;
  using State = index_internal::CheckpointState;
  checkpoint_.state.reset();
  auto st = std::make_unique<State>();
  st->path = path;
  AtomicFileWriter w(path);
  if (Status s = w.open(); !s.ok()) return s;
  f::FileHeader h = file_header(c::kMagic);
  h.crc = crc32c::value(&h, offsetof(f::FileHeader, crc));
  Status status = w.append(&h, sizeof(h));
  std::vector<std::uint64_t> offsets;
  if (status.ok()) {
    status = for_each_record(
        [&](Table* t, const f::TableHeader& th, const std::vector<char>& image) {
          const State::Page page{w.bytes_written(), index_internal::content_hash(th, image),
                                 sizeof(c::FrameHeader) + sizeof(th) + image.size()};
          st->pages[t] = page;
          offsets.push_back(page.offset);
          return index_internal::append_frame(w, c::kPageFrame, &th, sizeof(th), image.data(),
                                              image.size());
        });
  }
  c::CommitBody commit{1, size_, global_depth_, static_cast<std::uint32_t>(offsets.size())};
  if (status.ok()) {
    status = index_internal::append_frame(w, c::kCommitFrame, &commit, sizeof(commit),
                                          offsets.data(), offsets.size() * 8);
  }
  if (status.ok()) status = w.commit();
  FileId id;
  if (status.ok()) status = file_id(path, &id);
  if (!status.ok()) return status;
  st->file_device = id.device;
  st->file_inode = id.inode;
  st->file_bytes = st->live_bytes = w.bytes_written();
  st->sequence = 1;
  checkpoint_.state = std::move(st);
  return Status::OK();
}

// Loads the image of the checkpoint file's last complete commit (checkpoint_file::read_image)
// with every check load() makes.
template <class K, class V, class H, class E>
Status ExtendibleHashMap<K, V, H, E>::load_checkpoint(FileReader& r, const std::string& path,
                                                      ExtendibleHashMap* out) {
  std::string image;
  std::uint64_t sequence = 0;
  if (Status s = checkpoint_file::read_image(r, path, &image, &sequence); !s.ok()) return s;
  index_internal::MemoryReader mr{image};
  return load_image(mr, path + " (checkpoint " + std::to_string(sequence) + ")", out);
}

}  // namespace sisu
