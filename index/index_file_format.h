// The on-disk layout of a saved ExtendibleHashMap (docs/index-format.md describes it byte by
// byte). Everything is little-endian; every byte of a file is covered by a CRC32C.
//
//   +--------------------+  offset 0
//   | FileHeader (64 B)  |  magic, format version, key/value layout, hash seed, depth, counts
//   +--------------------+
//   | TableHeader (32 B) |  one record per small table: its place in the directory
//   | metadata + slots   |  (prefix, local depth), size, and its memory image
//   +--------------------+
//   |        ...         |  overflow tables follow the table whose chain they extend
//   +--------------------+
//   | Footer (32 B)      |  magic, counts, where the body ends
//   +--------------------+
//
// The directory is not stored: the tables' (prefix, local depth) pairs tile it exactly.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace sisu::index_file {

static_assert(std::endian::native == std::endian::little,
              "sisu index files are little-endian; a big-endian port must byte-swap here");

inline constexpr char kMagic[8] = {'S', 'I', 'S', 'U', 'I', 'D', 'X', '1'};
inline constexpr char kFooterMagic[8] = {'S', 'I', 'S', 'U', 'E', 'N', 'D', '1'};
// Version 2 (written): groups of 15 slots with a 16-bit overflow filter (index/group.h).
// Version 1 (still read): groups of 16 slots, no filter.
inline constexpr std::uint32_t kFormatVersion = 2;
inline constexpr std::uint32_t kOldestFormatVersion = 1;
inline constexpr std::uint32_t kTableMagic = 0x4c425453;  // "STBL"
inline constexpr std::uint32_t kTableIsOverflow = 1;       // TableHeader::flags
inline constexpr unsigned kMaxDepth = 40;                   // ExtendibleHashMap's deepest directory
inline constexpr std::uint32_t kMaxGroups = 255;            // TableHeader::groups
inline constexpr std::uint64_t kMaxTableBytes = 256 << 10;  // a table's block, header included

struct FileHeader {
  char magic[8];
  std::uint32_t format_version;
  std::uint32_t header_bytes;  // sizeof(FileHeader)
  std::uint32_t key_bytes;     // sizeof(Key)
  std::uint32_t value_bytes;   // sizeof(Value)
  std::uint32_t slot_bytes;    // sizeof(std::pair<const Key, Value>)
  std::uint32_t alignments;    // alignof(Key) << 16 | alignof(Value)
  std::uint64_t hash_seed;     // sisu::Hash's seed; 0 for a hasher without one
  std::uint32_t hash_version;  // sisu::Hash::kVersion; 0 for a hasher without a seed
  std::uint32_t global_depth;
  std::uint64_t entries;
  std::uint32_t tables;  // table records, overflow tables included
  std::uint32_t crc;     // CRC32C of the 60 bytes before
};
static_assert(sizeof(FileHeader) == 64);

struct TableHeader {
  std::uint32_t magic;   // kTableMagic
  std::uint32_t groups;  // the table has groups * 15 slots (16 in format version 1)
  std::uint32_t size;    // full slots
  std::uint32_t flags;   // kTableIsOverflow: continues the chain of the table before
  std::uint64_t prefix;  // the top local_depth bits of every hash in the table
  std::uint8_t local_depth;
  std::uint8_t trie_base;
  std::uint16_t reserved;  // 0
  std::uint32_t crc;       // CRC32C of this header (crc = 0) and the payload that follows
};
static_assert(sizeof(TableHeader) == 32);

struct Footer {
  char magic[8];
  std::uint64_t entries;
  std::uint64_t body_bytes;  // offset of the footer
  std::uint32_t tables;
  std::uint32_t crc;  // CRC32C of the 28 bytes before
};
static_assert(sizeof(Footer) == 32);

}  // namespace sisu::index_file
