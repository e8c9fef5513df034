// libFuzzer target: checkpoint replay. Every input is made to start with the checkpoint
// magic, so ExtendibleHashMap::load takes the checkpoint path: frame scan, commit selection,
// damage search, image assembly, then the full validation. It must refuse with a Status or
// load a map that answers for every key it holds.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "index/extendible_hash_map.h"
#include "tests/fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> bytes(data, data + size);
  if (bytes.size() >= 8) std::memcpy(bytes.data(), sisu::checkpoint_file::kMagic, 8);
  if (!sisu::fuzz::write_input(bytes.data(), bytes.size())) return 0;
  sisu::fuzz::load_and_check_input();
  return 0;
}
