// ExtendibleHashMap::save / load: round trips, another process, damaged and foreign files,
// crash consistency of save.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "index/extendible_hash_map.h"
#include "index/index_file.h"
#include "index/index_file_format.h"
#include "tests/index/format_fixtures.h"
#include "util/crc32c.h"

namespace sisu {
namespace {

using U64Map = ExtendibleHashMap<std::uint64_t, std::uint64_t>;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sisu_index_test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

U64Map sample_map(std::size_t n, std::uint64_t seed) {
  U64Map m(0, Hash<std::uint64_t>(seed));
  for (std::uint64_t k = 0; k < n; ++k) m[k * 3 + 1] = k * k;
  for (std::uint64_t k = 0; k < n; k += 5) m.erase(k * 3 + 1);  // leave tombstones
  return m;
}

void expect_equal(const U64Map& a, const U64Map& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    ASSERT_NE(it, b.end());
    ASSERT_EQ(it->second, v);
  }
}

TEST(IndexFile, Crc32cMatchesKnownValuesOnBothPaths) {
  const char* check = "123456789";
  EXPECT_EQ(crc32c::value(check, 9), 0xe3069283u);  // the standard check value
  EXPECT_EQ(crc32c::extend_portable(0, check, 9), 0xe3069283u);
  std::vector<unsigned char> data(1000);
  std::mt19937 rng(1);
  for (auto& b : data) b = static_cast<unsigned char>(rng());
  for (std::size_t n : {0, 1, 7, 8, 9, 63, 64, 999}) {
    EXPECT_EQ(crc32c::value(data.data(), n), crc32c::extend_portable(0, data.data(), n));
    // Extending in two pieces equals one pass.
    EXPECT_EQ(crc32c::extend(crc32c::value(data.data(), n / 2), data.data() + n / 2, n - n / 2),
              crc32c::value(data.data(), n));
  }
}

TEST(IndexFile, RoundTrip) {
  TempDir dir;
  const U64Map m = sample_map(100000, 77);
  ASSERT_TRUE(m.save(dir.file("a.idx")).ok());
  U64Map loaded;
  const Status s = U64Map::load(dir.file("a.idx"), &loaded);
  ASSERT_TRUE(s.ok()) << s.to_string();
  expect_equal(m, loaded);
  EXPECT_EQ(loaded.hash_function().seed(), 77u) << "the seed travels with the file";
  const IndexStats a = m.stats(), b = loaded.stats();
  EXPECT_EQ(a.global_depth, b.global_depth);
  EXPECT_EQ(a.tables, b.tables);
  EXPECT_EQ(a.capacity, b.capacity);
  EXPECT_EQ(a.tombstones, b.tombstones);
  for (std::uint64_t k = 0; k < 100000; k += 5) EXPECT_FALSE(loaded.contains(k * 3 + 1));

  // The loaded map is a normal map: it grows, shrinks and saves to the same bytes.
  ASSERT_TRUE(loaded.save(dir.file("b.idx")).ok());
  EXPECT_EQ(read_bytes(dir.file("a.idx")), read_bytes(dir.file("b.idx")));
  for (std::uint64_t k = 0; k < 300000; ++k) loaded[k * 3 + 2] = k;
  EXPECT_EQ(loaded.size(), m.size() + 300000);
  EXPECT_FALSE(std::ifstream(dir.file("a.idx.tmp")).good());
}

TEST(IndexFile, EmptyAndTinyMaps) {
  TempDir dir;
  U64Map empty;
  ASSERT_TRUE(empty.save(dir.file("e.idx")).ok());
  U64Map loaded = sample_map(10, 1);
  ASSERT_TRUE(U64Map::load(dir.file("e.idx"), &loaded).ok());
  EXPECT_TRUE(loaded.empty());
  loaded[5] = 6;
  EXPECT_EQ(loaded.at(5), 6u);

  U64Map one;
  one[42] = 43;
  ASSERT_TRUE(one.save(dir.file("one.idx")).ok());
  ASSERT_TRUE(U64Map::load(dir.file("one.idx"), &loaded).ok());
  EXPECT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded.at(42), 43u);
}

struct Rec {
  std::uint32_t a;
  std::uint16_t b;
  bool operator==(const Rec&) const = default;
};
struct RecHash {  // a hasher without a seed: the loader must use the same one
  std::size_t operator()(const Rec& r) const {
    return hash_internal::mix64(std::uint64_t{r.a} << 16 | r.b, 99);
  }
};

TEST(IndexFile, StructKeysAndAHasherWithoutSeed) {
  TempDir dir;
  ExtendibleHashMap<Rec, double, RecHash, std::equal_to<Rec>> m;
  for (std::uint32_t i = 0; i < 20000; ++i) m[Rec{i, static_cast<std::uint16_t>(i % 7)}] = i * 0.5;
  ASSERT_TRUE(m.save(dir.file("r.idx")).ok());
  decltype(m) loaded;
  ASSERT_TRUE(decltype(m)::load(dir.file("r.idx"), &loaded).ok());
  ASSERT_EQ(loaded.size(), m.size());
  for (std::uint32_t i = 0; i < 20000; ++i) {
    ASSERT_EQ(loaded.at(Rec{i, static_cast<std::uint16_t>(i % 7)}), i * 0.5);
  }
}

// Slots over 1 KiB: the largest table is a slab class past 32 KiB (two groups); such tables
// save, load and keep splitting like any other.
TEST(IndexFile, LargeValuesRoundTrip) {
  TempDir dir;
  using Value = std::array<std::uint8_t, 1096>;
  ExtendibleHashMap<std::uint64_t, Value> m;
  for (std::uint64_t k = 0; k < 500; ++k) {
    Value v;
    v.fill(static_cast<std::uint8_t>(k));
    m.try_emplace(k, v);
  }
  ASSERT_TRUE(m.save(dir.file("big.idx")).ok());
  decltype(m) loaded;
  ASSERT_TRUE(decltype(m)::load(dir.file("big.idx"), &loaded).ok());
  ASSERT_EQ(loaded.size(), m.size());
  EXPECT_EQ(loaded.stats().tables, m.stats().tables);
  for (std::uint64_t k = 0; k < 500; ++k) {
    ASSERT_TRUE(loaded.contains(k)) << k;
    EXPECT_EQ(loaded.at(k)[1095], static_cast<std::uint8_t>(k)) << k;
  }
  for (std::uint64_t k = 500; k < 1000; ++k) loaded.try_emplace(k, Value{});
  EXPECT_EQ(loaded.size(), 1000u);
}

struct NoSeedU64Hash {
  using is_avalanching = void;
  std::size_t operator()(std::uint64_t k) const { return hash_internal::mix64(k, 1); }
};

TEST(IndexFile, AFileOfSisuHashDoesNotLoadWithAnotherHasher) {
  TempDir dir;
  ASSERT_TRUE(sample_map(1000, 4).save(dir.file("a.idx")).ok());
  ExtendibleHashMap<std::uint64_t, std::uint64_t, NoSeedU64Hash> other;
  const Status s = decltype(other)::load(dir.file("a.idx"), &other);
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
}

struct Constant {
  using is_avalanching = void;
  std::size_t operator()(std::uint64_t) const { return 7; }
};

TEST(IndexFile, HostileHashWithOverflowChains) {
  TempDir dir;
  ExtendibleHashMap<std::uint64_t, std::uint64_t, Constant> m;
  for (std::uint64_t k = 0; k < 4000; ++k) m[k] = k + 1;
  ASSERT_GT(m.stats().overflow_tables, 0u);
  ASSERT_TRUE(m.save(dir.file("c.idx")).ok());
  decltype(m) loaded;
  const Status s = decltype(m)::load(dir.file("c.idx"), &loaded);
  ASSERT_TRUE(s.ok()) << s.to_string();
  ASSERT_EQ(loaded.size(), 4000u);
  for (std::uint64_t k = 0; k < 4000; ++k) ASSERT_EQ(loaded.at(k), k + 1);
}

// A grown map's splits decide kTrieSplits times from stored triehash bits, then hash the keys
// and give both halves a fresh window, so a table of depth d (never merged) has used
// d mod (kTrieSplits + 1) bits of its window. A used bit no longer filters probes: halves of
// a hashing split that kept one used bit made misses compare twice as many keys.
TEST(IndexFile, SplitsRenewTheTriehashWindowEveryFewSplits) {
  TempDir dir;
  U64Map m(0, Hash<std::uint64_t>(21));
  std::mt19937_64 rng(21);
  for (int i = 0; i < 400000; ++i) m[rng()] = static_cast<std::uint64_t>(i);
  EXPECT_GT(m.stats().rehashed_keys, 0u);
  ASSERT_TRUE(m.save(dir.file("w.idx")).ok());
  IndexFile view;
  ASSERT_TRUE(IndexFile::open(dir.file("w.idx"), &view).ok());
  std::size_t fresh = 0;  // tables made by a hashing split
  for (const IndexFileTable& t : view.tables()) {
    ASSERT_GE(t.local_depth, t.trie_base);
    EXPECT_EQ(t.local_depth - t.trie_base, t.local_depth % (index_internal::kTrieSplits + 1))
        << "table " << t.index << ", depth " << t.local_depth;
    fresh += t.local_depth > 0 && t.trie_base == t.local_depth;
  }
  EXPECT_GT(fresh, 0u) << "global depth " << m.stats().global_depth;
  // The stored bytes agree with the keys' hashes (load checks each entry's triehash against
  // its table's window, and the filters its placement needs).
  EXPECT_TRUE(view.verify().empty());
  U64Map loaded;
  ASSERT_TRUE(U64Map::load(dir.file("w.idx"), &loaded).ok());
  expect_equal(m, loaded);
}

// Files written before fresh windows hold tables with up to 3 used window bits, and any
// trie_base <= local_depth is valid. A map loaded from a file whose every table has its
// window at trie base 0 (all of its local depth used) splits those tables by hashing, and
// keeps every entry.
TEST(IndexFile, TablesWithTheirWindowUsedUpLoadAndSplit) {
  TempDir dir;
  const Hash<std::uint64_t> hasher(5);
  U64Map m(0, hasher);
  std::unordered_map<std::uint64_t, std::uint64_t> model;
  std::mt19937_64 rng(5);
  for (std::uint64_t i = 0; i < 20000; ++i) {
    const std::uint64_t k = rng();
    m[k] = i;
    model[k] = i;
  }
  ASSERT_GE(m.stats().global_depth, 3u);
  ASSERT_TRUE(m.save(dir.file("old.idx")).ok());
  std::vector<char> bytes = read_bytes(dir.file("old.idx"));
  std::string image(bytes.begin(), bytes.end());
  std::size_t rebased = 0;
  while (testing_support::damage_a_table(
      &image, [&](index_file::TableHeader& th, std::uint8_t* meta, const std::uint16_t*) {
        using namespace index_internal;
        if (th.local_depth == 0 || th.trie_base == 0) return false;
        th.trie_base = 0;
        const std::uint8_t* slots = meta + std::size_t{th.groups} * kGroupMetaBytes;
        for (std::uint32_t g = 0; g < th.groups; ++g) {
          std::uint8_t* gm = meta + std::size_t{g} * kGroupMetaBytes;
          for (SlotMask full = SlotGroup::match_full(gm); full != 0; full &= full - 1) {
            const unsigned lane = lowest_slot(full);
            std::uint64_t key;
            std::memcpy(&key,
                        slots + (std::size_t{g} * kGroupSlots + lane) * sizeof(U64Map::value_type),
                        sizeof(key));
            gm[kGroupWidth + lane] = triehash(hasher(key), 0);
          }
        }
        std::uint16_t need[index_file::kMaxGroups];
        needed_filters(meta, th.groups, need);
        for (std::uint32_t g = 0; g < th.groups; ++g) {
          store_filter(meta + std::size_t{g} * kGroupMetaBytes, need[g]);
        }
        return true;
      })) {
    ++rebased;
  }
  ASSERT_EQ(rebased, m.stats().tables);
  write_bytes(dir.file("old.idx"), std::vector<char>(image.begin(), image.end()));
  U64Map loaded;
  const Status s = U64Map::load(dir.file("old.idx"), &loaded);
  ASSERT_TRUE(s.ok()) << s.to_string();
  const std::size_t splits = loaded.stats().splits;
  for (std::uint64_t i = 0; i < 40000; ++i) {
    const std::uint64_t k = rng();
    loaded[k] = i;
    model[k] = i;
  }
  EXPECT_GT(loaded.stats().splits, splits);
  EXPECT_GT(loaded.stats().rehashed_keys, 0u);
  ASSERT_EQ(loaded.size(), model.size());
  for (const auto& [k, v] : model) {
    auto it = loaded.find(k);
    ASSERT_NE(it, loaded.end()) << k;
    ASSERT_EQ(it->second, v);
  }
}

TEST(IndexFile, WrongKeyOrValueTypeIsRejected) {
  TempDir dir;
  ASSERT_TRUE(sample_map(100, 1).save(dir.file("a.idx")).ok());
  ExtendibleHashMap<std::uint32_t, std::uint64_t> other;
  const Status s = decltype(other)::load(dir.file("a.idx"), &other);
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.to_string().find("8-byte keys"), std::string::npos) << s.to_string();
}

// verify lists every fault: a table moved onto another's place in the directory leaves both
// an overlap and a gap (here at the directory's end, after the overlap was found).
TEST(IndexFile, VerifyReportsEveryDirectoryOverlapAndGap) {
  namespace f = index_file;
  TempDir dir;
  U64Map m;
  for (std::uint64_t k = 0; k < 20000; ++k) m[k] = k;
  ASSERT_GE(m.stats().global_depth, 2u);
  ASSERT_TRUE(m.save(dir.file("d.idx")).ok());
  const std::vector<char> bytes = read_bytes(dir.file("d.idx"));
  std::string image(bytes.begin(), bytes.end());
  f::FileHeader h;
  std::memcpy(&h, image.data(), sizeof(h));
  std::uint32_t n = 0;
  f::TableHeader first{};
  std::uint64_t last_prefix = 0;
  ASSERT_TRUE(testing_support::damage_a_table(
      &image, [&](f::TableHeader& th, std::uint8_t*, const std::uint16_t*) {
        if (n++ == 0) first = th;
        if (n < h.tables) return false;
        // The last table takes the first one's place.
        last_prefix = th.prefix;
        th.prefix = first.prefix;
        th.local_depth = first.local_depth;
        return true;
      }));
  ASSERT_NE(last_prefix, first.prefix);
  write_bytes(dir.file("d.idx"), std::vector<char>(image.begin(), image.end()));
  IndexFile view;
  ASSERT_TRUE(IndexFile::open(dir.file("d.idx"), &view).ok());
  std::string all;
  for (const IndexFileFault& fault : view.verify()) all += fault.what + "\n";
  EXPECT_NE(all.find("two tables claim directory slot 0"), std::string::npos) << all;
  EXPECT_NE(all.find("no table covers directory slot"), std::string::npos) << all;
  U64Map loaded;
  EXPECT_TRUE(U64Map::load(dir.file("d.idx"), &loaded).is_corruption());
}

// Every byte flipped, one at a time, in a small file: load must refuse each, never crash,
// and leave the output map as it was.
TEST(IndexFile, EveryFlippedByteIsDetected) {
  TempDir dir;
  const std::string path = dir.file("small.idx");
  ASSERT_TRUE(sample_map(60, 5).save(path).ok());
  const std::vector<char> good = read_bytes(path);
  ASSERT_GT(good.size(), 200u);
  U64Map out = sample_map(3, 9);
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xff}) {
      std::vector<char> bad = good;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      write_bytes(path, bad);
      const Status s = U64Map::load(path, &out);
      ASSERT_TRUE(s.is_corruption() || s.is_io_error())
          << "byte " << i << " mask " << int{mask} << ": " << s.to_string();
      ASSERT_EQ(out.size(), sample_map(3, 9).size()) << "a failed load leaves the output alone";
    }
  }
}

TEST(IndexFile, EveryTruncationAndExtensionIsDetected) {
  TempDir dir;
  const std::string path = dir.file("small.idx");
  ASSERT_TRUE(sample_map(60, 5).save(path).ok());
  const std::vector<char> good = read_bytes(path);
  U64Map out;
  for (std::size_t n = 0; n < good.size(); ++n) {
    write_bytes(path, std::vector<char>(good.begin(), good.begin() + static_cast<long>(n)));
    const Status s = U64Map::load(path, &out);
    ASSERT_TRUE(s.is_corruption()) << "length " << n << ": " << s.to_string();
  }
  for (std::size_t extra : {1, 7, 64, 4096}) {
    std::vector<char> longer = good;
    longer.resize(good.size() + extra, 'x');
    write_bytes(path, longer);
    EXPECT_TRUE(U64Map::load(path, &out).is_corruption()) << extra;
  }
}

TEST(IndexFile, ForeignFilesAreRejected) {
  TempDir dir;
  U64Map out;
  EXPECT_TRUE(U64Map::load(dir.file("missing.idx"), &out).is_io_error());
  EXPECT_TRUE(U64Map::load(dir.path(), &out).is_corruption()) << "a directory";
  write_bytes(dir.file("empty"), {});
  EXPECT_TRUE(U64Map::load(dir.file("empty"), &out).is_corruption());
  std::string text = "this is not an index file, just some text\n";
  for (int i = 0; i < 6; ++i) text += text;
  write_bytes(dir.file("text"), std::vector<char>(text.begin(), text.end()));
  const Status s = U64Map::load(dir.file("text"), &out);
  EXPECT_TRUE(s.is_corruption());
  EXPECT_NE(s.to_string().find("not a sisu index file"), std::string::npos) << s.to_string();
  std::vector<char> noise(100000);
  std::mt19937 rng(4);
  for (auto& c : noise) c = static_cast<char>(rng());
  std::memcpy(noise.data(), index_file::kMagic, 8);  // even with the right magic
  write_bytes(dir.file("noise"), noise);
  EXPECT_TRUE(U64Map::load(dir.file("noise"), &out).is_corruption());
}

// A file whose checksums are all valid but whose content is inconsistent (a key copied over
// another, as a buggy or hostile writer might produce) must still be refused.
TEST(IndexFile, ValidChecksumsButInconsistentContentIsRejected) {
  namespace f = index_file;
  TempDir dir;
  const std::string path = dir.file("a.idx");
  ASSERT_TRUE(sample_map(500, 3).save(path).ok());
  std::vector<char> bytes = read_bytes(path);
  // The first table record: find two full slots and copy one key over the other.
  f::TableHeader th;
  std::memcpy(&th, bytes.data() + sizeof(f::FileHeader), sizeof(th));
  char* payload = bytes.data() + sizeof(f::FileHeader) + sizeof(th);
  const std::size_t slot_bytes = sizeof(std::pair<const std::uint64_t, std::uint64_t>);
  using index_internal::kGroupMetaBytes;
  using index_internal::kGroupSlots;
  char* slots = payload + std::size_t{th.groups} * kGroupMetaBytes;
  std::vector<std::size_t> full;
  for (std::size_t i = 0; i < std::size_t{th.groups} * kGroupSlots; ++i) {
    if (static_cast<unsigned char>(payload[(i / kGroupSlots) * kGroupMetaBytes + i % kGroupSlots]) >
        1) {
      full.push_back(i);
    }
  }
  ASSERT_GE(full.size(), 2u);
  std::memcpy(slots + full[1] * slot_bytes, slots + full[0] * slot_bytes, 8);
  const std::size_t payload_bytes =
      std::size_t{th.groups} * (kGroupMetaBytes + kGroupSlots * slot_bytes);
  th.crc = 0;
  th.crc = crc32c::extend(crc32c::value(&th, sizeof(th)), payload, payload_bytes);
  std::memcpy(bytes.data() + sizeof(f::FileHeader), &th, sizeof(th));
  write_bytes(path, bytes);
  U64Map out;
  const Status s = U64Map::load(path, &out);
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_EQ(s.to_string().find("checksum"), std::string::npos)
      << "the checksums are good: the content is what is rejected";
}

// Checksums good, but a group's overflow filter lacks the bit of an entry beyond it, so a
// lookup would stop short of it: load refuses the file rather than lose the entry.
TEST(IndexFile, AFilterThatCutsOffAnEntryIsRejected) {
  TempDir dir;
  const std::string path = dir.file("a.idx");
  ASSERT_TRUE(sample_map(20000, 3).save(path).ok());
  const std::vector<char> bytes = read_bytes(path);
  std::string image(bytes.begin(), bytes.end());
  ASSERT_TRUE(testing_support::cut_off_an_entry(&image));
  write_bytes(path, std::vector<char>(image.begin(), image.end()));
  U64Map out;
  const Status s = U64Map::load(path, &out);
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.to_string().find("overflow filter cuts off entries"), std::string::npos)
      << s.to_string();

  // An entry beyond a group with an empty slot: findable, but the insert fast path (a key
  // not in its home group is absent if that group has an empty slot) would add it twice.
  image.assign(bytes.begin(), bytes.end());
  ASSERT_TRUE(testing_support::gap_before_an_entry(&image));
  write_bytes(path, std::vector<char>(image.begin(), image.end()));
  const Status g = U64Map::load(path, &out);
  EXPECT_TRUE(g.is_corruption()) << g.to_string();
  EXPECT_NE(g.to_string().find("beyond a group with an empty slot"), std::string::npos)
      << g.to_string();
}

// Files of format version 1 (16-slot groups, no overflow filter) still load, from a saved file
// and from a checkpoint, and the next save writes version 2.
TEST(IndexFile, FormatVersion1StillLoads) {
  const auto want = testing_support::v1_fixture_entries();
  for (const char* name : {"format_v1.idx", "format_v1.ckpt"}) {
    U64Map m;
    const Status s = U64Map::load(testing_support::v1_fixture(name), &m);
    ASSERT_TRUE(s.ok()) << name << ": " << s.to_string();
    ASSERT_EQ(m.size(), want.size()) << name;
    for (const auto& [k, v] : want) {
      auto it = m.find(k);
      ASSERT_NE(it, m.end()) << name;
      EXPECT_EQ(it->second, v);
    }
    EXPECT_EQ(m.find(hash_internal::mix64(0, 3)), m.end()) << "erased before the save";
    TempDir dir;
    ASSERT_TRUE(m.save(dir.file("v2.idx")).ok());
    index_file::FileHeader h;
    const std::vector<char> bytes = read_bytes(dir.file("v2.idx"));
    std::memcpy(&h, bytes.data(), sizeof(h));
    EXPECT_EQ(h.format_version, index_file::kFormatVersion);
    U64Map again;
    ASSERT_TRUE(U64Map::load(dir.file("v2.idx"), &again).ok());
    expect_equal(m, again);
  }
  // A damaged version 1 file is still caught: one flipped byte in a slot.
  std::vector<char> bytes = read_bytes(testing_support::v1_fixture("format_v1.idx"));
  bytes[bytes.size() / 2] ^= 0x10;
  TempDir dir;
  write_bytes(dir.file("bad.idx"), bytes);
  U64Map m;
  EXPECT_TRUE(U64Map::load(dir.file("bad.idx"), &m).is_corruption());
}

// The file written by this process is read by another one, whose process seed differs.
TEST(IndexFileChild, DISABLED_LoadAndVerify) {
  const char* path = std::getenv("SISU_TEST_INDEX");
  ASSERT_NE(path, nullptr);
  U64Map m;
  const Status s = U64Map::load(path, &m);
  ASSERT_TRUE(s.ok()) << s.to_string();
  ASSERT_EQ(m.size(), 40000u);
  for (std::uint64_t k = 0; k < 40000; ++k) ASSERT_EQ(m.at(k * 11), k);
  std::printf("child verified %zu entries with process seed %llu\n", m.size(),
              static_cast<unsigned long long>(hash_internal::process_seed()));
}

TEST(IndexFile, AnotherProcessFindsEverySavedKey) {
  TempDir dir;
  const std::string path = dir.file("shared.idx");
  U64Map m;  // the default hasher: this process's random seed
  for (std::uint64_t k = 0; k < 40000; ++k) m[k * 11] = k;
  ASSERT_TRUE(m.save(path).ok());
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  exe[n] = '\0';
  const std::string cmd = "SISU_HASH_SEED=12345 SISU_TEST_INDEX='" + path + "' '" + exe +
                          "' --gtest_also_run_disabled_tests"
                          " --gtest_filter=IndexFileChild.DISABLED_LoadAndVerify 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), pipe) != nullptr) output += buf;
  EXPECT_EQ(::pclose(pipe), 0) << output;
  EXPECT_NE(output.find("child verified 40000 entries with process seed 12345"),
            std::string::npos)
      << output;
}

// A save that fails half way (here: the file size limit, as a full disk would) reports an
// I/O error, leaves the previous file intact and no temporary file behind.
TEST(IndexFile, FailedSaveKeepsThePreviousFile) {
  TempDir dir;
  const std::string path = dir.file("a.idx");
  const U64Map small = sample_map(100, 2);
  ASSERT_TRUE(small.save(path).ok());
  const std::vector<char> before = read_bytes(path);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{64 * 1024, 64 * 1024};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    const Status s = sample_map(200000, 2).save(path);  // ~5 MB: cannot fit
    std::_Exit(s.is_io_error() ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's save must report an I/O error";
  EXPECT_EQ(read_bytes(path), before);
  U64Map loaded;
  ASSERT_TRUE(U64Map::load(path, &loaded).ok());
  expect_equal(small, loaded);
  // No temporary file left beside it.
  std::string listing;
  FILE* ls = ::popen(("ls '" + dir.path() + "'").c_str(), "r");
  char buf[256];
  while (std::fgets(buf, sizeof(buf), ls) != nullptr) listing += buf;
  ::pclose(ls);
  EXPECT_EQ(listing, "a.idx\n");
}

TEST(IndexFile, SaveIntoAMissingDirectoryIsAnIoError) {
  const Status s = sample_map(10, 1).save("/nonexistent-dir/sub/a.idx");
  EXPECT_TRUE(s.is_io_error()) << s.to_string();
}

}  // namespace
}  // namespace sisu
