// Table files (NNNNNN.tbl): an immutable, flushed memtable or a compaction's output.
//
//   +-----------------------------------------------+  offset 0
//   | record: RecordHeader (24 B) | key | value      |  sorted by (hash, key); one per key
//   | record ...                                    |
//   +-----------------------------------------------+  data_bytes
//   | index: a saved ExtendibleHashMap<u64, u64>    |  key hash -> offset of the first record
//   |        (docs/index-format.md), read in place  |  with that hash
//   +-----------------------------------------------+  data_bytes + index_bytes
//   | TableFooter (48 B)                            |
//   +-----------------------------------------------+
//
// Records sharing a 64-bit hash (a true collision) are adjacent, so a point read is one index
// probe and one record read, plus one more record per colliding key. Each record carries its
// own CRC32C (of everything after the crc field, key and value included), checked before a
// record is used: a damaged record is is_corruption() naming the file and offset, never a
// wrong answer. Since records are sorted by hash, compaction merges tables without rehashing.
//
// TableReader maps the file read-only; open() checks the footer and the index's header,
// footer and directory (MappedIndex), not the records: those are checked on first touch.
//
// Thread-safety: a TableReader may be read from any number of threads; a TableBuilder is
// used by one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engine/env.h"
#include "engine/memtable.h"
#include "index/extendible_hash_map.h"
#include "index/mapped_index.h"

namespace sisu {

struct TableRecordHeader {
  std::uint32_t crc;  // CRC32C of the 20 header bytes after it, the key and the value
  std::uint32_t key_bytes;
  std::uint32_t value_bytes;
  std::uint8_t type;  // RecordType
  std::uint8_t reserved[3];
  std::uint64_t hash;
};
static_assert(sizeof(TableRecordHeader) == 24);

inline constexpr char kTableMagic[8] = {'S', 'I', 'S', 'U', 'T', 'B', 'L', '1'};
inline constexpr std::uint32_t kTableFormatVersion = 1;

struct TableFooter {
  char magic[8];
  std::uint64_t data_bytes;   // where the index starts
  std::uint64_t index_bytes;
  std::uint64_t entries;      // records
  std::uint64_t tombstones;   // records of type kDelete
  std::uint32_t version;
  std::uint32_t crc;  // CRC32C of the 44 bytes before
};
static_assert(sizeof(TableFooter) == 48);

// One record as read from a table: views into the mapping.
struct TableRecord {
  std::uint64_t hash = 0;
  RecordType type = RecordType::kPut;
  std::string_view key, value;
};

class TableBuilder {
 public:
  TableBuilder(Env* env, std::string path, std::size_t expected_keys);
  ~TableBuilder();  // removes the file unless finish() succeeded
  Status open();
  // REQUIRES: called in ascending (hash, key) order, each key once.
  Status add(std::uint64_t hash, RecordType type, std::string_view key, std::string_view value);
  // Writes the index and footer, syncs and closes the file.
  Status finish();
  std::uint64_t file_bytes() const { return file_bytes_; }
  std::uint64_t entries() const { return entries_; }

 private:
  Env* env_;
  std::string path_;
  std::unique_ptr<WritableFile> file_;
  ExtendibleHashMap<std::uint64_t, std::uint64_t> index_;
  std::uint64_t offset_ = 0;
  std::uint64_t entries_ = 0, tombstones_ = 0, file_bytes_ = 0;
  bool have_last_ = false;
  std::uint64_t last_hash_ = 0;
  bool finished_ = false;
};

class TableReader {
 public:
  static Status open(Env* env, const std::string& path, std::uint64_t number,
                     std::shared_ptr<TableReader>* out);
  ~TableReader();  // deletes the file if mark_obsolete() was called

  // kAbsent, or kFound/kDeleted with the value; a damaged record or index table is an error.
  Status get(std::string_view key, std::uint64_t hash, MemTable::Lookup* result,
             std::string* value) const;
  // The record at `offset` (checksum checked) and the offset of the next one.
  Status read_record(std::uint64_t offset, TableRecord* out, std::uint64_t* next) const;

  std::uint64_t number() const { return number_; }
  const std::string& path() const { return path_; }
  std::uint64_t file_bytes() const { return file_->size(); }
  std::uint64_t data_bytes() const { return footer_.data_bytes; }
  std::uint64_t entries() const { return footer_.entries; }
  std::uint64_t tombstones() const { return footer_.tombstones; }
  const MappedIndex<std::uint64_t, std::uint64_t>& index() const { return index_; }
  // Once no reader holds this table any more, its file is deleted.
  void mark_obsolete() { obsolete_.store(true, std::memory_order_relaxed); }

 private:
  TableReader() = default;

  Env* env_ = nullptr;
  std::string path_;
  std::uint64_t number_ = 0;
  std::unique_ptr<MappedFile> file_;
  TableFooter footer_{};
  MappedIndex<std::uint64_t, std::uint64_t> index_;
  std::atomic<bool> obsolete_{false};
};

}  // namespace sisu
