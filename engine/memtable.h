// MemTable: the engine's in-memory write buffer. Records live in an arena; the lookup is a
// LockFreeHashMap from the key's 64-bit hash to the newest record with that hash, and each
// record points to the next older one with the same hash (older versions of the key, and
// other keys whose hashes collide, told apart by comparing the full key):
//
//   LockFreeHashMap                arena
//   hash(k1) ──► [seq 9 put k1 "c"] ──► [seq 4 del k1] ──► [seq 2 put k1 "a"] ──► null
//   hash(k2) ──► [seq 7 put k2 "x"] ──► null
//
// A record is written whole into the arena and then published by a compare-and-set (release):
// the map's, when it becomes the newest of its hash, or its older neighbour's `older` link,
// when a record with a higher sequence number is already there (writers of one commit group
// add their batches at once). A reader reaches a record only through those (acquire), so it
// never sees a half-written one, and chains are always in descending sequence order. A reader
// passes a snapshot sequence and skips newer records, so a batch that is being applied is
// invisible until its whole group is.
//
// freeze() freezes the map: the memtable is then immutable and is flushed to a table file
// while readers go on reading it.
//
// Thread-safety: reserve() and add() by one thread at a time (the commit leader, or
// recovery); add_at(), get(), bytes(), entries() and for_each_newest() from any number of
// threads at once.
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
  // The next older record with the same hash. Set before the record is published; changed
  // later only by a CAS that links a record with a sequence number between the two.
  std::atomic<const MemRecord*> older;
  std::uint64_t seq;
  std::uint64_t hash;
  std::uint32_t key_bytes;
  std::uint32_t value_bytes;
  RecordType type;

  const MemRecord* next() const { return older.load(std::memory_order_acquire); }
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

  // Records are written in two steps so that several writers can add at once: one thread
  // reserves arena space (reserve()), then any number of threads fill reservations (add_at()).
  // A chain stays sorted newest first whatever order the records are linked in: a record is
  // linked below any newer one already there. (The DB adds from the commit leader alone, in
  // sequence order; docs/design.md says why.)
  //
  // Space for a batch of `ops` operations encoded in `rep_bytes` bytes: an upper bound.
  static std::size_t reservation_bytes(std::size_t rep_bytes, std::size_t ops) {
    return rep_bytes + ops * (sizeof(MemRecord) + 8);
  }
  char* reserve(std::size_t bytes);
  // Writes a record at p (within a reservation) and links it; returns the bytes it took.
  std::size_t add_at(char* p, std::uint64_t seq, RecordType type, std::string_view key,
                     std::string_view value, std::uint64_t hash);
  // reserve() and add_at() for one record (recovery).
  void add(std::uint64_t seq, RecordType type, std::string_view key, std::string_view value,
           std::uint64_t hash) {
    add_at(reserve(sizeof(MemRecord) + key.size() + value.size()), seq, type, key, value, hash);
  }

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
      for (auto* r = reinterpret_cast<const MemRecord*>(head); r != nullptr; r = r->next()) {
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
  const std::size_t block_bytes_;
  const std::uint64_t first_log_;
  std::vector<std::unique_ptr<char[]>> blocks_;  // reserve() only
  char* cursor_ = nullptr;
  std::size_t left_ = 0;
  std::atomic<std::size_t> bytes_{0};
  std::atomic<std::size_t> memory_{0};
  LockFreeHashMap<std::uint64_t, std::uint64_t> index_;
};

}  // namespace sisu
