// IndexStats: what an ExtendibleHashMap (or a saved index file) reports about its shape.
// The first fields are the contract's; the rest help tuning.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sisu {

struct IndexStats {
  // --- the contract's fields ---
  std::size_t size = 0;          // entries
  std::size_t capacity = 0;      // slots in all small tables
  double load_factor = 0;        // size / capacity (0 when there is no table)
  unsigned global_depth = 0;     // the directory has 2^global_depth slots
  std::size_t tables = 0;        // small tables (overflow tables included)
  std::size_t memory_bytes = 0;  // everything the map holds: directory, tables, the object
  std::vector<std::size_t> local_depth_histogram;  // [d] = tables of local depth d

  // --- tuning ---
  std::size_t tombstones = 0;        // erased slots not yet reclaimed
  std::size_t overflow_tables = 0;   // tables chained because splits could not separate keys
  std::size_t overflow_entries = 0;  // entries in them
  std::size_t directory_bytes = 0;   // the directory, and the next one warmed ahead of need
  double mean_probe_groups = 0;      // groups a successful lookup scans, on average (>= 1)
  std::size_t max_probe_groups = 0;  // the worst one
  double mean_miss_probe_groups = 0;  // groups a lookup of an absent key scans, on average
  // Since construction (or the last clear):
  std::size_t splits = 0;              // one table became two
  std::size_t grows = 0;               // a table moved to a larger size class
  std::size_t shrinks = 0;             // a table moved to a smaller size class
  std::size_t merges = 0;              // two buddy tables became one
  std::size_t cleanups = 0;            // a table rebuilt in place to drop tombstones
  std::size_t directory_doublings = 0;
  std::size_t directory_halvings = 0;
  std::size_t warm_directory_doublings = 0;  // of the doublings, those into a warmed spare
  std::size_t rehashed_keys = 0;  // keys hashed again because their stored triehash bits ran out
};

}  // namespace sisu
