// DB: sisu's embedded key-value store, an LSM prototype on sisu's two hash maps.
//
//   put/remove/write ──► group commit ──► WAL segment (one write, one fdatasync per group)
//                                    └──► memtable: arena records, LockFreeHashMap hash → newest
//   memtable full ──► frozen (map.freeze()), a new memtable and WAL segment take over
//   flush thread ──► frozen memtable → table file (records sorted by hash + persisted
//                    ExtendibleHashMap index, read in place by mmap) → MANIFEST → old WAL deleted
//   compaction thread ──► size-tiered merges of adjacent table files
//   get ──► memtable, frozen memtables, table files newest to oldest; first record wins
//
// docs/design.md ("The engine") explains each step with its measurements.
//
// Durability (the contract): with Options::sync, every write whose call returned OK survives
// kill -9 and power loss; without it, what survives a crash is a prefix of the acknowledged
// writes, never a hole and never a torn record. A WriteBatch is applied all or nothing, to
// the log and to readers.
//
// Errors: a damaged table file or MANIFEST is is_corruption() naming the file; a failed write
// or sync (a full disk) is is_io_error(), after which the DB refuses further writes with that
// error (reads continue) and a reopen recovers every acknowledged write.
//
// Thread-safety: every method may be called from any number of threads at once. Destroying
// the DB closes it (the WAL keeps what the memtable held; nothing is flushed on close).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/status.h"

namespace sisu {

class Env;

struct Options {
  bool create_if_missing = true;
  bool error_if_exists = false;
  // A memtable is frozen and flushed to a table file once its arena passes this size.
  std::size_t memtable_bytes = 64 << 20;
  // fdatasync the WAL before a write returns (one sync per commit group).
  bool sync = false;
  // Compaction starts when this many table files exist; a read consults at most this many
  // table files once compaction has caught up (docs/design.md, "Compaction").
  int compaction_trigger = 4;
  // Writes wait while this many frozen memtables await their flush (back-pressure).
  int max_frozen_memtables = 2;
  // The file layer; nullptr means the real file system. Tests pass a fault-injecting one.
  Env* env = nullptr;
  // For tests: replaces the keys' 64-bit hash (e.g. a constant, so that every key collides).
  // Table files store hashes, so a database must always be opened with the same function.
  std::uint64_t (*key_hash_for_testing)(std::string_view key) = nullptr;
};

// A group of puts and removes applied atomically by DB::write.
class WriteBatch {
 public:
  WriteBatch();
  void put(std::string_view key, std::string_view value);
  void remove(std::string_view key);
  void clear();
  std::size_t count() const { return count_; }
  // The bytes the batch takes in the log.
  std::size_t approximate_bytes() const { return rep_.size(); }

 private:
  friend struct WriteBatchAccess;
  std::string rep_;  // engine/write_batch.h describes the encoding
  std::size_t count_ = 0;
  Status status_;  // the first invalid argument given to put/remove, reported by DB::write
};

// What a database holds, for tools and tests.
struct DBStats {
  std::uint64_t table_files = 0;
  std::uint64_t table_bytes = 0;
  std::uint64_t table_entries = 0;
  std::uint64_t frozen_memtables = 0;
  std::uint64_t memtable_bytes = 0;     // arena bytes of the active memtable
  std::uint64_t memtable_entries = 0;   // distinct key hashes in the active memtable
  std::uint64_t wal_bytes_written = 0;  // since open
  std::uint64_t user_bytes_written = 0; // keys + values given to put/write since open
  std::uint64_t flush_bytes_written = 0;
  std::uint64_t compaction_bytes_written = 0;
  std::uint64_t flushes = 0;
  std::uint64_t compactions = 0;
  std::uint64_t write_groups = 0;  // commit groups: writes / groups = mean group size
  std::uint64_t writes = 0;
  std::uint64_t last_sequence = 0;
};

class DB {
 public:
  static Status open(const Options& options, const std::string& dir, std::unique_ptr<DB>* db);
  ~DB();
  DB(const DB&) = delete;
  DB& operator=(const DB&) = delete;

  // Keys are at most kMaxKeyBytes, values at most kMaxValueBytes (else invalid_argument).
  Status put(std::string_view key, std::string_view value);
  Status get(std::string_view key, std::string* value);  // is_not_found() when absent
  Status remove(std::string_view key);
  Status write(const WriteBatch& batch);  // all or nothing
  // Freezes the memtable and waits until it, and every frozen one, is in a table file.
  Status flush();
  // flush(), then merges every table file into one, dropping deleted keys.
  Status compact();

  DBStats stats() const;

  static constexpr std::size_t kMaxKeyBytes = 64 << 10;
  static constexpr std::size_t kMaxValueBytes = 64 << 20;
  // A batch's encoding (about its keys and values plus 9 bytes per op) is one WAL record,
  // whose length field is 32 bits: larger batches are invalid_argument.
  static constexpr std::size_t kMaxBatchBytes = std::size_t{1} << 31;

  struct Impl;

 private:
  explicit DB(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sisu
