// libFuzzer target: every loader of the engine's files on arbitrary bytes: the MANIFEST
// decoder, WAL replay (framing and batch decoding), and a table file opened by mmap, walked
// record by record and queried. Each either refuses the input with a Status or reads it; none
// may crash or read out of bounds.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "engine/env.h"
#include "engine/manifest.h"
#include "engine/table.h"
#include "engine/wal.h"
#include "engine/write_batch.h"
#include "tests/fuzz/fuzz_file.h"

namespace {
void check(const sisu::Status& s) {
  if (!s.ok() && !s.is_corruption() && !s.is_not_found() && !s.is_io_error()) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  sisu::Manifest m;
  check(sisu::Manifest::decode(bytes, "input", &m));

  std::uint64_t ops = 0;
  const std::uint64_t good = sisu::wal::read_records(bytes, [&](std::string_view p, std::uint64_t) {
    return sisu::for_each_op(p, [&](std::uint64_t, sisu::RecordType, std::string_view k,
                                    std::string_view v) { ops += k.size() + v.size() + 1; });
  });
  if (good > size) std::abort();

  if (!sisu::fuzz::write_input(data, size)) return 0;
  std::shared_ptr<sisu::TableReader> t;
  sisu::Status s = sisu::TableReader::open(sisu::Env::posix(), sisu::fuzz::input_path(), 1, &t);
  check(s);
  if (!s.ok()) return 0;
  std::uint64_t offset = 0;
  while (offset < t->data_bytes()) {
    sisu::TableRecord r;
    s = t->read_record(offset, &r, &offset);
    check(s);
    if (!s.ok()) break;
    sisu::MemTable::Lookup found;
    std::string value;
    check(t->get(r.key, r.hash, &found, &value));
  }
  sisu::MemTable::Lookup found;
  std::string value;
  for (std::uint64_t h = 0; h < 64; ++h) check(t->get("k1", h * 0x9e3779b97f4a7c15ULL, &found, &value));
  return 0;
}
