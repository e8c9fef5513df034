// Saved-file fixtures shared by the index tests:
// - data/format_v1.idx and data/format_v1.ckpt: a map saved (and checkpointed) by the build
//   before format version 2 (16-slot groups, no overflow filter), which readers must still
//   read. The map: key mix64(i, 3) -> i for i in [0, 3000), i % 7 != 0 (those were erased,
//   leaving tombstones), with sisu::Hash's default seed of that build, recorded in the file.
// - cut_off_an_entry() and gap_before_an_entry(): make a version 2 image whose checksums are
//   good but whose filters or placement break what readers rely on, the damage only a
//   hostile writer makes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>

#include "index/group.h"
#include "index/index_file_format.h"
#include "util/crc32c.h"
#include "util/hash.h"

namespace sisu::testing_support {

inline std::string v1_fixture(const std::string& name) {
  return std::string(SISU_TEST_DATA_DIR) + "/" + name;
}

inline std::map<std::uint64_t, std::uint64_t> v1_fixture_entries() {
  std::map<std::uint64_t, std::uint64_t> m;
  for (std::uint64_t i = 0; i < 3000; ++i) {
    if (i % 7 != 0) m[hash_internal::mix64(i, 3)] = i;
  }
  return m;
}

// Walks the table records of a version 2 image of u64 -> u64 entries, calling
// damage(th, meta, need) with each record's header, its metadata and the filters its entries
// need, until damage returns true (it changed the metadata); then fixes that record's
// checksum and returns true. False if damage never did.
template <class F>
bool damage_a_table(std::string* image, F&& damage) {
  namespace f = index_file;
  using namespace index_internal;
  f::FileHeader h;
  std::memcpy(&h, image->data(), sizeof(h));
  const std::uint64_t group_bytes = kGroupMetaBytes + kGroupSlots * std::uint64_t{h.slot_bytes};
  std::uint64_t offset = sizeof(h);
  for (std::uint32_t n = 0; n < h.tables; ++n) {
    f::TableHeader th;
    std::memcpy(&th, image->data() + offset, sizeof(th));
    auto* meta = reinterpret_cast<std::uint8_t*>(image->data() + offset + sizeof(th));
    const std::uint64_t payload = th.groups * group_bytes;
    std::uint16_t need[f::kMaxGroups];
    needed_filters(meta, th.groups, need);
    if (damage(th, meta, need)) {
      th.crc = 0;
      th.crc = crc32c::extend(crc32c::value(&th, sizeof(th)), meta, payload);
      std::memcpy(image->data() + offset, &th, sizeof(th));
      return true;
    }
    offset += sizeof(th) + payload;
  }
  return false;
}

// Clears the overflow filter of the first group that an entry's probe must pass. False if
// no entry lies beyond its home group.
inline bool cut_off_an_entry(std::string* image) {
  using namespace index_internal;
  return damage_a_table(
      image, [](index_file::TableHeader& th, std::uint8_t* meta, const std::uint16_t* need) {
        for (std::uint32_t g = 0; g < th.groups; ++g) {
          if (need[g] == 0) continue;
          store_filter(meta + std::uint64_t{g} * kGroupMetaBytes, 0);
          return true;
        }
        return false;
      });
}

// Empties a full slot of the first group that an entry's probe passes (dropping that slot's
// entry, and fixing the counts and checksums of the table, the header and the footer), so an
// entry lies beyond a group with an empty slot: lookups still find it, but the map's insert
// fast path would insert its key twice. False if no entry lies beyond its home group.
inline bool gap_before_an_entry(std::string* image) {
  namespace f = index_file;
  using namespace index_internal;
  f::FileHeader h;
  std::memcpy(&h, image->data(), sizeof(h));
  const bool done =
      damage_a_table(image, [&](f::TableHeader& th, std::uint8_t* meta, const std::uint16_t* need) {
        for (std::uint32_t g = 0; g < th.groups; ++g) {
          std::uint8_t* gm = meta + std::uint64_t{g} * kGroupMetaBytes;
          if (need[g] == 0 || gm[0] < 2) continue;
          gm[0] = kEmpty;
          gm[kGroupWidth] = 0;
          std::memset(
              meta + th.groups * kGroupMetaBytes + std::uint64_t{g} * kGroupSlots * h.slot_bytes, 0,
              h.slot_bytes);
          --th.size;
          return true;
        }
        return false;
      });
  if (!done) return false;
  --h.entries;
  h.crc = crc32c::value(&h, offsetof(f::FileHeader, crc));
  std::memcpy(image->data(), &h, sizeof(h));
  f::Footer ft;
  const std::size_t at = image->size() - sizeof(ft);
  std::memcpy(&ft, image->data() + at, sizeof(ft));
  --ft.entries;
  ft.crc = crc32c::value(&ft, offsetof(f::Footer, crc));
  std::memcpy(image->data() + at, &ft, sizeof(ft));
  return true;
}

}  // namespace sisu::testing_support
