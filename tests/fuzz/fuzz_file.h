// Shared by the fuzz targets: the loaders take a path, so each input is written to a file of
// this process's own first.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "index/extendible_hash_map.h"

namespace sisu::fuzz {

inline const std::string& input_path() {
  static const std::string path = "/tmp/sisu_fuzz_input." + std::to_string(::getpid());
  return path;
}

inline bool write_input(const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(input_path().c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && ok;
}

// Loads the input file as a u64 -> u64 map. It must be refused with is_corruption() or
// is_io_error(), or load into a consistent map: every entry found by its key with its value,
// size() matching iteration, no key inserted again by a later insert of it, and it must
// take writes. Anything else aborts (a finding).
inline void load_and_check_input() {
  using Map = ExtendibleHashMap<std::uint64_t, std::uint64_t>;
  Map m;
  const Status s = Map::load(input_path(), &m);
  if (!s.ok()) {
    if (!s.is_corruption() && !s.is_io_error()) std::abort();
    return;
  }
  std::size_t n = 0;
  for (const auto& [k, v] : m) {
    auto it = m.find(k);
    if (it == m.end() || it->second != v) std::abort();
    ++n;
  }
  if (n != m.size()) std::abort();
  std::vector<std::uint64_t> keys;
  for (const auto& [k, v] : m) keys.push_back(k);
  for (std::uint64_t k : keys) {
    if (m.try_emplace(k, 0).second) std::abort();  // an insert found no copy of a present key
  }
  if (m.size() != n) std::abort();
  m[12345] = 1;
  m.erase(12345);
}

}  // namespace sisu::fuzz
