// The MANIFEST: which table files make up the database, newest first, and which WAL segments
// still hold writes that are in no table file. Rewritten whole (Env::write_file_atomically:
// temporary file, sync, rename, directory sync) after every flush and compaction, so after a
// crash it is the old or the new version, never a mix. Small: 48 bytes + 8 per table file.
//
//   magic "SISUMAN1" | version u32 | tables u32 | hash_seed u64 | next_file u64 |
//   log_number u64 | last_sequence u64 | table numbers u64 × tables | crc u32
//
// `log_number`: WAL segments numbered >= it are replayed at open; older ones are obsolete.
// `hash_seed`: the seed of the keys' 64-bit hash, fixed when the database is created (table
// files store hashes), random so that no one can aim keys at one hash without knowing it.
//
// Also the names of the files in a database directory.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/env.h"
#include "util/status.h"

namespace sisu {

struct Manifest {
  std::uint64_t hash_seed = 0;
  std::uint64_t next_file = 1;
  std::uint64_t log_number = 0;
  std::uint64_t last_sequence = 0;
  std::vector<std::uint64_t> tables;  // newest first

  std::string encode() const;
  // is_corruption() naming `path` for anything but a well-formed manifest.
  static Status decode(std::string_view data, const std::string& path, Manifest* out);
};

enum class FileKind { kTable, kLog, kManifest, kLock, kTemp, kOther };

std::string table_file_name(const std::string& dir, std::uint64_t number);  // DIR/000012.tbl
std::string log_file_name(const std::string& dir, std::uint64_t number);    // DIR/000013.log
std::string manifest_file_name(const std::string& dir);                     // DIR/MANIFEST
FileKind parse_file_name(std::string_view name, std::uint64_t* number);

// Reads and decodes DIR/MANIFEST.
Status read_manifest(Env* env, const std::string& dir, Manifest* out);

}  // namespace sisu
