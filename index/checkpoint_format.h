// The checkpoint file: an ExtendibleHashMap saved incrementally (docs/index-format.md,
// "Checkpoint files", has the picture and the rules).
//
//   +---------------------------+  offset 0
//   | FileHeader (64 B)         |  the index format's header, magic "SISUCKP1" (its depth,
//   |                           |  entries and tables fields are 0: each commit has its own)
//   +---------------------------+
//   | page frame                |  FrameHeader + a table record (TableHeader + payload),
//   | page frame ...            |  byte for byte as save() writes it
//   | commit frame              |  CommitBody + the offsets of the page frames that make up
//   +---------------------------+  the map, in save()'s table order
//   | page frames (changed)     |  a later checkpoint appends only the tables that changed
//   | commit frame              |  and a commit that lists every table's page, old and new
//   +---------------------------+
//   | torn tail (after a crash) |  ignored: loading stops at the first frame that fails
//   +---------------------------+
//
// The file is append-only between full rewrites, and a commit is accepted only if every
// frame before it is intact, so after a crash at any moment loading gives exactly the last
// commit whose frames all reached the disk: the last completed checkpoint.
#pragma once

#include <cstdint>
#include <string>

#include "index/index_file_format.h"
#include "util/file.h"
#include "util/status.h"

namespace sisu::checkpoint_file {

inline constexpr char kMagic[8] = {'S', 'I', 'S', 'U', 'C', 'K', 'P', '1'};
inline constexpr std::uint32_t kFrameMagic = 0x4d415246;  // "FRAM"
inline constexpr std::uint32_t kPageFrame = 1;
inline constexpr std::uint32_t kCommitFrame = 2;

struct FrameHeader {
  std::uint32_t magic;  // kFrameMagic
  std::uint32_t kind;   // kPageFrame or kCommitFrame
  std::uint64_t body_bytes;
  std::uint32_t body_crc;  // CRC32C of the body
  std::uint32_t crc;       // CRC32C of the 20 bytes before
};
static_assert(sizeof(FrameHeader) == 24);

// The body of a commit frame, followed by `tables` u64 page-frame offsets.
struct CommitBody {
  std::uint64_t sequence;  // 1 for the first checkpoint of the file, then 2, 3, ...
  std::uint64_t entries;
  std::uint32_t global_depth;
  std::uint32_t tables;
};
static_assert(sizeof(CommitBody) == 24);

// Reads a checkpoint file: scans its frames, picks the last commit whose frames are all intact
// (a bad frame after it is a torn tail; an intact commit after a bad frame is corruption), and
// assembles the image save() would have written for that commit into *image, which the caller
// then validates as an index file. *sequence is the commit's number.
Status read_image(const FileReader& r, const std::string& path, std::string* image,
                  std::uint64_t* sequence);

}  // namespace sisu::checkpoint_file
