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
  sisu::fuzz::load_and_check_input();
  return 0;
}
