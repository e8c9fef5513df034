// IndexFile: a read-only view of a saved index file (index_file_format.h) or checkpoint file
// (checkpoint_format.h), whatever key and value types wrote it. The `sisu` tool's inspect, verify and dump read files through it.
//
//   open():     maps the file read-only; checks the header (magic, checksum, version, sizes)
//               and the footer (magic, checksum, agreement with the header). Cheap: two
//               records, whatever the file size.
//   verify():   walks every table record and lists every fault with its byte offset: a bad
//               record header, a checksum mismatch, metadata that disagrees with the record,
//               a directory that the tables do not tile exactly, counts that do not add up.
//   stats():    the shape of the index (IndexStats, as the map reports it), plus a histogram
//               of how full the tables are.
//   for_each_entry(): the raw bytes of every key and value, from tables whose checksum holds.
//
// Nothing read from the file is trusted before it is bounds-checked: a damaged, truncated,
// extended or foreign file gives is_corruption() (or is_io_error()), or a fault from verify(),
// never an out-of-bounds read or a huge allocation. The view never writes to the file.
//
// Thread-safety: a const IndexFile may be used from any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "index/group.h"
#include "index/index_file_format.h"
#include "index/index_stats.h"
#include "util/status.h"

namespace sisu {

namespace index_file {
// The checks every reader of an index file makes, whatever it reads the file into (the typed
// ExtendibleHashMap::load and the IndexFile view). Messages name `path` and the offset.
//
// The header is a sisu index file of this format version, and its checksum holds.
Status check_header(const FileHeader& h, const std::string& path);
// The footer is intact, sits at `body_end` (file size - 32) and agrees with the header.
Status check_footer(const Footer& ft, const FileHeader& h, std::uint64_t body_end,
                    const std::string& path);
}  // namespace index_file

struct IndexFileFault {
  std::uint64_t offset;  // where in the file
  std::string what;      // "table 17: checksum mismatch"
};

// One table record as found in the file.
struct IndexFileTable {
  std::uint32_t index = 0;   // record number, in file order
  std::uint64_t offset = 0;  // of its TableHeader
  std::uint32_t groups = 0;
  std::uint32_t size = 0;  // full slots, as the record says
  bool overflow = false;
  std::uint64_t prefix = 0;
  unsigned local_depth = 0;
  unsigned trie_base = 0;
  bool intact = false;  // header sane and checksum good
  std::uint32_t slots = index_internal::kGroupSlots;  // per group (16 in format version 1)
  std::uint32_t capacity() const { return groups * slots; }
};

class IndexFile {
 public:
  IndexFile();
  ~IndexFile();
  IndexFile(IndexFile&&) noexcept;
  IndexFile& operator=(IndexFile&&) noexcept;

  // Maps `path` and checks its header and footer.
  static Status open(const std::string& path, IndexFile* out);
  // The same for an index stored inside another file (an engine table file's index section)
  // at [offset, offset + bytes). Offsets the view reports are relative to the section;
  // section_offset() turns them into file offsets.
  static Status open_section(const std::string& path, std::uint64_t offset, std::uint64_t bytes,
                             IndexFile* out);
  std::uint64_t section_offset() const { return section_offset_; }

  const std::string& path() const { return path_; }
  // The bytes viewed: the file, the section, or a checkpoint's assembled image.
  std::uint64_t file_bytes() const { return checkpoint_sequence_ != 0 ? map_bytes_ : size_; }
  // For a checkpoint file (ExtendibleHashMap::checkpoint), the view is the image of its last
  // complete commit, assembled in memory; this is that commit's number (0: not a checkpoint).
  // Offsets that verify() reports are then offsets in that image.
  std::uint64_t checkpoint_sequence() const { return checkpoint_sequence_; }
  const index_file::FileHeader& header() const { return header_; }

  // Every fault in the file, in file order; empty when the file is intact. `progress`, when
  // given, is called now and then with the bytes checked so far and the file's size.
  std::vector<IndexFileFault> verify(
      const std::function<void(std::uint64_t done, std::uint64_t total)>& progress = {}) const;

  // The index's shape, from the table records (stops at the first record it cannot parse;
  // verify() says why). fill_histogram[i] counts tables whose fill is in [i/10, (i+1)/10).
  IndexStats stats(std::vector<std::size_t>* fill_histogram = nullptr) const;

  // Calls f(key, value) with the raw bytes of every entry of every intact table, in file
  // order, until f returns false.
  void for_each_entry(
      const std::function<bool(std::string_view key, std::string_view value)>& f) const;

  // The table records in file order, up to the first that cannot be parsed.
  std::vector<IndexFileTable> tables() const;

 private:
  // Parses the record at `offset`; false (with the fault) when it cannot be walked past.
  bool parse_table(std::uint64_t offset, std::uint32_t n, IndexFileTable* t,
                   IndexFileFault* fault) const;
  const std::uint8_t* at(std::uint64_t offset) const { return data_ + offset; }
  std::uint64_t body_end() const { return size_ - sizeof(index_file::Footer); }
  index_internal::GroupLayout layout() const {
    return index_internal::GroupLayout::for_version(header_.format_version);
  }
  std::uint64_t group_bytes() const { return layout().group_bytes(header_.slot_bytes); }

  std::string path_;
  void* map_ = nullptr;  // the whole file
  std::uint64_t map_bytes_ = 0;
  std::uint64_t section_offset_ = 0;
  std::string owned_;  // a checkpoint's assembled image
  std::uint64_t checkpoint_sequence_ = 0;
  const std::uint8_t* data_ = nullptr;  // the index: map_ + section_offset_, or owned_
  std::uint64_t size_ = 0;
  index_file::FileHeader header_{};
};

}  // namespace sisu
