// ExtendibleHashMap: an extendible hash table. A directory of 2^global_depth slots, indexed by
// the top bits of a key's hash, points to small open-addressing tables; the map grows by
// splitting one small table at a time, so no insert ever rehashes the whole map.
//
// Layout
// ------
//   hash (64 bits):  [ directory bits ... | triehash window ... |     ...     | tophash (8) ]
//                      63                   just below a table's                7        0
//                                           local depth
//
//   directory (2^global_depth entries of 16 bytes: table, groups, trie base, local depth)
//   +------+------+------+------+------+------+------+------+
//   |  A   |  A   |  B   |  C   |  D   |  D   |  D   |  D   |   global depth 3
//   +------+------+------+------+------+------+------+------+
//     A: local depth 2 (2 slots), B and C: 3 (1 slot each), D: 1 (4 slots)
//
//   small table (one SlabAllocator block):
//   +-----------+------------------------------------+---------------------------------+
//   | header 64 | group 0 meta | group 1 meta | ...  | slots: pair<const Key, Value>[] |
//   +-----------+------------------------------------+---------------------------------+
//   group meta (32 bytes), for the group's 15 slots (see group.h):
//   | tophash[15] | filter lo | triehash[15] | filter hi |
//
// Each entry keeps 16 bits of its hash:
// - tophash: the hash's low 8 bits (0 and 1 are reserved for empty and tombstone). A key's
//   home group is (tophash * groups) >> 8, a function of the stored byte and the table's size
//   only, so an entry can be placed in a table of any size, or in the other half of a split,
//   from its metadata alone: growing and splitting never need the key's hash.
// - triehash: 8 hash bits below those the directory consumed, taken at the table's "trie base"
//   depth. A split at local depth d sends each entry left or right by bit (7 - (d - base)) of
//   its triehash, without hashing the key. One split in kTrieSplits + 1 (3) hashes the keys
//   instead and gives both halves a fresh window (IndexStats::rehashed_keys counts them).
// A probe compares both bytes at once (SIMD over the group). Not all 16 bits tell keys apart:
// the entries of a group share the high bits of their tophash (it chose their home group),
// and those of a table share the triehash bits its splits used, so a miss compares ~0.035
// keys on average (kTrieSplits). A group's 16-bit overflow filter, on the same line,
// says whether an entry with the key's triehash bit was ever pushed past the group; if not,
// a probe stops there, so a miss scans about one group even in a table 15/16 full.
//
// Growth. A full table first grows in place to the next size class of the SlabAllocator
// (about 1.25x; 2x while the map is a single table, as a small map grows fastest that way),
// up to kMaxTableBytes (32 KiB; for slots over ~1 KiB, the class that holds two groups); a
// full table of the largest size splits into two tables, each sized for its half, and each
// table lineage splits at its own size among the largest four, so that tables do not all
// split at once. The directory doubles only when a table at local depth ==
// global depth splits (a copy of the directory, into a spare array warmed ahead of need once
// the directory is large). The worst single insert is one table split or grow plus, rarely,
// that copy. Tables are full at 15/16; the map's load factor stays between 0.72 and 0.9
// (mean 0.81) once it has split (docs/benchmarks.md).
//
// Shrink. Tables never move inside erase (erasing while iterating is safe). A later insert
// into an underfull table shrinks it to a smaller class, or merges it with its buddy when both
// fit in half a largest table; the directory halves when no table uses its last bit. The gap
// between the thresholds (grow at 15/16 full, shrink below 1/4) keeps an insert/erase cycle at
// a boundary from thrashing. clear(), reserve() and shrink_to_fit() also tidy up.
//
// Hostile hashes. When a split would leave every entry on one side (a constant hash, or one
// with few distinct values), or the directory would grow past ~1 slot per 8 entries, the table
// chains an overflow table instead. Lookups into such a table scan its chain: slower, bounded
// memory, correct answers; erased slots of a chain are reclaimed by rebuilding it. A hasher
// that does not declare `is_avalanching` (std::hash, the identity for integers on libstdc++)
// is mixed once more, so that only a truly hostile hash ever needs a chain.
//
// Thread-safety: like std::unordered_map. Const methods may run concurrently with each other;
// anything else needs external synchronization.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "alloc/slab_allocator.h"
#include "index/group.h"
#include "index/index_file_format.h"
#include "index/index_stats.h"
#include "util/hash.h"
#include "util/status.h"

namespace sisu {

class FileReader;  // util/file.h

template <class Key, class Value, class Hash, class KeyEqual>
class ExtendibleHashMap;

namespace index_internal {

// What a map knows about the checkpoint file it last wrote (ExtendibleHashMap::checkpoint):
// where each of its tables' pages lies and a 64-bit hash of the page's bytes, so that the next
// checkpoint appends only the tables whose bytes changed. A copy of a map starts without one
// (its first checkpoint rewrites the file); a move takes it along.
struct CheckpointState {
  struct Page {
    std::uint64_t offset;   // of its frame in the file
    std::uint64_t content;  // XXH3 of the table record's bytes
    std::uint64_t bytes;    // of the frame
  };
  std::string path;
  std::uint64_t file_device = 0, file_inode = 0;  // which file: a rename makes another
  std::uint64_t file_bytes = 0;  // the file as this map left it
  std::uint64_t live_bytes = 0;  // frames the last commit uses (the rest is dead)
  std::uint64_t sequence = 0;
  std::unordered_map<const void*, Page> pages;  // by table
};
class CheckpointLink {
 public:
  CheckpointLink() = default;
  CheckpointLink(const CheckpointLink&) noexcept {}
  CheckpointLink& operator=(const CheckpointLink&) noexcept {
    state.reset();
    return *this;
  }
  CheckpointLink(CheckpointLink&&) noexcept = default;
  CheckpointLink& operator=(CheckpointLink&&) noexcept = default;
  std::unique_ptr<CheckpointState> state;
};

inline std::uint8_t triehash(std::uint64_t h, unsigned base) {
  return static_cast<std::uint8_t>((h << base) >> 56);
}
// A well-mixed function of a table's place in the directory.
inline std::uint64_t mix_prefix(std::uint64_t prefix, unsigned depth) {
  return hash_internal::mix64(prefix, 0x243f6a8885a308d3ULL + depth);
}

// Splits a table may decide from its stored triehash bits before its keys are hashed again.
// Each such split uses one bit, and the bits used are the same for every entry of the table
// (they are its prefix), so they no longer filter probes. The split after those hashes the
// keys, decides from the hash and gives both halves a fresh window (trie base = their depth):
// a table's window has 0..kTrieSplits bits used, and one split in kTrieSplits + 1 hashes.
// A probe's false matches double with each used bit, and each costs a slot read, so this is
// a trade of lookup misses against split cost. Measured over 1M..10M random u64 keys
// (docs/design.md, "Triehash"): key compares per miss 0.017 / 0.026 / 0.036 / 0.055 for
// 0 / 1 / 2 / 3, against 0.079 when a hashing split left the halves one used bit; deciding
// two splits in three from stored bits saves 1-2% of growth time.
// A build may set SISU_EHM_TRIE_SPLITS (0..4), the same in every translation unit, as
// bench/split_cost_bench's ablation build does; files stay compatible across values.
#ifndef SISU_EHM_TRIE_SPLITS
#define SISU_EHM_TRIE_SPLITS 2
#endif
inline constexpr unsigned kTrieSplits = SISU_EHM_TRIE_SPLITS;
static_assert(kTrieSplits <= 4, "the overflow filter uses triehash bits 0..3 (group.h)");
// Directory depth limit: beyond it a table chains overflow tables instead of splitting.
inline constexpr unsigned kMaxDepth = 40;
// The directory may double while it has at most one slot per this many entries (or is small).
inline constexpr std::size_t kEntriesPerDirSlot = 8;
inline constexpr std::size_t kSmallDirectory = 1024;
// Lookups prefetch a matching group's slots (find_slot, and the insert fast path for a key
// already present) once the directory is this deep: typically 64 tables or more, over 1 MiB,
// past what L2 holds. A smaller map is in cache, where the prefetches only cost instructions
// (ShortUse at 7 keys: +10% without this test).
inline constexpr unsigned kPrefetchDepth = 7;

}  // namespace index_internal

template <class Key, class Value, class Hash = sisu::Hash<Key>, class KeyEqual = std::equal_to<>>
class ExtendibleHashMap {
 public:
  using key_type = Key;
  using mapped_type = Value;
  using value_type = std::pair<const Key, Value>;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using hasher = Hash;
  using key_equal = KeyEqual;
  using reference = value_type&;
  using const_reference = const value_type&;

  static_assert(sizeof(value_type) <= 8000, "store large values out of line (e.g. by pointer)");
  static_assert(alignof(value_type) <= 32, "slots are 32-byte aligned at most");
  // Growth moves entries between tables and undoes the moves if one throws (strong
  // guarantee). A value that can be neither copied nor moved without a possible throw could
  // not be moved back: its type is refused rather than lost in a failed grow.
  static_assert(std::is_copy_constructible_v<Value> || std::is_nothrow_move_constructible_v<Value>,
                "Value must be copy constructible or nothrow move constructible");

 private:
  struct Table;
  struct Slot {  // where an entry is: table and slot index
    Table* table = nullptr;
    std::uint32_t index = 0;
  };
  template <bool kConst>
  class Iter;

 public:
  using iterator = Iter<false>;
  using const_iterator = Iter<true>;

  // --- construction -------------------------------------------------------------------------

  ExtendibleHashMap() noexcept(std::is_nothrow_default_constructible_v<Hash> &&
                               std::is_nothrow_default_constructible_v<KeyEqual>) {}
  // Sized for n entries: inserting n entries into the new map splits and grows no table.
  explicit ExtendibleHashMap(std::size_t size_hint, const Hash& hash = Hash(),
                             const KeyEqual& eq = KeyEqual())
      : hash_(hash), eq_(eq) {
    if (size_hint > 0) build_for(size_hint);
  }
  ExtendibleHashMap(const ExtendibleHashMap& other)
      : counters_(other.counters_), hash_(other.hash_), eq_(other.eq_) {
    copy_from(other);
  }
  ExtendibleHashMap(ExtendibleHashMap&& other) noexcept
      : hash_(std::move(other.hash_)), eq_(std::move(other.eq_)) {
    steal(other);
  }
  ExtendibleHashMap& operator=(const ExtendibleHashMap& other) {
    if (this != &other) {
      ExtendibleHashMap copy(other);
      swap(copy);
    }
    return *this;
  }
  ExtendibleHashMap& operator=(ExtendibleHashMap&& other) noexcept {
    if (this != &other) {
      destroy_all();
      hash_ = std::move(other.hash_);
      eq_ = std::move(other.eq_);
      steal(other);
    }
    return *this;
  }
  ~ExtendibleHashMap() { destroy_all(); }

  void swap(ExtendibleHashMap& other) noexcept {
    ExtendibleHashMap tmp(std::move(other));
    other = std::move(*this);
    *this = std::move(tmp);
  }

  // --- capacity -----------------------------------------------------------------------------

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  hasher hash_function() const { return hash_; }
  key_equal key_eq() const { return eq_; }

  // Destroys every entry and returns all tables to the SlabAllocator (whose thread cache hands
  // them to the next map that grows): the map is as if new, holding no memory.
  void clear() noexcept {
    destroy_all();
    counters_ = {};
  }

  // Makes room for n entries: inserting up to n entries (spread by the hash) then grows no
  // table. To more than double its entries, a filled map is rebuilt (one copy of each entry,
  // fewer than the inserts to come). Otherwise it grows or splits only the tables short of
  // room for their share of the new entries (make_room_for); tables with an overflow chain
  // (keys the hash does not spread) are left as they are, and if it throws, the map holds
  // the same entries.
  void reserve(std::size_t n) {
    if (n <= size_) return;
    if (size_ == 0) {
      destroy_all();
      build_for(n);
    } else if (n - size_ > size_) {
      rebuild_for(n);
    } else {
      make_room_for(n - size_);
    }
  }

  // Merges and shrinks tables down to what the current entries need.
  void shrink_to_fit() { rebuild_for(size_); }

  // --- lookup -------------------------------------------------------------------------------

  // The directory reads the hash's top bits and the tophash its low byte, so every bit must
  // depend on the whole key. A hasher that does not say so (std::hash<integer> is the identity
  // on libstdc++) is mixed once more, as boost::unordered does.
  static constexpr bool kAvalanching = requires { typename Hash::is_avalanching; };
  template <class K>
  std::uint64_t hash_of(const K& key) const {
    const auto h = static_cast<std::uint64_t>(hash_(key));
    if constexpr (kAvalanching) {
      return h;
    } else {
      return hash_internal::mix64(h, 0);
    }
  }

  template <class K = Key>
  iterator find(const K& key) {
    const std::uint64_t h = hash_of(key);
    const Slot s = find_slot(h, key);
    if (s.table == nullptr) return end();
    // The entry's address from the directory entry's group count: no table header is read.
    const std::size_t di = dir_index(h);
    const DirEntry& d = dir_[di];
    return iterator(
        this, di, s,
        s.table == d.table ? entry_at(s.table, d.groups, s.index) : s.table->slot(s.index));
  }
  template <class K = Key>
  const_iterator find(const K& key) const {
    return const_cast<ExtendibleHashMap*>(this)->find(key);
  }
  template <class K = Key>
  bool contains(const K& key) const {
    return find_slot(hash_of(key), key).table != nullptr;
  }
  template <class K = Key>
  std::size_t count(const K& key) const {
    return contains(key) ? 1 : 0;
  }

  Value& at(const Key& key) {
    const Slot s = find_slot(hash_of(key), key);
    if (!s.table) throw std::out_of_range("sisu::ExtendibleHashMap::at: key not found");
    return s.table->slot(s.index)->second;
  }
  const Value& at(const Key& key) const { return const_cast<ExtendibleHashMap*>(this)->at(key); }

  // --- modifiers ----------------------------------------------------------------------------

  std::pair<iterator, bool> insert(const value_type& v) { return try_emplace(v.first, v.second); }
  std::pair<iterator, bool> insert(value_type&& v) {
    return try_emplace(v.first, std::move(v.second));
  }

  template <class... Args>
  std::pair<iterator, bool> try_emplace(const Key& key, Args&&... args) {
    return emplace_impl(key, std::forward<Args>(args)...);
  }
  template <class... Args>
  std::pair<iterator, bool> try_emplace(Key&& key, Args&&... args) {
    return emplace_impl(std::move(key), std::forward<Args>(args)...);
  }

  template <class M>
  std::pair<iterator, bool> insert_or_assign(const Key& key, M&& value) {
    auto r = emplace_impl(key, std::forward<M>(value));
    if (!r.second) r.first->second = std::forward<M>(value);
    return r;
  }
  template <class M>
  std::pair<iterator, bool> insert_or_assign(Key&& key, M&& value) {
    auto r = emplace_impl(std::move(key), std::forward<M>(value));
    if (!r.second) r.first->second = std::forward<M>(value);
    return r;
  }

  Value& operator[](const Key& key) { return emplace_impl(key).first->second; }
  Value& operator[](Key&& key) { return emplace_impl(std::move(key)).first->second; }

  template <class K = Key>
  std::size_t erase(const K& key) {
    const std::uint64_t h = hash_of(key);
    const Slot s = find_slot(h, key);
    if (!s.table) return 0;
    erase_slot(s);
    return 1;
  }
  // Returns the iterator after `pos`. Moves no entry: other iterators stay valid.
  iterator erase(const_iterator pos) {
    iterator next(this, pos.dir_index_, pos.slot_);
    ++next;
    erase_slot(pos.slot_);
    return next;
  }
  iterator erase(iterator pos) { return erase(const_iterator(pos)); }

  // --- iteration ----------------------------------------------------------------------------

  iterator begin() noexcept { return iterator::first(this); }
  iterator end() noexcept { return iterator(this, dir_size(), Slot{}); }
  const_iterator begin() const noexcept { return cbegin(); }
  const_iterator end() const noexcept { return cend(); }
  const_iterator cbegin() const noexcept {
    return const_iterator::first(const_cast<ExtendibleHashMap*>(this));
  }
  const_iterator cend() const noexcept {
    return const_iterator(const_cast<ExtendibleHashMap*>(this), dir_size(), Slot{});
  }

  // --- introspection ------------------------------------------------------------------------

  IndexStats stats() const;
  // stats().memory_bytes without the walk over every table: O(1).
  std::size_t memory_bytes() const noexcept { return memory_ + sizeof(*this); }

  // --- persistence (trivially copyable Key and Value) ---------------------------------------
  // Defined in index/extendible_hash_map_file.h, which this header includes at its end.

  Status save(const std::string& path) const;
  static Status load(const std::string& path, ExtendibleHashMap* out);
  // Appends the same image that save() writes to `sink`, anything with
  // `Status append(const void*, std::size_t)`: the engine embeds indexes in its table files
  // this way, and reads them in place with MappedIndex (index/mapped_index.h).
  template <class Sink>
  Status write_to(Sink& sink) const;
  // An incremental save (docs/index-format.md, "Checkpoint files"). The first checkpoint to
  // `path` writes the whole map (a new file renamed over `path`, as save() does); later ones
  // append only the small tables whose bytes changed since the last checkpoint, and a commit
  // record listing every table. The file is rewritten whole instead when it holds more dead
  // pages than live ones, when this map did not write it last, or after a failed checkpoint.
  // After a crash at any moment, load(path) gives exactly the last completed checkpoint.
  // Finding the changed tables hashes every table (XXH3, memory speed); only they are written.
  // REQUIRES: no other writer changes `path` between this map's checkpoints.
  Status checkpoint(const std::string& path);

 private:
  static constexpr unsigned kGroupSlots = index_internal::kGroupSlots;
  static constexpr unsigned kGroupWidth = index_internal::kGroupWidth;  // lanes per half

  // --- persistence internals (extendible_hash_map_file.h) -----------------------------------
  struct Table;
  index_file::FileHeader file_header(const char (&magic)[8]) const;
  // Table t's record as save() writes it: the header (checksum set) and the payload image.
  void table_record(Table* t, bool overflow, index_file::TableHeader* th,
                    std::vector<char>* image) const;
  template <class F>
  Status for_each_record(F&& f) const;
  template <class Reader>
  static Status load_image(Reader& r, const std::string& path, ExtendibleHashMap* out);
  template <class Reader>
  static Status load_v1_entries(Reader& r, const index_file::FileHeader& h,
                                std::uint64_t body_limit, const std::string& path,
                                const Hash& hasher, ExtendibleHashMap* out);
  static Status load_checkpoint(FileReader& r, const std::string& path, ExtendibleHashMap* out);
  Status checkpoint_full(const std::string& path);
  static constexpr unsigned kHeaderBytes = 64;
  // A table is full at 15/16 of its slots. With SIMD over groups of 15 the probes stay short
  // (IndexStats::mean_probe_groups is 1.15 for hits and mean_miss_probe_groups 1.27 at 4M
  // keys), and every point of max load is a point of the map's load factor (docs/design.md,
  // "Load factor").
  static constexpr std::size_t kMaxLoadNum = index_internal::kMaxLoadNum;
  static constexpr std::size_t kMaxLoadDen = index_internal::kMaxLoadDen;
  static constexpr bool kTrivial = std::is_trivially_copyable_v<value_type>;
  static constexpr std::size_t kSlotBytes = sizeof(value_type);
  static constexpr std::size_t kGroupBytes =
      index_internal::kGroupMetaBytes + kGroupSlots * kSlotBytes;
  // The largest table: 32 KiB (1800 u64 -> u64 slots), or two groups for huge values (then
  // the first slab class past this, see size_classes). Larger tables mean a smaller
  // directory but a longer split; 32 KiB splits in ~10 us.
  static constexpr std::size_t kMaxTableBytes =
      std::max<std::size_t>(std::size_t{32} << 10, kHeaderBytes + 2 * kGroupBytes);

  // The first 64 bytes of a table's block.
  struct Table {
    std::uint32_t groups;
    std::uint32_t size;         // full slots
    std::uint32_t tombstones;   // erased slots not yet reclaimed
    std::uint32_t growth_left;  // empty slots that inserts may still take before 15/16 full
    std::uint64_t prefix;       // the top local_depth bits shared by every hash here
    Table* overflow;            // the next table of this table's overflow chain
    std::uint32_t block_bytes;
    std::uint32_t split_retry_at;  // with an overflow chain: entries at which to try a split
    std::uint8_t local_depth;
    std::uint8_t trie_base;  // triehash = hash bits [63 - trie_base, 56 - trie_base]
    bool erased;             // an entry was erased here: the table may shrink

    std::uint8_t* meta(std::uint32_t g) {
      return reinterpret_cast<std::uint8_t*>(this) + kHeaderBytes +
             std::size_t{g} * index_internal::kGroupMetaBytes;
    }
    std::uint8_t& top_of(std::uint32_t i) { return meta(i / kGroupSlots)[i % kGroupSlots]; }
    std::uint8_t& trie_of(std::uint32_t i) {
      return meta(i / kGroupSlots)[kGroupWidth + i % kGroupSlots];
    }
    value_type* slot(std::uint32_t i) { return entry_at(this, groups, i); }
    void* slot_storage(std::uint32_t i) { return slot_address(this, groups, i); }
    std::uint32_t capacity() const { return groups * kGroupSlots; }
    bool full(std::uint32_t i) { return top_of(i) > index_internal::kTombstone; }
    // Writes both metadata bytes of slot `lane` of group g. Hot paths know (g, lane): going
    // through top_of(g * 15 + lane) would divide by 15 again.
    void set_meta(std::uint32_t g, unsigned lane, std::uint8_t top, std::uint8_t trie) {
      std::uint8_t* m = meta(g);
      m[lane] = top;
      m[kGroupWidth + lane] = trie;
    }
  };
  static_assert(sizeof(Table) <= kHeaderBytes);
  // Slot i of a table of `groups` groups. Lookups pass the group count from the directory
  // entry, so that a hit reads no table header (Table::slot reads it).
  static value_type* entry_at(Table* t, std::uint32_t groups, std::uint32_t i) {
    return std::launder(reinterpret_cast<value_type*>(slot_address(t, groups, i)));
  }
  static char* slot_address(Table* t, std::uint32_t groups, std::uint32_t i) {
    return reinterpret_cast<char*>(t) + kHeaderBytes +
           std::size_t{groups} * index_internal::kGroupMetaBytes + std::size_t{i} * kSlotBytes;
  }

  // One directory slot. Everything a lookup needs before it reaches the table's metadata, so
  // a lookup touches no table header. Trivial (no member initializers; DirEntry{} is all
  // zeros), so that `new DirEntry[n]` leaves the array's pages untouched: see
  // warm_spare_directory.
  struct DirEntry {
    Table* table;
    std::uint32_t groups;
    std::uint8_t trie_base;
    std::uint8_t local_depth;
    bool has_overflow;
  };
  static_assert(std::is_trivial_v<DirEntry>);

  // Table sizes: one per SlabAllocator class that fits a whole number of groups, up to
  // kMaxTableBytes; each holds more groups than the one before. The largest holds at least two
  // groups: for slots over ~1 KiB no class equals kMaxTableBytes, and the first class past it
  // is taken. (A largest table of one group, full at 14 entries, left build_for looking
  // forever for a depth whose tables fit their share plus 16.)
  struct SizeClasses {
    std::uint32_t groups[SlabAllocator::kNumClasses] = {};
    unsigned count = 0;
  };
  static const SizeClasses& size_classes() {
    static const SizeClasses classes = [] {
      SizeClasses c;
      for (std::size_t sc = 0; sc < SlabAllocator::kNumClasses; ++sc) {
        const std::size_t bytes = SlabAllocator::class_block_bytes(sc);
        if (bytes > kMaxTableBytes && c.count > 0 && c.groups[c.count - 1] >= 2) break;
        if (bytes < kHeaderBytes + kGroupBytes) continue;
        const auto g =
            static_cast<std::uint32_t>(std::min<std::size_t>((bytes - kHeaderBytes) / kGroupBytes, 255));
        if (c.count == 0 || g > c.groups[c.count - 1]) c.groups[c.count++] = g;
      }
      return c;
    }();
    static_assert(kHeaderBytes + 2 * kGroupBytes <= SlabAllocator::kMaxBlockBytes,
                  "the largest slot still fits two groups in the largest block");
    return classes;
  }
  // A table grows to the next size at least this much larger; a table made by a split or a
  // merge has room for this many times its entries. Smaller steps mean a higher load factor
  // and more entry moves; these give a load factor of 0.73..0.9 above 2000 keys (mean 0.81).
  static constexpr double kGrowFactor = 1.25;
  static std::size_t with_room_to_grow(std::size_t n) { return n + n / 5; }
  // The size at which table t splits instead of growing: one of the four largest sizes,
  // chosen by the table's place in the directory. With a uniform hash every table fills at
  // the same pace; if all split at the same size, the whole map would sit at its lowest load
  // factor at once after each wave of splits. Different sizes spread the splits over an
  // octave of map sizes, so the map's load factor stays near the mean of a table's cycle.
  static std::uint32_t split_groups(const Table* t) {
    const SizeClasses& c = size_classes();
    const unsigned spread = std::min(c.count, 4u);
    const std::uint64_t mix = index_internal::mix_prefix(t->prefix, t->local_depth);
    return c.groups[c.count - 1 - static_cast<unsigned>(mix % spread)];
  }
  static std::uint32_t max_groups() { return size_classes().groups[size_classes().count - 1]; }
  static std::size_t max_load(std::uint32_t groups) {
    return std::size_t{groups} * kGroupSlots * kMaxLoadNum / kMaxLoadDen;
  }
  // The smallest table size whose max load holds n entries (the largest if none does).
  static std::uint32_t groups_for(std::size_t n) {
    const SizeClasses& c = size_classes();
    for (unsigned i = 0; i < c.count; ++i) {
      if (max_load(c.groups[i]) >= n) return c.groups[i];
    }
    return c.groups[c.count - 1];
  }
  // The smallest size at least `factor` times the given one (the largest if none is).
  static std::uint32_t groups_after(std::uint32_t groups, double factor) {
    const SizeClasses& c = size_classes();
    for (unsigned i = 0; i < c.count; ++i) {
      if (c.groups[i] >= groups * factor) return c.groups[i];
    }
    return c.groups[c.count - 1];
  }

  // --- directory ----------------------------------------------------------------------------

  std::size_t dir_size() const noexcept { return std::size_t{1} << global_depth_; }
  std::size_t dir_index(std::uint64_t h) const noexcept {
    // (h >> 1) >> (63 - G) is h >> (64 - G) for G >= 1 and 0 for G == 0, with no shift by 64.
    return static_cast<std::size_t>((h >> 1) >> (63 - global_depth_));
  }
  // The directory slots that point to table t: 2^(G - d) consecutive ones.
  std::size_t range_begin(const Table* t) const {
    return static_cast<std::size_t>(t->prefix) << (global_depth_ - t->local_depth);
  }
  std::size_t range_size(const Table* t) const {
    return std::size_t{1} << (global_depth_ - t->local_depth);
  }
  // Writes t into every directory slot of its range.
  void publish(Table* t) {
    DirEntry e{t, t->groups, t->trie_base, t->local_depth, t->overflow != nullptr};
    std::fill_n(dir_ + range_begin(t), range_size(t), e);
  }

  // --- tables -------------------------------------------------------------------------------

  static std::size_t block_bytes(std::uint32_t groups) {
    return kHeaderBytes + std::size_t{groups} * kGroupBytes;
  }
  Table* new_table(std::uint32_t groups, std::uint8_t depth, std::uint64_t prefix,
                   std::uint8_t trie_base) {
    const std::size_t bytes = block_bytes(groups);
    void* block = SlabAllocator::global().allocate(bytes);
    auto* t = ::new (block) Table{groups,
                                  0,
                                  0,
                                  static_cast<std::uint32_t>(max_load(groups)),
                                  prefix,
                                  nullptr,
                                  static_cast<std::uint32_t>(bytes),
                                  0,
                                  depth,
                                  trie_base,
                                  false};
    std::memset(t->meta(0), 0, std::size_t{groups} * index_internal::kGroupMetaBytes);
    ++tables_;
    memory_ += SlabAllocator::block_bytes_for(bytes);
    return t;
  }
  // Frees the block only (entries must have been destroyed or moved out).
  void free_table(Table* t) noexcept {
    --tables_;
    memory_ -= SlabAllocator::block_bytes_for(t->block_bytes);
    SlabAllocator::global().deallocate(t, t->block_bytes);
  }
  void destroy_entries(Table* t) noexcept {
    if constexpr (!std::is_trivially_destructible_v<value_type>) {
      for (std::uint32_t i = 0; i < t->capacity(); ++i) {
        if (t->full(i)) t->slot(i)->~value_type();
      }
    }
  }
  // Calls f(table) for every table the directory points to, once each (skipping the slots of
  // its range). A slot without a table exists only while load() fills the directory.
  template <class F>
  void for_each_main_table(F&& f) const {
    for (std::size_t i = 0; i < dir_size();) {
      Table* t = dir_[i].table;
      i += t == nullptr ? 1 : std::size_t{1} << (global_depth_ - dir_[i].local_depth);
      if (t != nullptr) f(t);
    }
  }
  // Calls f(table) for every table, main ones and their overflow chains, once each; f may
  // free the table it is given.
  template <class F>
  void for_each_table(F&& f) const {
    for_each_main_table([&](Table* head) {
      for (Table *t = head, *next; t != nullptr; t = next) {
        next = t->overflow;
        f(t);
      }
    });
  }

  // Places an entry known to be absent into t (which has a free slot along its probe).
  // Returns the slot index; metadata and counts are updated, the value is not constructed.
  static std::uint32_t claim_slot(Table* t, std::uint8_t top, std::uint8_t trie) {
    std::uint32_t g = index_internal::home_group(top, t->groups);
    for (;;) {
      const std::uint8_t* meta = t->meta(g);
      const index_internal::SlotMask free = index_internal::SlotGroup::match_free(meta);
      if (free != 0) {
        const unsigned bit = index_internal::lowest_slot(free);
        const std::uint32_t i = g * kGroupSlots + bit;
        // From the masks, not by reading the byte back: that read would wait for the store
        // of the previous claim in this group to retire.
        if ((index_internal::SlotGroup::match_empty(meta) >> bit) & 1) {
          --t->growth_left;
        } else {
          --t->tombstones;
        }
        t->set_meta(g, bit, top, trie);
        ++t->size;
        return i;
      }
      index_internal::mark_overflow(t->meta(g), trie);
      if (++g == t->groups) g = 0;
    }
  }

  // --- lookup -------------------------------------------------------------------------------

  // The slot of group g (whose metadata is at meta) that holds key, or none. With `prefetch`,
  // a match first prefetches the group's slots (prefetch_group_slots).
  template <class K>
  SISU_ALWAYS_INLINE Slot find_in_group(Table* t, std::uint32_t groups, std::uint32_t g,
                                        const std::uint8_t* meta, std::uint8_t top,
                                        std::uint8_t trie, const K& key,
                                        bool prefetch = false) const {
    index_internal::SlotMask m = index_internal::SlotGroup::match(meta, top, trie);
    if (m == 0) return Slot{};
    const char* base = slot_address(t, groups, g * kGroupSlots);
    if (prefetch) prefetch_group_slots(base);
    for (; m != 0; m &= m - 1) {
      const unsigned lane = index_internal::lowest_slot(m);
      if (eq_(std::launder(reinterpret_cast<const value_type*>(base + lane * kSlotBytes))->first,
              key)) {
        return Slot{t, g * kGroupSlots + lane};
      }
    }
    return Slot{};
  }

  // Whether lookups prefetch slots: only in a map too big for the cache (kPrefetchDepth).
  bool prefetching() const noexcept { return global_depth_ >= index_internal::kPrefetchDepth; }

  // Prefetches the lines of a group's slots, `first` being its first slot. Placed behind the
  // "metadata matched" branch, which a run of hits teaches the CPU to predict taken: it then
  // runs these before the metadata line arrives (their addresses need only the directory
  // entry), so the slot's line is on its way while the compare still waits, instead of being
  // asked for after it. A run of misses predicts the branch not taken and fetches nothing
  // more. Dependent 4M-key hits: 306 -> 194 ns, boost's 198; independent hits -16..21%
  // (docs/benchmarks.md, "Slot prefetch"). Hoisted above the branch, the prefetches would
  // cost every miss (+58..142%): check the disassembly when the compiler changes.
  // Only groups of at most 256 bytes of slots (u64 -> u64: 240, 4-5 lines) are prefetched,
  // the case measured; with larger slots the lines fetched would mostly not hold the hit.
  SISU_ALWAYS_INLINE static void prefetch_group_slots(const char* first) {
    constexpr std::size_t kSpan = kGroupSlots * kSlotBytes;
    if constexpr (kSpan <= 256) {
      for (std::size_t offset = 0; offset < kSpan; offset += 64) __builtin_prefetch(first + offset);
      __builtin_prefetch(first + kSpan - 1);  // the span need not start on a line
    }
  }

  template <class K>
  Slot find_in(Table* t, std::uint32_t groups, std::uint8_t top, std::uint8_t trie,
               const K& key) const {
    std::uint32_t g = index_internal::home_group(top, groups);
    for (std::uint32_t probed = 0; probed < groups; ++probed) {
      const std::uint8_t* meta = t->meta(g);
      if (const Slot s = find_in_group(t, groups, g, meta, top, trie, key); s.table != nullptr)
        return s;
      // The group's filter, on the line just read, says whether a key like this one was ever
      // pushed past it (group.h). A group with an empty slot has no filter bit set.
      if (!index_internal::overflowed(meta, trie)) break;
      if (++g == groups) g = 0;
    }
    return Slot{};
  }

  // The home group decides almost every lookup (hits: 88% at 4M keys; misses: all but those
  // whose home group's filter has their bit), so only it is inlined, in as few instructions
  // as possible: a lookup waiting on memory overlaps with the following ones only as far as
  // the CPU's instruction window reaches. Setting up the general probe inline cost hits 15%
  // at 4M keys (docs/design.md, "Lookups and their dependent loads"); the filter test, which
  // only misses reach, took 4% off their time inline rather than behind a call. The depth
  // test and the slot prefetches are the exception: they shorten a hit's wait on memory by
  // more than their instructions cost (prefetch_group_slots).
  template <class K>
  SISU_ALWAYS_INLINE Slot find_slot(std::uint64_t h, const K& key) const {
    if (dir_ == nullptr) return Slot{};
    const DirEntry& d = dir_[dir_index(h)];
    Table* t = d.table;
    if (t == nullptr) return Slot{};
    const std::uint8_t top = index_internal::tophash(h);
    const std::uint8_t trie = index_internal::triehash(h, d.trie_base);
    const std::uint32_t g = index_internal::home_group(top, d.groups);
    const std::uint8_t* meta = t->meta(g);
    if (const Slot s = find_in_group(t, d.groups, g, meta, top, trie, key, prefetching());
        s.table != nullptr) {
      return s;
    }
    if (!index_internal::overflowed(meta, trie) && !d.has_overflow) [[likely]]
      return Slot{};
    return find_past_home(d, top, trie, key);
  }

  // The rest of a probe that its home group and its filter did not end: the groups after it
  // (find_in starts again at the home group, in L1 by now), then the overflow chain.
  template <class K>
  [[gnu::noinline]] Slot find_past_home(const DirEntry& d, std::uint8_t top, std::uint8_t trie,
                                        const K& key) const {
    Slot s = find_in(d.table, d.groups, top, trie, key);
    if (s.table == nullptr && d.has_overflow) {
      for (Table* o = d.table->overflow; o != nullptr; o = o->overflow) {
        s = find_in(o, o->groups, top, trie, key);
        if (s.table != nullptr) break;
      }
    }
    return s;
  }

  // --- insert -------------------------------------------------------------------------------

  template <class K, class... Args>
  SISU_ALWAYS_INLINE std::pair<iterator, bool> emplace_impl(K&& key, Args&&... args) {
    const std::uint64_t h = hash_of(key);
    // Fast path, one pass over the home group: most inserts find there either the key or an
    // empty slot. A group with an empty slot never had an entry pushed past it (its filter
    // is clear: group.h; load() rejects files that break this), so the key is absent and
    // that slot may take it (any free slot of the home group is on the key's probe).
    // Everything else (a full home group, a full or once-erased table, an overflow chain, no
    // table yet) takes the general path.
    // Measured on a hinted 6215-key u64 map: 9.9 -> 7.1 ns per insert (boost: 2.9;
    // bench/extendible_hash_map_bench, BM_InsertSized).
    if (dir_ != nullptr) [[likely]] {
      const std::size_t di = dir_index(h);
      const DirEntry& d = dir_[di];
      Table* t = d.table;
      if (t != nullptr && !d.has_overflow) [[likely]] {
        const std::uint8_t top = index_internal::tophash(h);
        const std::uint8_t trie = index_internal::triehash(h, d.trie_base);
        const std::uint32_t g = index_internal::home_group(top, d.groups);
        const std::uint8_t* meta = t->meta(g);
        if (const Slot s = find_in_group(t, d.groups, g, meta, top, trie, key, prefetching());
            s.table != nullptr) {
          return {iterator(this, di, s, entry_at(t, d.groups, s.index)), false};
        }
        const index_internal::SlotMask empty = index_internal::SlotGroup::match_empty(meta);
        if (empty != 0 && t->growth_left != 0 && !t->erased) [[likely]] {
          const unsigned lane = index_internal::lowest_slot(empty);
          const std::uint32_t i = g * kGroupSlots + lane;
          --t->growth_left;
          ++t->size;
          t->set_meta(g, lane, top, trie);
          const Slot s{t, i};
          construct_entry(s, std::forward<K>(key), std::forward<Args>(args)...);
          return {iterator(this, di, s, entry_at(t, d.groups, i)), true};
        }
      }
    }
    return emplace_slow(h, std::forward<K>(key), std::forward<Args>(args)...);
  }

  // Builds the entry in slot s, claimed for it. If construction throws, the slot is released
  // and the map is as it was.
  template <class K, class... Args>
  void construct_entry(Slot s, K&& key, Args&&... args) {
    try {
      ::new (s.table->slot_storage(s.index))
          value_type(std::piecewise_construct, std::forward_as_tuple(std::forward<K>(key)),
                     std::forward_as_tuple(std::forward<Args>(args)...));
    } catch (...) {
      release_slot(s.table, s.index);
      throw;
    }
    ++size_;
  }

  template <class K, class... Args>
  std::pair<iterator, bool> emplace_slow(std::uint64_t h, K&& key, Args&&... args) {
    for (;;) {
      if (dir_ == nullptr) init_single_table();
      Slot s = find_slot(h, key);
      if (s.table != nullptr) return {make_iter(h, s), false};
      Table* t = dir_[dir_index(h)].table;
      if (t->growth_left == 0) {
        if (make_room(t)) continue;  // the table changed: look again
        // No split can separate this table's keys: the entry goes to the overflow chain.
        s = claim_overflow_slot(t, h);
      } else if (t->erased && t->size * 4 < max_load(t->groups) && maybe_shrink(t)) {
        continue;
      } else {
        // A second probe from the home group, now in L1: measured faster than remembering
        // the first free group during the lookup (bench/extendible_hash_map_bench).
        s = Slot{t, claim_slot(t, index_internal::tophash(h),
                               index_internal::triehash(h, t->trie_base))};
      }
      construct_entry(s, std::forward<K>(key), std::forward<Args>(args)...);
      return {make_iter(h, s), true};
    }
  }

  // Undoes claim_slot for a slot whose value was never constructed.
  static void release_slot(Table* t, std::uint32_t i) noexcept {
    t->top_of(i) = index_internal::kTombstone;
    --t->size;
    ++t->tombstones;
  }

  // The table t has no room. Returns true after making some (the caller looks again), false
  // when only an overflow table can take the entry.
  bool make_room(Table* t) {
    if (t->overflow != nullptr) {
      // Erased slots of a chain are only reclaimed by rebuilding it: do so when they are a
      // quarter of what the chain holds, so that churn under a hostile hash stays bounded.
      std::size_t tombstones = 0;
      for (const Table* c = t; c != nullptr; c = c->overflow) tombstones += c->tombstones;
      if (tombstones * 4 >= chain_size(t) + 16) {
        rebuild_table(t, t->groups);
        ++counters_.cleanups;
        return true;
      }
      // Splits could not separate this table's keys before. Try again only once the chain
      // holds twice as many entries, so that a hostile hash costs O(1) per insert.
      if (chain_size(t) < t->split_retry_at) return false;
      return split_or_overflow(t);
    }
    if (t->tombstones >= t->capacity() / 8) {  // many erased slots: rebuild in place
      rebuild_table(t, t->groups);
      ++counters_.cleanups;
      return true;
    }
    if (t->groups < split_groups(t)) {
      // A lone table (a map under ~1600 u64 keys) doubles: a small map grows fastest that way
      // (ShortUse at 795 keys: 25 -> 19 ns/key against 1.25x steps) and its few KiB matter
      // little. Once the map has split, tables grow in small steps, which keeps the load
      // factor high where memory matters.
      const double factor = tables_ == 1 ? 2.0 : kGrowFactor;
      rebuild_table(t, std::min(split_groups(t), groups_after(t->groups, factor)));
      ++counters_.grows;
      return true;
    }
    return split_or_overflow(t);
  }

  static std::size_t chain_size(const Table* t) {
    std::size_t n = 0;
    for (; t != nullptr; t = t->overflow) n += t->size;
    return n;
  }

  // A full table of the largest size: split it, or say (false) that it cannot be split.
  // `one_sided_ok`: split even if every entry goes to one side (reserve() makes room for
  // entries to come; an insert would gain nothing).
  bool split_or_overflow(Table* t, bool one_sided_ok = false) {
    const std::size_t total = chain_size(t);
    t->split_retry_at = static_cast<std::uint32_t>(std::min<std::size_t>(2 * total, UINT32_MAX));
    if (t->local_depth >= index_internal::kMaxDepth) return false;
    if (t->local_depth == global_depth_ && !can_double_directory()) return false;
    // Which side each entry goes to: its stored triehash bit, while the window has one left;
    // once kTrieSplits bits are used, the key's hash, which also gives both halves a fresh
    // window starting at their depth (hashed[rank] = side << 8 | new triehash).
    const unsigned used = t->local_depth - t->trie_base;
    const bool hashing = used >= index_internal::kTrieSplits;
    const unsigned bit = hashing ? 0 : 7 - used;  // the stored bit, when not hashing
    std::vector<std::uint16_t> hashed;
    std::size_t ones = 0;
    if (!hashing) {
      for (Table* c = t; c != nullptr; c = c->overflow) {
        for (std::uint32_t g = 0; g < c->groups; ++g) {
          const std::uint8_t* meta = c->meta(g);
          ones += static_cast<std::size_t>(
              std::popcount(index_internal::SlotGroup::match_full(meta) &
                            index_internal::SlotGroup::trie_bit(meta, bit)));
        }
      }
    } else {
      const unsigned depth = t->local_depth;
      hashed.reserve(total);
      for_each_entry(&t, 1, [&](std::size_t, Table* c, std::uint32_t g, unsigned lane) {
        const std::uint64_t h = hash_of(c->slot(g * kGroupSlots + lane)->first);
        const unsigned side = static_cast<unsigned>(h >> (63 - depth)) & 1u;
        ones += side;
        hashed.push_back(
            static_cast<std::uint16_t>(side << 8 | index_internal::triehash(h, depth + 1)));
      });
      counters_.rehashed_keys += total;
    }
    // Every key on one side: splitting is useless to an insert.
    if (!one_sided_ok && (ones == 0 || ones == total)) return false;
    DirEntry* old_dir = nullptr;
    const std::size_t at_depth = tables_at_global_depth_;
    const bool warm = spare_fits();
    if (t->local_depth == global_depth_) old_dir = double_directory();
    try {
      if (!hashing) {
        split(
            t, total - ones, ones, t->trie_base,
            [bit](std::uint8_t trie, std::size_t) { return (trie >> bit) & 1u; },
            [](std::uint8_t trie, std::size_t) { return trie; });
      } else {
        split(
            t, total - ones, ones, static_cast<std::uint8_t>(t->local_depth + 1),
            [&](std::uint8_t, std::size_t rank) { return hashed[rank] >> 8; },
            [&](std::uint8_t, std::size_t rank) {
              return static_cast<std::uint8_t>(hashed[rank]);
            });
      }
    } catch (...) {
      if (old_dir != nullptr) restore_directory(old_dir, at_depth);
      throw;
    }
    if (old_dir != nullptr) {
      drop_directory(old_dir);
      if (warm) ++counters_.warm_directory_doublings;
    }
    return true;
  }

  bool can_double_directory() const {
    if (global_depth_ >= index_internal::kMaxDepth) return false;
    const std::size_t doubled = dir_size() * 2;
    return doubled <= index_internal::kSmallDirectory ||
           doubled <= size_ / index_internal::kEntriesPerDirSlot;
  }

  Slot claim_overflow_slot(Table* t, std::uint64_t h) {
    Table* last = t;
    while (last->growth_left == 0 && last->overflow != nullptr) last = last->overflow;
    if (last->growth_left == 0) {
      Table* o = new_table(max_groups(), t->local_depth, t->prefix, t->trie_base);
      last->overflow = o;
      last = o;
      publish(t);
    }
    Slot s;
    s.table = last;
    s.index =
        claim_slot(last, index_internal::tophash(h), index_internal::triehash(h, t->trie_base));
    return s;
  }

  // --- moving entries between tables --------------------------------------------------------

  // Builds in slot j of dst (already claimed) the entry of slot i of src. Trivially copyable
  // entries are copied as bytes; otherwise the key is copied (it is const) and the value
  // moved if that cannot throw, copied if it can. If construction throws, slot j of dst
  // becomes a tombstone and src is unchanged.
  static void relocate(Table* src, std::uint32_t i, Table* dst, std::uint32_t j) {
    if constexpr (kTrivial) {
      std::memcpy(dst->slot_storage(j), src->slot_storage(i), kSlotBytes);
    } else {
      value_type* from = src->slot(i);
      try {
        ::new (dst->slot_storage(j)) value_type(from->first, std::move_if_noexcept(from->second));
      } catch (...) {
        release_slot(dst, j);
        throw;
      }
    }
  }

  // Places entries into a new (empty) table without reading its metadata back: it counts how
  // full each group is. Bulk moves fill a group slot after slot, and reading a group right
  // after writing one of its bytes stalls on store forwarding.
  struct Filler {
    Table* table = nullptr;
    std::uint8_t fill[256];

    std::uint32_t place(std::uint8_t top, std::uint8_t trie) {
      Table* t = table;
      std::uint32_t g = index_internal::home_group(top, t->groups);
      while (fill[g] == kGroupSlots) {
        index_internal::mark_overflow(t->meta(g), trie);
        if (++g == t->groups) g = 0;
      }
      const unsigned lane = fill[g]++;
      t->set_meta(g, lane, top, trie);
      const std::uint32_t i = g * kGroupSlots + lane;
      ++t->size;
      --t->growth_left;
      return i;
    }
  };

  // Calls f(k, table, group, lane) for every entry of the chains srcs[0..n) (slot
  // group * kGroupSlots + lane), in one fixed order: chain by chain, table by table, slot by
  // slot. An entry's position in that order is its rank.
  template <class F>
  static void for_each_entry(Table* const* srcs, std::size_t n, F&& f) {
    for (std::size_t k = 0; k < n; ++k) {
      for (Table* c = srcs[k]; c != nullptr; c = c->overflow) {
        for (std::uint32_t g = 0; g < c->groups; ++g) {
          const std::uint8_t* meta = c->meta(g);
          for (auto m = index_internal::SlotGroup::match_full(meta); m != 0; m &= m - 1) {
            const unsigned lane = index_internal::lowest_slot(m);
            f(k, c, g, lane);
          }
        }
      }
    }
  }

  // Moves every entry of the chains srcs[0..n) into the tables pick(k, trie, rank) returns
  // (k: which source; rank: as for_each_entry counts), with triehash retrie(k, trie, rank),
  // then destroys and frees the source chains.
  // Strong guarantee: if moving an entry throws, every entry moved so far is put back, the
  // sources are as they were, and the destinations hold no entry (the caller frees them).
  template <class Pick, class Retrie>
  void move_all(Table* const* srcs, std::size_t n, Pick pick, Retrie retrie) {
    struct Moved {
      Table* from;
      std::uint32_t i;
      Table* to;
      std::uint32_t j;
    };
    std::vector<Moved> moved;  // for the rollback of types whose copy can throw
    Filler fillers[2];         // the (at most two) destination tables
    if constexpr (!kTrivial) {
      std::size_t total = 0;
      for (std::size_t k = 0; k < n; ++k) total += chain_size(srcs[k]);
      moved.reserve(total);
    }
    try {
      std::size_t rank = 0;
      for_each_entry(srcs, n, [&](std::size_t k, Table* c, std::uint32_t g, unsigned lane) {
        const std::uint32_t i = g * kGroupSlots + lane;
        const std::uint8_t* meta = c->meta(g);
        const std::uint8_t top = meta[lane];
        const std::uint8_t stored = meta[kGroupWidth + lane];
        const std::uint8_t trie = retrie(k, stored, rank);
        Table* to = pick(k, stored, rank);
        ++rank;
        std::uint32_t j;
        Filler* f = to == fillers[0].table   ? &fillers[0]
                    : to == fillers[1].table ? &fillers[1]
                                             : new_filler(fillers, to);
        if (f != nullptr && to->growth_left != 0) {
          j = f->place(top, trie);
        } else {  // not a fresh table, or full: a split half bigger than any table
          to = with_room(to);
          j = claim_slot(to, top, trie);
        }
        relocate(c, i, to, j);
        if constexpr (!kTrivial) moved.push_back({c, i, to, j});
      });
    } catch (...) {
      if constexpr (!kTrivial) {
        for (const Moved& m : moved) {
          value_type* to = m.to->slot(m.j);
          if constexpr (std::is_nothrow_move_constructible_v<Value>) {
            // move_if_noexcept moved this value out of its source: move it back.
            Value* back = &m.from->slot(m.i)->second;
            std::destroy_at(back);
            ::new (static_cast<void*>(back)) Value(std::move(to->second));
          }
          to->~value_type();
          m.to->top_of(m.j) = index_internal::kTombstone;
        }
      }
      throw;
    }
    for (std::size_t k = 0; k < n; ++k) {
      for (Table* c = srcs[k]; c != nullptr;) {
        Table* next = c->overflow;
        destroy_entries(c);
        free_table(c);
        c = next;
      }
    }
  }

  // A filler for `to` if it is a new, empty table and a filler is free; else null.
  static Filler* new_filler(Filler* fillers, Table* to) {
    if (to->size != 0 || to->tombstones != 0) return nullptr;
    for (int k = 0; k < 2; ++k) {
      if (fillers[k].table == nullptr) {
        fillers[k].table = to;
        std::memset(fillers[k].fill, 0, to->groups);
        return &fillers[k];
      }
    }
    return nullptr;
  }

  // The table of head's chain with a free slot; appends an overflow table if none has one
  // (only when a half of a split chain is larger than the largest table).
  Table* with_room(Table* head) {
    Table* t = head;
    while (t->growth_left == 0) {
      if (t->overflow == nullptr) {
        t->overflow = new_table(max_groups(), head->local_depth, head->prefix, head->trie_base);
      }
      t = t->overflow;
    }
    return t;
  }

  // Frees the chains made for an operation that failed (their entries were rolled back).
  void discard(std::initializer_list<Table*> heads) noexcept {
    for (Table* t : heads) {
      while (t != nullptr) {
        Table* next = t->overflow;
        free_table(t);
        t = next;
      }
    }
  }

  // Re-places the entries of t and its chain, without tombstones, into a new table of
  // `groups` groups (and the overflow tables with_room appends if they do not fit).
  void rebuild_table(Table* t, std::uint32_t groups) {
    Table* n = new_table(groups, t->local_depth, t->prefix, t->trie_base);
    n->split_retry_at = t->split_retry_at;
    try {
      move_all(
          &t, 1, [n](std::size_t, std::uint8_t, std::size_t) { return n; },
          [](std::size_t, std::uint8_t trie, std::size_t) { return trie; });
    } catch (...) {
      discard({n});
      throw;
    }
    publish(n);
  }

  // Splits t into two tables sized for their halves: side(trie, rank) says which half an
  // entry goes to (1: the right one), retrie(trie, rank) its triehash there, and `base` is
  // the halves' trie base (rank: as for_each_entry counts).
  template <class Side, class Retrie>
  void split(Table* t, std::size_t zeros, std::size_t ones, std::uint8_t base, Side side,
             Retrie retrie) {
    const auto depth = static_cast<std::uint8_t>(t->local_depth + 1);
    // Each half gets room to grow (with_room_to_grow) before its next step.
    Table* left = new_table(groups_for(with_room_to_grow(zeros)), depth, t->prefix << 1, base);
    Table* right = nullptr;
    try {
      right = new_table(groups_for(with_room_to_grow(ones)), depth, (t->prefix << 1) | 1, base);
      move_all(
          &t, 1,
          [&](std::size_t, std::uint8_t trie, std::size_t rank) {
            return side(trie, rank) ? right : left;
          },
          [&](std::size_t, std::uint8_t trie, std::size_t rank) { return retrie(trie, rank); });
    } catch (...) {
      discard({left, right});
      throw;
    }
    if (depth == global_depth_) tables_at_global_depth_ += 2;
    publish(left);
    publish(right);
    ++counters_.splits;
    warm_spare_directory();
  }

  // Doubles the directory and returns the old one, which the caller frees with
  // drop_directory() once the split that needed the room succeeded, or puts back with
  // restore_directory() (which cannot fail) if it did not.
  DirEntry* double_directory() {
    const std::size_t n = dir_size();
    DirEntry* bigger;
    if (spare_fits()) {
      bigger = spare_dir_;
      memory_ -= spare_entries_ * sizeof(DirEntry);
      spare_dir_ = nullptr;
      spare_entries_ = spare_warm_bytes_ = 0;
    } else {
      bigger = new DirEntry[2 * n];
    }
    for (std::size_t i = 0; i < n; ++i) bigger[2 * i] = bigger[2 * i + 1] = dir_[i];
    DirEntry* old = dir_;
    memory_ -= dir_bytes();
    dir_ = bigger;
    ++global_depth_;
    memory_ += dir_bytes();
    tables_at_global_depth_ = 0;
    ++counters_.directory_doublings;
    return old;
  }
  void drop_directory(DirEntry* old) noexcept {
    if (old != &inline_dir_) delete[] old;
  }
  void restore_directory(DirEntry* old, std::size_t tables_at_depth) noexcept {
    memory_ -= dir_bytes();
    if (spare_dir_ == nullptr) {  // the bigger array, all written, is the next spare
      spare_dir_ = dir_;
      spare_entries_ = dir_size();
      spare_warm_bytes_ = spare_entries_ * sizeof(DirEntry);
      memory_ += spare_warm_bytes_;
    } else {
      delete[] dir_;
    }
    dir_ = old;
    --global_depth_;
    memory_ += dir_bytes();
    tables_at_global_depth_ = tables_at_depth;
    --counters_.directory_doublings;
  }
  void halve_directory() {
    drop_spare_directory();
    const std::size_t n = dir_size() / 2;
    DirEntry* smaller = n == 1 ? &inline_dir_ : new DirEntry[n];
    for (std::size_t i = 0; i < n; ++i) smaller[i] = dir_[2 * i];
    set_directory(smaller, global_depth_ - 1);
    recount_tables_at_global_depth();
    ++counters_.directory_halvings;
  }
  void set_directory(DirEntry* dir, unsigned depth) {
    if (dir_ != &inline_dir_) delete[] dir_;
    memory_ -= dir_bytes();
    dir_ = dir;
    global_depth_ = depth;
    memory_ += dir_bytes();
  }
  std::size_t dir_bytes() const {
    return dir_ == nullptr || dir_ == &inline_dir_ ? 0 : dir_size() * sizeof(DirEntry);
  }

  // Doubling a directory of 2^G entries writes a new array of 2^(G+1); at 10M keys that is
  // 512 KiB, and its first touch (128 page faults) made the doubling the slowest insert of the
  // whole growth (~200 us, against ~15 us for a split). So once the directory is large, the
  // next one is allocated ahead (new DirEntry[] of a trivial type touches nothing) and its
  // pages are touched one per split; a cycle has ~2^G splits and the array 2^(G-7) pages, so
  // it is warm long before it is needed. It costs twice the directory, ~0.02 bytes per entry.
  static constexpr std::size_t kSpareDirectoryFrom = 1024;  // entries (16 KiB)
  static constexpr std::size_t kWarmStepBytes = 4096;
  void warm_spare_directory() noexcept {
    const std::size_t want = 2 * dir_size();
    // Not for a directory that may not double (a hostile hash): the spare would only hold memory.
    if (dir_size() < kSpareDirectoryFrom || !can_double_directory()) return;
    if (!spare_fits()) {
      drop_spare_directory();
      spare_dir_ = new (std::nothrow) DirEntry[want];
      if (spare_dir_ == nullptr) return;  // doubling will allocate, as without a spare
      spare_entries_ = want;
      memory_ += want * sizeof(DirEntry);
    }
    const std::size_t bytes = want * sizeof(DirEntry);
    if (spare_warm_bytes_ < bytes) {
      const std::size_t step = std::min(kWarmStepBytes, bytes - spare_warm_bytes_);
      std::memset(reinterpret_cast<char*>(spare_dir_) + spare_warm_bytes_, 0, step);
      spare_warm_bytes_ += step;
    }
  }
  // The spare is the size the next doubling needs.
  bool spare_fits() const noexcept {
    return spare_dir_ != nullptr && spare_entries_ == 2 * dir_size();
  }
  void drop_spare_directory() noexcept {
    if (spare_dir_ == nullptr) return;
    delete[] spare_dir_;
    memory_ -= spare_entries_ * sizeof(DirEntry);
    spare_dir_ = nullptr;
    spare_entries_ = spare_warm_bytes_ = 0;
  }

  void recount_tables_at_global_depth() {
    tables_at_global_depth_ = 0;
    for_each_main_table(
        [&](Table* t) { tables_at_global_depth_ += t->local_depth == global_depth_; });
  }

  // --- shrink -------------------------------------------------------------------------------

  // t holds less than a quarter of its max load. Merge it with its buddy when both fit in half
  // a largest table, or else move it to a smaller size. Returns true if anything changed.
  bool maybe_shrink(Table* t) {
    if (t->overflow != nullptr) return false;
    if (t->local_depth > 0) {
      const std::size_t buddy_index = range_begin(t) ^ range_size(t);
      Table* b = dir_[buddy_index].table;
      if (b->local_depth == t->local_depth && b->overflow == nullptr &&
          t->size + b->size <= max_load(max_groups()) / 2) {
        merge(t, b);
        return true;
      }
    }
    const std::uint32_t smaller = groups_for(t->size * 2);
    if (smaller < t->groups) {
      rebuild_table(t, smaller);
      ++counters_.shrinks;
      return true;
    }
    return false;
  }

  // Merges buddies a and b (same local depth d >= 1) into one table of depth d - 1.
  void merge(Table* a, Table* b) {
    const unsigned depth = a->local_depth;
    const auto base =
        static_cast<std::uint8_t>(std::min<unsigned>({a->trie_base, b->trie_base, depth - 1u}));
    const std::size_t n = a->size + b->size;
    Table* m = new_table(groups_for(with_room_to_grow(n)), static_cast<std::uint8_t>(depth - 1),
                         a->prefix >> 1, base);
    Table* const srcs[2] = {a, b};
    const unsigned old_base[2] = {a->trie_base, b->trie_base};
    const std::uint64_t high[2] = {a->prefix << (64 - depth), b->prefix << (64 - depth)};
    try {
      move_all(
          srcs, 2, [m](std::size_t, std::uint8_t, std::size_t) { return m; },
          [&](std::size_t k, std::uint8_t trie, std::size_t) {
            // Hash bits above the table's depth are its prefix; the rest come from the old
            // window, which covers the new window's low end because base <= old_base.
            const std::uint64_t bits = high[k] | (std::uint64_t{trie} << (56 - old_base[k]));
            return index_internal::triehash(bits, base);
          });
    } catch (...) {
      discard({m});
      throw;
    }
    if (depth == global_depth_) tables_at_global_depth_ -= 2;
    publish(m);
    ++counters_.merges;
    if (global_depth_ > 0 && tables_at_global_depth_ == 0) halve_directory();
  }

  // --- whole-map operations -----------------------------------------------------------------

  void init_single_table() {
    Table* t = new_table(size_classes().groups[0], 0, 0, 0);  // may throw: nothing changed yet
    dir_ = &inline_dir_;
    global_depth_ = 0;
    tables_at_global_depth_ = 1;
    publish(t);
  }

  // Lays out an empty map for n entries: 2^k tables of one size, each with room for its share
  // plus 4.5 standard deviations of the binomial spread (so no table grows before n inserts).
  void build_for(std::size_t n) {
    unsigned depth = 0;
    while (room_for_share(static_cast<double>(n) / (std::size_t{1} << depth)) >
               max_load(max_groups()) &&
           depth < index_internal::kMaxDepth) {
      ++depth;
    }
    const std::uint32_t groups =
        groups_for(room_for_share(static_cast<double>(n) / (std::size_t{1} << depth)));
    if (depth == 0) {
      dir_ = &inline_dir_;
    } else {
      dir_ = new DirEntry[std::size_t{1} << depth];
    }
    global_depth_ = depth;
    memory_ += dir_bytes();
    std::fill_n(dir_, dir_size(), DirEntry{});
    try {
      for (std::size_t i = 0; i < dir_size(); ++i) {
        publish(new_table(groups, static_cast<std::uint8_t>(depth), i,
                          static_cast<std::uint8_t>(depth)));
      }
    } catch (...) {
      destroy_all();  // frees the tables made so far (slots without a table are skipped)
      throw;
    }
    tables_at_global_depth_ = dir_size();
  }

  // The slots a table needs for `share` entries, its expected part of a uniform stream of
  // inserts: the share plus 4.5 binomial standard deviations, plus 16 for small shares.
  // (Capped at 2^62, which no table reaches, so that a huge n converts to size_t.)
  static std::size_t room_for_share(double share) {
    return static_cast<std::size_t>(std::min(share + 4.5 * std::sqrt(share) + 16, 0x1p62));
  }
  // reserve() for `extra` more entries. A table takes its share by its part of the
  // directory. Each table short of room for its share, or that has seen erases (an insert
  // could shrink or merge it first), is rebuilt at the size the share needs, or split when no
  // size holds it (its halves are looked at again, with half the share each). A table with
  // an overflow chain, or one that cannot split (a hostile hash), is left as it is.
  void make_room_for(std::size_t extra) {
    auto room = [extra](const Table* t) {
      return room_for_share(static_cast<double>(extra) /
                            static_cast<double>(std::uint64_t{1} << t->local_depth));
    };
    for (bool again = true; again;) {
      again = false;
      std::vector<Table*> short_of_room;
      for_each_main_table([&](Table* t) {
        if (t->overflow == nullptr && (t->growth_left < room(t) || t->erased)) {
          short_of_room.push_back(t);
        }
      });
      for (Table* t : short_of_room) {
        const std::size_t need = t->size + room(t);
        const std::uint32_t groups = groups_for(need);
        if (max_load(groups) >= need) {
          ++(groups > t->groups   ? counters_.grows
             : groups < t->groups ? counters_.shrinks
                                  : counters_.cleanups);
          rebuild_table(t, groups);
        } else if (split_or_overflow(t, /*one_sided_ok=*/true)) {
          again = true;
        }
      }
    }
  }

  // Rebuilds the whole map sized for max(n, size) entries (reserve and shrink_to_fit).
  // Entries are copied, not moved, so that if anything throws this map is unchanged.
  void rebuild_for(std::size_t n) {
    ExtendibleHashMap fresh(std::max(n, size_), hash_, eq_);
    for (auto it = begin(); it != end(); ++it) fresh.emplace_impl(it->first, it->second);
    fresh.counters_ = counters_;
    *this = std::move(fresh);
  }

  void erase_slot(Slot s) noexcept {
    Table* t = s.table;
    t->slot(s.index)->~value_type();
    const std::uint32_t g = s.index / kGroupSlots;
    // A group that still has an empty slot never had an entry pushed past it, so the slot can
    // be empty again; otherwise it stays a tombstone, so that a group with filter bits never
    // shows an empty slot, which the insert fast path relies on.
    if (index_internal::SlotGroup::match_empty(t->meta(g)) != 0) {
      t->top_of(s.index) = index_internal::kEmpty;
      ++t->growth_left;
    } else {
      t->top_of(s.index) = index_internal::kTombstone;
      ++t->tombstones;
    }
    --t->size;
    t->erased = true;
    --size_;
  }

  void destroy_all() noexcept {
    if (dir_ != nullptr) {
      for_each_table([this](Table* t) {
        destroy_entries(t);
        free_table(t);
      });
      if (dir_ != &inline_dir_) delete[] dir_;
    }
    drop_spare_directory();
    dir_ = nullptr;
    inline_dir_ = DirEntry{};
    global_depth_ = 0;
    size_ = 0;
    tables_ = 0;
    tables_at_global_depth_ = 0;
    memory_ = 0;
  }

  void steal(ExtendibleHashMap& other) noexcept {
    if (other.dir_ == &other.inline_dir_) {
      inline_dir_ = other.inline_dir_;
      dir_ = &inline_dir_;
    } else {
      dir_ = other.dir_;
    }
    global_depth_ = other.global_depth_;
    size_ = other.size_;
    tables_ = other.tables_;
    tables_at_global_depth_ = other.tables_at_global_depth_;
    memory_ = other.memory_;
    counters_ = other.counters_;
    checkpoint_ = std::move(other.checkpoint_);
    spare_dir_ = other.spare_dir_;
    spare_entries_ = other.spare_entries_;
    spare_warm_bytes_ = other.spare_warm_bytes_;
    other.spare_dir_ = nullptr;
    other.spare_entries_ = other.spare_warm_bytes_ = 0;
    other.dir_ = nullptr;
    other.inline_dir_ = DirEntry{};
    other.global_depth_ = 0;
    other.size_ = 0;
    other.tables_ = 0;
    other.tables_at_global_depth_ = 0;
    other.memory_ = 0;
  }

  void copy_from(const ExtendibleHashMap& other) {
    if (other.dir_ == nullptr) return;
    dir_ = other.dir_ == &other.inline_dir_ ? &inline_dir_ : new DirEntry[other.dir_size()];
    global_depth_ = other.global_depth_;
    memory_ += dir_bytes();
    std::fill_n(dir_, dir_size(), DirEntry{});
    tables_at_global_depth_ = other.tables_at_global_depth_;
    try {
      other.for_each_main_table([&](Table* src) {
        Table* head = nullptr;
        Table** link = &head;
        for (Table* c = src; c != nullptr; c = c->overflow) {
          Table* n = new_table(c->groups, c->local_depth, c->prefix, c->trie_base);
          *link = n;
          link = &n->overflow;
          if (head == n) publish(n);  // reachable for cleanup from here on
          copy_entries(c, n);
        }
        publish(head);
      });
    } catch (...) {
      destroy_all();
      throw;
    }
    size_ = other.size_;
  }
  // dst is a new, empty table of src's size. Entries keep their slots.
  static void copy_entries(Table* src, Table* dst) {
    const std::size_t meta_bytes = std::size_t{src->groups} * index_internal::kGroupMetaBytes;
    if constexpr (kTrivial) {
      std::memcpy(dst->meta(0), src->meta(0), meta_bytes);
      std::memcpy(dst->slot_storage(0), src->slot_storage(0),
                  std::size_t{src->capacity()} * kSlotBytes);
      dst->size = src->size;
    } else {
      // One entry at a time, marking each only once built, so a throw leaves dst consistent.
      for (std::uint32_t i = 0; i < src->capacity(); ++i) {
        if (!src->full(i)) continue;
        ::new (dst->slot_storage(i)) value_type(*src->slot(i));
        dst->top_of(i) = src->top_of(i);
        dst->trie_of(i) = src->trie_of(i);
        ++dst->size;
      }
      std::memcpy(dst->meta(0), src->meta(0), meta_bytes);  // tombstones too
    }
    dst->tombstones = src->tombstones;
    dst->growth_left = src->growth_left;
    dst->erased = src->erased;
  }

  iterator make_iter(std::uint64_t h, Slot s) { return iterator(this, dir_index(h), s); }

  // --- iterators ----------------------------------------------------------------------------

  template <bool kConst>
  class Iter {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = ExtendibleHashMap::value_type;
    using difference_type = std::ptrdiff_t;
    using reference = std::conditional_t<kConst, const value_type&, value_type&>;
    using pointer = std::conditional_t<kConst, const value_type*, value_type*>;

    Iter() = default;
    template <bool kOther, class = std::enable_if_t<kConst && !kOther>>
    Iter(const Iter<kOther>& other)  // iterator -> const_iterator
        : map_(other.map_),
          dir_index_(other.dir_index_),
          slot_(other.slot_),
          entry_(other.entry_) {}

    reference operator*() const { return *entry_; }
    pointer operator->() const { return entry_; }
    Iter& operator++() {
      advance();
      return *this;
    }
    Iter operator++(int) {
      Iter old = *this;
      advance();
      return old;
    }
    friend bool operator==(const Iter& a, const Iter& b) {
      return a.slot_.table == b.slot_.table && a.slot_.index == b.slot_.index;
    }

   private:
    friend class ExtendibleHashMap;
    template <bool>
    friend class Iter;

    Iter(ExtendibleHashMap* map, std::size_t dir_index, Slot slot)
        : map_(map),
          dir_index_(dir_index),
          slot_(slot),
          entry_(slot.table != nullptr ? slot.table->slot(slot.index) : nullptr) {}
    Iter(ExtendibleHashMap* map, std::size_t dir_index, Slot slot,
         ExtendibleHashMap::value_type* entry)
        : map_(map), dir_index_(dir_index), slot_(slot), entry_(entry) {}

    static Iter first(ExtendibleHashMap* map) {
      if (map->dir_ == nullptr || map->size_ == 0) return Iter(map, map->dir_size(), Slot{});
      Table* t = map->dir_[0].table;
      Iter it(map, 0, Slot{t, 0}, nullptr);
      if (t->full(0)) {
        it.entry_ = t->slot(0);
      } else {
        it.advance();
      }
      return it;
    }

    // To the next full slot: in this table, then its overflow chain, then the next table of
    // the directory (each table once: skip the slots of its range).
    void advance() {
      Table* t = slot_.table;
      std::uint32_t i = slot_.index + 1;
      for (;;) {
        // A group at a time: the full lanes at or after i's.
        for (std::uint32_t g = i / kGroupSlots; g < t->groups; ++g) {
          const unsigned from = g == i / kGroupSlots ? i % kGroupSlots : 0;
          const index_internal::SlotMask m =
              index_internal::SlotGroup::match_full(t->meta(g)) >> from << from;
          if (m != 0) {
            slot_ = Slot{t, g * kGroupSlots + index_internal::lowest_slot(m)};
            entry_ = t->slot(slot_.index);
            return;
          }
        }
        if (t->overflow != nullptr) {
          t = t->overflow;
          i = 0;
          continue;
        }
        const DirEntry& d = map_->dir_[dir_index_];
        dir_index_ =
            (dir_index_ & ~((std::size_t{1} << (map_->global_depth_ - d.local_depth)) - 1)) +
            (std::size_t{1} << (map_->global_depth_ - d.local_depth));
        if (dir_index_ >= map_->dir_size()) {
          slot_ = Slot{};
          entry_ = nullptr;
          return;
        }
        t = map_->dir_[dir_index_].table;
        i = 0;
      }
    }

    ExtendibleHashMap* map_ = nullptr;
    std::size_t dir_index_ = 0;  // a directory slot of the current (main) table
    Slot slot_;
    ExtendibleHashMap::value_type* entry_ = nullptr;  // slot_'s entry (saves a header read)
  };

  // --- state --------------------------------------------------------------------------------

  struct Counters {
    std::size_t splits = 0, grows = 0, shrinks = 0, merges = 0, cleanups = 0,
                directory_doublings = 0, directory_halvings = 0, rehashed_keys = 0,
                warm_directory_doublings = 0;
  };

  DirEntry* dir_ = nullptr;  // &inline_dir_ while global_depth_ == 0; null before any table
  DirEntry inline_dir_{};    // a small map allocates no directory
  // The next directory (twice dir_'s size), allocated ahead and warmed a page per split; null
  // while the directory is small or none is ready. See warm_spare_directory.
  DirEntry* spare_dir_ = nullptr;
  std::size_t spare_entries_ = 0;
  std::size_t spare_warm_bytes_ = 0;  // of spare_dir_, touched so far
  unsigned global_depth_ = 0;
  std::size_t size_ = 0;
  std::size_t tables_ = 0;
  std::size_t tables_at_global_depth_ = 0;  // the directory may halve when this is 0
  std::size_t memory_ = 0;  // table blocks (at class size) + directory + spare directory
  Counters counters_;
  index_internal::CheckpointLink checkpoint_;
  [[no_unique_address]] Hash hash_;
  [[no_unique_address]] KeyEqual eq_;
};

template <class K, class V, class H, class E>
IndexStats ExtendibleHashMap<K, V, H, E>::stats() const {
  IndexStats s;
  s.size = size_;
  s.global_depth = global_depth_;
  s.memory_bytes = memory_bytes();
  s.directory_bytes = dir_bytes() + spare_entries_ * sizeof(DirEntry);
  s.splits = counters_.splits;
  s.grows = counters_.grows;
  s.shrinks = counters_.shrinks;
  s.merges = counters_.merges;
  s.cleanups = counters_.cleanups;
  s.directory_doublings = counters_.directory_doublings;
  s.warm_directory_doublings = counters_.warm_directory_doublings;
  s.directory_halvings = counters_.directory_halvings;
  s.rehashed_keys = counters_.rehashed_keys;
  if (dir_ == nullptr) return s;
  s.local_depth_histogram.assign(global_depth_ + 1, 0);
  std::size_t probe_sum = 0, full = 0;
  double miss_groups = 0;
  for_each_main_table([&](Table* head) {
    // A miss lands in this table with probability 2^-local_depth and scans every table of
    // its chain.
    double scanned = 0;
    for (Table* t = head; t != nullptr; t = t->overflow) {
      scanned += index_internal::mean_miss_groups(t->meta(0), t->groups);
    }
    miss_groups += std::ldexp(scanned, -int{head->local_depth});
    for (Table* t = head; t != nullptr; t = t->overflow) {
      ++s.tables;
      s.capacity += t->capacity();
      s.tombstones += t->tombstones;
      s.local_depth_histogram[t->local_depth]++;
      if (t != head) {
        ++s.overflow_tables;
        s.overflow_entries += t->size;
      }
      for (std::uint32_t i = 0; i < t->capacity(); ++i) {
        if (!t->full(i)) continue;
        const std::uint32_t home = index_internal::home_group(t->top_of(i), t->groups);
        const std::uint32_t g = i / kGroupSlots;
        const std::size_t groups = (g + t->groups - home) % t->groups + 1;
        probe_sum += groups;
        s.max_probe_groups = std::max(s.max_probe_groups, groups);
        ++full;
      }
    }
  });
  s.load_factor = s.capacity ? static_cast<double>(s.size) / static_cast<double>(s.capacity) : 0;
  s.mean_probe_groups = full ? static_cast<double>(probe_sum) / static_cast<double>(full) : 0;
  s.mean_miss_probe_groups = miss_groups;
  return s;
}

}  // namespace sisu

#include "index/extendible_hash_map_file.h"  // save() and load()
