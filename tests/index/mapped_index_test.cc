// MappedIndex: a saved ExtendibleHashMap queried in place. It must answer every lookup as the
// map did, and damaged bytes must give corruption (at open or at the first touch of a table),
// never a crash and never a wrong value.
#include "index/mapped_index.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "index/extendible_hash_map.h"
#include "tests/index/format_fixtures.h"
#include "tests/temp_path.h"
#include "util/file.h"

namespace sisu {
namespace {

struct StringSink {
  std::string bytes;
  Status append(const void* p, std::size_t n) {
    bytes.append(static_cast<const char*>(p), n);
    return Status::OK();
  }
};

template <class Map>
std::string image_of(const Map& m) {
  StringSink sink;
  EXPECT_TRUE(m.write_to(sink).ok());
  return sink.bytes;
}

using Map = ExtendibleHashMap<std::uint64_t, std::uint64_t>;
using View = MappedIndex<std::uint64_t, std::uint64_t>;

Map make_map(std::uint64_t n, std::uint64_t seed = 3) {
  Map m(0, Hash<std::uint64_t>(seed));
  for (std::uint64_t k = 0; k < n; ++k) m[k * 0x9e3779b97f4a7c15ULL] = k;
  for (std::uint64_t k = 0; k < n; k += 7) m.erase(k * 0x9e3779b97f4a7c15ULL);
  return m;
}

TEST(MappedIndex, AnswersAsTheMapDid) {
  for (std::uint64_t n : {0ull, 1ull, 100ull, 5000ull, 200000ull}) {
    const Map m = make_map(n);
    const std::string img = image_of(m);
    View v;
    ASSERT_TRUE(View::open(img.data(), img.size(), "img", &v).ok()) << n;
    EXPECT_EQ(v.size(), m.size());
    EXPECT_EQ(v.global_depth(), m.stats().global_depth);
    for (std::uint64_t k = 0; k < n; ++k) {
      std::uint64_t got = ~0ull;
      const Status s = v.find(k * 0x9e3779b97f4a7c15ULL, &got);
      if (k % 7 == 0) {
        ASSERT_TRUE(s.is_not_found()) << k;
      } else {
        ASSERT_TRUE(s.ok()) << k << " " << s.to_string();
        ASSERT_EQ(got, k);
      }
    }
    std::uint64_t x;
    EXPECT_TRUE(v.find(12345, &x).is_not_found());
    std::set<std::uint64_t> seen;
    ASSERT_TRUE(v.for_each([&](std::uint64_t k, std::uint64_t val) {
                   EXPECT_TRUE(seen.insert(k).second);
                   EXPECT_EQ(m.at(k), val);
                 }).ok());
    EXPECT_EQ(seen.size(), m.size());
  }
}

// A hash with one value: no split separates the keys, so the map chains overflow tables.
struct ConstantHash {
  std::uint64_t operator()(std::uint64_t) const { return 0x5555555555555555ULL; }
};

TEST(MappedIndex, OverflowChainsFromAConstantHash) {
  ExtendibleHashMap<std::uint64_t, std::uint64_t, ConstantHash> m;
  for (std::uint64_t k = 0; k < 6000; ++k) m[k] = k + 1;
  ASSERT_GT(m.stats().overflow_tables, 0u);
  const std::string img = image_of(m);
  MappedIndex<std::uint64_t, std::uint64_t, ConstantHash> v;
  ASSERT_TRUE(decltype(v)::open(img.data(), img.size(), "img", &v).ok());
  for (std::uint64_t k = 0; k < 6000; ++k) {
    std::uint64_t got = 0;
    const Status s = v.find(k, &got);
    ASSERT_TRUE(s.ok()) << k << " " << s.to_string();
    ASSERT_EQ(got, k + 1);
  }
  std::uint64_t got;
  EXPECT_TRUE(v.find(6000, &got).is_not_found());
  // A seeded file is refused by a seedless hasher, and the other way round.
  const std::string seeded = image_of(make_map(10));
  EXPECT_TRUE(decltype(v)::open(seeded.data(), seeded.size(), "s", &v).is_corruption());
  View w;
  EXPECT_TRUE(View::open(img.data(), img.size(), "img", &w).is_corruption());
}

TEST(MappedIndex, RefusesOtherTypes) {
  const std::string img = image_of(make_map(100));
  MappedIndex<std::uint32_t, std::uint64_t> a;
  EXPECT_TRUE(decltype(a)::open(img.data(), img.size(), "img", &a).is_corruption());
  MappedIndex<std::uint64_t, std::uint32_t> b;
  EXPECT_TRUE(decltype(b)::open(img.data(), img.size(), "img", &b).is_corruption());
}

// Every damage: a flipped byte anywhere, a truncation, garbage. Open fails with corruption,
// or lookups answer right or report corruption; a wrong value is a failure.
TEST(MappedIndex, DamageNeverGivesAWrongValue) {
  const Map m = make_map(3000);
  const std::string img = image_of(m);
  std::mt19937_64 rng(5);
  int open_failed = 0, find_failed = 0;
  for (std::size_t at = 0; at < img.size(); at += 1 + rng() % 61) {
    std::string bad = img;
    bad[at] = static_cast<char>(bad[at] ^ (1 << (rng() % 8)));
    View v;
    Status s = View::open(bad.data(), bad.size(), "bad", &v);
    if (!s.ok()) {
      ASSERT_TRUE(s.is_corruption()) << s.to_string();
      ++open_failed;
      continue;
    }
    for (std::uint64_t k = 0; k < 3000; ++k) {
      std::uint64_t got = ~0ull;
      s = v.find(k * 0x9e3779b97f4a7c15ULL, &got);
      if (s.is_corruption()) {
        ++find_failed;
        continue;
      }
      if (k % 7 == 0) {
        ASSERT_TRUE(s.is_not_found()) << "flip at " << at << " key " << k;
      } else {
        ASSERT_TRUE(s.ok()) << "flip at " << at << " key " << k << ": " << s.to_string();
        ASSERT_EQ(got, k) << "flip at " << at << " gave a wrong value";
      }
    }
  }
  EXPECT_GT(open_failed, 0);
  EXPECT_GT(find_failed, 0);
  for (std::size_t len : {std::size_t{0}, std::size_t{10}, std::size_t{95}, img.size() / 2,
                          img.size() - 1}) {
    View v;
    EXPECT_TRUE(View::open(img.data(), len, "short", &v).is_corruption()) << len;
  }
  std::string garbage(img.size(), '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  View v;
  EXPECT_TRUE(View::open(garbage.data(), garbage.size(), "garbage", &v).is_corruption());
}

// An empty index is a header and a footer. Bytes between them, which no checksum covers,
// and a header claiming a directory without tables are corruption, for the view and for
// the map's load alike (IndexFile::verify already said so).
TEST(MappedIndex, AnEmptyIndexIsOnlyAHeaderAndAFooter) {
  namespace f = index_file;
  const std::string img = image_of(Map());
  ASSERT_EQ(img.size(), sizeof(f::FileHeader) + sizeof(f::Footer));
  View v;
  ASSERT_TRUE(View::open(img.data(), img.size(), "img", &v).ok());

  std::string padded = img;
  padded.insert(sizeof(f::FileHeader), std::string(64, 'x'));
  f::Footer ft;
  std::memcpy(&ft, padded.data() + padded.size() - sizeof(ft), sizeof(ft));
  ft.body_bytes += 64;
  ft.crc = crc32c::value(&ft, offsetof(f::Footer, crc));
  std::memcpy(padded.data() + padded.size() - sizeof(ft), &ft, sizeof(ft));

  std::string deep = img;
  f::FileHeader h;
  std::memcpy(&h, deep.data(), sizeof(h));
  h.global_depth = 2;
  h.crc = crc32c::value(&h, offsetof(f::FileHeader, crc));
  std::memcpy(deep.data(), &h, sizeof(h));

  const std::string path = testing_support::test_temp_path("sisu_empty_index");
  for (const std::string* bad : {&padded, &deep}) {
    const Status opened = View::open(bad->data(), bad->size(), "bad", &v);
    EXPECT_TRUE(opened.is_corruption()) << opened.to_string();
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(bad->data(), static_cast<std::streamsize>(bad->size()));
      ASSERT_TRUE(out.good());
    }
    Map loaded;
    const Status s = Map::load(path, &loaded);
    EXPECT_TRUE(s.is_corruption()) << s.to_string();
  }
  std::remove(path.c_str());
}

// Checksums good, but an overflow filter hides an entry: the table answers corruption, never
// "not found" for a key that is there.
TEST(MappedIndex, AFilterThatCutsOffAnEntryIsCorruption) {
  const Map m = make_map(20000);
  std::string img = image_of(m);
  ASSERT_TRUE(testing_support::cut_off_an_entry(&img));
  View v;
  ASSERT_TRUE(View::open(img.data(), img.size(), "img", &v).ok()) << "tables are checked on touch";
  std::size_t corrupt = 0;
  for (std::uint64_t k = 0; k < 20000; ++k) {
    std::uint64_t got = 0;
    const Status s = v.find(k * 0x9e3779b97f4a7c15ULL, &got);
    if (s.is_corruption()) {
      ++corrupt;
    } else if (k % 7 != 0) {
      ASSERT_TRUE(s.ok()) << k << ": " << s.to_string();
      ASSERT_EQ(got, k);
    }
  }
  EXPECT_GT(corrupt, 0u) << "the damaged table must refuse to answer";

  img = image_of(m);
  ASSERT_TRUE(testing_support::gap_before_an_entry(&img));
  ASSERT_TRUE(View::open(img.data(), img.size(), "img", &v).ok());
  corrupt = 0;
  for (std::uint64_t k = 0; k < 20000; ++k) {
    std::uint64_t got = 0;
    corrupt += v.find(k * 0x9e3779b97f4a7c15ULL, &got).is_corruption();
  }
  EXPECT_GT(corrupt, 0u) << "an entry beyond a group with an empty slot is refused too";
}

// A file of format version 1 (16-slot groups, probes stop at an empty slot) is read in place:
// engine table files written before version 2 stay readable.
TEST(MappedIndex, ReadsFormatVersion1) {
  FileReader r;
  ASSERT_TRUE(r.open(testing_support::v1_fixture("format_v1.idx")).ok());
  std::string img(r.size(), '\0');
  ASSERT_TRUE(r.read_at(0, img.data(), img.size()).ok());
  View v;
  const Status s = View::open(img.data(), img.size(), "v1", &v);
  ASSERT_TRUE(s.ok()) << s.to_string();
  const auto want = testing_support::v1_fixture_entries();
  EXPECT_EQ(v.size(), want.size());
  for (std::uint64_t i = 0; i < 3000; ++i) {
    const std::uint64_t k = hash_internal::mix64(i, 3);
    std::uint64_t got = 0;
    const Status f = v.find(k, &got);
    if (i % 7 == 0) {
      EXPECT_TRUE(f.is_not_found()) << i;
    } else {
      ASSERT_TRUE(f.ok()) << i << ": " << f.to_string();
      EXPECT_EQ(got, i);
    }
  }
  std::size_t seen = 0;
  ASSERT_TRUE(v.for_each([&](std::uint64_t k, std::uint64_t val) {
                 EXPECT_EQ(want.at(k), val);
                 ++seen;
               }).ok());
  EXPECT_EQ(seen, want.size());
}

// First touches race: several threads verify the same tables at once (TSan checks it).
TEST(MappedIndex, ConcurrentFirstTouch) {
  const Map m = make_map(20000);
  const std::string img = image_of(m);
  View v;
  ASSERT_TRUE(View::open(img.data(), img.size(), "img", &v).ok());
  std::vector<std::thread> ts;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (std::uint64_t k = 1; k < 20000; k += 3) {
        std::uint64_t got = 0;
        if (k % 7 != 0 && (!v.find(k * 0x9e3779b97f4a7c15ULL, &got).ok() || got != k)) ++wrong;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace sisu
