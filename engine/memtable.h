// MemTable: the engine's in-memory write buffer. Records live in an arena; the lookup is a
// LockFreeHashMap from the key's 64-bit hash to the newest record with that hash, and each
// record points to the next older one with the same hash (older versions of the key, and
// other keys whose hashes collide, told apart by comparing the full key):
//
//   LockFreeHashMap                arena
//   hash(k1) ──► [seq 9 put k1 "c"] ──► [seq 4 del k1] ──► [seq 2 put k1 "a"] ──► null
//   hash(k2) ──► [seq 7 put k2 "x"] ──► null
//
// A record is written whole into the arena and then published by the map's compare-and-set
// (release); a reader reaches it only through the map (acquire), so it never sees a half-
// written record. Chains are in descending sequence order because one thread, the commit
// group's leader, adds records in sequence order. A reader passes a snapshot sequence and
// skips newer records, so a batch that is being applied is invisible until it is whole.
//
// freeze() freezes the map: the memtable is then immutable and is flushed to a table file
// while readers go on reading it.
//
// Thread-safety: add() by one thread at a time (the commit leader, or recovery); get(),
// bytes(), entries() and for_each_newest() from any number of threads at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/write_batch.h"
#include "index/lock_free_hash_map.h"

namespace sisu {

struct MemRecord {
  const MemRecord* older;
  std::uint64_t seq;
  std::uint64_t hash;
  std::uint32_t key_bytes;
  std::uint32_t value_bytes;
  RecordType type;

  std::string_view key() const { return {reinterpret_cast<const char*>(this + 1), key_bytes}; }
  std::string_view value() const {
    return {reinterpret_cast<const char*>(this + 1) + key_bytes, value_bytes};
  }
};

class MemTable {
 public:
  // `first_log` is the WAL segment holding this memtable's first record; the segment can be
  // deleted once this memtable is in a table file. `expected_keys` sizes the lookup map, so
  // that filling the memtable does not resize it from a few slots up.
  MemTable(std::size_t block_bytes, std::uint64_t first_log, std::size_t expected_keys = 0);
  MemTable(const MemTable&) = delete;
  MemTable& operator=(const MemTable&) = delete;

  void add(std::uint64_t seq, RecordType type, std::string_view key, std::string_view value,
           std::uint64_t hash);

  enum class Lookup { kAbsent, kFound, kDeleted };
  // The newest record for `key` with seq <= snapshot.
  Lookup get(std::string_view key, std::uint64_t hash, std::uint64_t snapshot,
             std::string* value) const;

  // Calls f(record) with the newest record of every key (tombstones included), in no order.
  // REQUIRES: frozen (no add() running).
  template <class F>
  void for_each_newest(F&& f) const {
    std::vector<std::string_view> seen;
    index_.for_each([&](std::uint64_t, std::uint64_t head) {
      seen.clear();
      for (auto* r = reinterpret_cast<const MemRecord*>(head); r != nullptr; r = r->older) {
        bool dup = false;
        for (std::string_view k : seen) dup |= k == r->key();
        if (dup) continue;
        seen.push_back(r->key());
        f(*r);
      }
    });
  }

  void freeze() { index_.freeze(); }
  // Bytes of records added: what the memtable_bytes limit is compared with.
  std::size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  std::size_t entries() const { return index_.size(); }  // distinct hashes
  std::size_t memory_bytes() const;
  std::uint64_t first_log() const { return first_log_; }
  bool empty() const { return bytes() == 0; }

 private:
  char* allocate(std::size_t n);

  const std::size_t block_bytes_;
  const std::uint64_t first_log_;
  std::vector<std::unique_ptr<char[]>> blocks_;  // writer only
  char* cursor_ = nullptr;
  std::size_t left_ = 0;
  std::atomic<std::size_t> bytes_{0};
  std::atomic<std::size_t> memory_{0};
  LockFreeHashMap<std::uint64_t, std::uint64_t> index_;
};

}  // namespace sisu
