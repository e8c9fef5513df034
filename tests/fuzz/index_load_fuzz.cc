// libFuzzer target: ExtendibleHashMap::load on arbitrary bytes. A file either loads into a map
// that is consistent (every entry found by its key, size() matching iteration) or is refused
// with is_corruption() / is_io_error(); anything else (a crash, a sanitizer report, another
// status) is a finding.
#include <cstdint>
#include <cstdlib>

#include "index/extendible_hash_map.h"
#include "tests/fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (!sisu::fuzz::write_input(data, size)) return 0;
  using Map = sisu::ExtendibleHashMap<std::uint64_t, std::uint64_t>;
  Map m;
  const sisu::Status s = Map::load(sisu::fuzz::input_path(), &m);
  if (!s.ok()) {
    if (!s.is_corruption() && !s.is_io_error()) std::abort();
    return 0;
  }
  std::size_t n = 0;
  for (const auto& [k, v] : m) {
    auto it = m.find(k);
    if (it == m.end() || it->second != v) std::abort();
    ++n;
  }
  if (n != m.size()) std::abort();
  m[12345] = 1;  // a loaded map must take writes
  m.erase(12345);
  return 0;
}
