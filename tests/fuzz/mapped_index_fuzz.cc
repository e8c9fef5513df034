// libFuzzer target: MappedIndex (a saved index read in place, as the engine reads its table
// files' index sections) on arbitrary bytes: open, lookups of many keys, for_each. A refused
// image gives is_corruption(); an opened one answers lookups or reports corruption, and never
// reads out of bounds.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "index/mapped_index.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // A private, exactly-sized copy, so that ASan catches any read past the end.
  std::vector<std::uint8_t> bytes(data, data + size);
  sisu::MappedIndex<std::uint64_t, std::uint64_t> v;
  sisu::Status s = sisu::MappedIndex<std::uint64_t, std::uint64_t>::open(
      bytes.data(), bytes.size(), "input", &v);
  if (!s.ok()) {
    if (!s.is_corruption()) std::abort();
    return 0;
  }
  for (std::uint64_t k = 0; k < 2000; ++k) {
    std::uint64_t value;
    s = v.find(k * 7, &value);
    if (!s.ok() && !s.is_not_found() && !s.is_corruption()) std::abort();
  }
  std::uint64_t n = 0;
  s = v.for_each([&](std::uint64_t, std::uint64_t) { ++n; });
  if (!s.ok() && !s.is_corruption()) std::abort();
  return 0;
}
