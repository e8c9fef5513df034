// libFuzzer target: IndexFile (the view the `sisu` tool reads through) on arbitrary bytes:
// open, verify, stats and every entry. A refused file gives is_corruption() / is_io_error();
// an opened one may have faults, but nothing may read out of bounds or crash.
#include <cstdint>
#include <cstdlib>

#include "index/index_file.h"
#include "tests/fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (!sisu::fuzz::write_input(data, size)) return 0;
  sisu::IndexFile file;
  const sisu::Status s = sisu::IndexFile::open(sisu::fuzz::input_path(), &file);
  if (!s.ok()) {
    if (!s.is_corruption() && !s.is_io_error()) std::abort();
    return 0;
  }
  const auto faults = file.verify();
  std::vector<std::size_t> fill;
  const sisu::IndexStats st = file.stats(&fill);
  std::size_t entries = 0;
  file.for_each_entry([&](std::string_view k, std::string_view v) {
    entries += k.size() + v.size() > 0;
    return true;
  });
  // An intact file's entries are exactly what its header says.
  if (faults.empty() && (entries != file.header().entries || st.size != entries)) std::abort();
  return 0;
}
