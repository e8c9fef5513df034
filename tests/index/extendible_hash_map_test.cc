#include "index/extendible_hash_map.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sisu {
namespace {

using U64Map = ExtendibleHashMap<std::uint64_t, std::uint64_t>;

// Checks that the map holds exactly the model's entries, by iteration and by lookup, and
// that its stats agree with what it holds.
template <class Map, class Model>
void expect_same(const Map& m, const Model& model) {
  ASSERT_EQ(m.size(), model.size());
  ASSERT_EQ(m.empty(), model.empty());
  std::size_t seen = 0;
  for (const auto& [k, v] : m) {
    auto it = model.find(k);
    ASSERT_NE(it, model.end()) << "iteration yields a key the model lacks";
    ASSERT_EQ(v, it->second);
    ++seen;
  }
  ASSERT_EQ(seen, model.size()) << "iteration visits every entry exactly once";
  for (const auto& [k, v] : model) {
    auto it = m.find(k);
    ASSERT_NE(it, m.end());
    ASSERT_EQ(it->second, v);
  }
  const IndexStats s = m.stats();
  ASSERT_EQ(s.size, model.size());
  if (s.capacity > 0) {
    ASSERT_DOUBLE_EQ(s.load_factor, static_cast<double>(s.size) / static_cast<double>(s.capacity));
  }
  ASSERT_EQ(std::accumulate(s.local_depth_histogram.begin(), s.local_depth_histogram.end(),
                            std::size_t{0}),
            s.tables);
}

// Random operations against std::unordered_map, in phases: grow, erase most (the map must
// shrink: merges and directory halvings), then mixed.
TEST(ExtendibleHashMap, ModelU64ThroughGrowAndShrink) {
  U64Map m;
  std::unordered_map<std::uint64_t, std::uint64_t> model;
  std::mt19937_64 rng(42);
  auto key = [&] { return rng() % 400000; };
  auto step = [&](int insert_pct) {
    const std::uint64_t k = key();
    const int op = static_cast<int>(rng() % 100);
    if (op < insert_pct) {
      const std::uint64_t v = rng();
      switch (rng() % 4) {
        case 0:
          m[k] = v;
          model[k] = v;
          break;
        case 1: {
          auto [it, inserted] = m.insert({k, v});
          auto [mit, minserted] = model.insert({k, v});
          ASSERT_EQ(inserted, minserted);
          ASSERT_EQ(it->second, mit->second);
          break;
        }
        case 2: {
          auto [it, inserted] = m.insert_or_assign(k, v);
          model.insert_or_assign(k, v);
          ASSERT_EQ(it->first, k);
          ASSERT_EQ(it->second, v);
          (void)inserted;
          break;
        }
        default: {
          auto [it, inserted] = m.try_emplace(k, v);
          auto [mit, minserted] = model.try_emplace(k, v);
          ASSERT_EQ(inserted, minserted);
          ASSERT_EQ(it->second, mit->second);
        }
      }
    } else if (op < insert_pct + 25) {
      ASSERT_EQ(m.erase(k), model.erase(k));
    } else {
      auto it = m.find(k);
      auto mit = model.find(k);
      ASSERT_EQ(it == m.end(), mit == model.end());
      if (mit != model.end()) {
        ASSERT_EQ(it->second, mit->second);
      }
      ASSERT_EQ(m.contains(k), mit != model.end());
      ASSERT_EQ(m.count(k), model.count(k));
    }
  };
  for (int i = 0; i < 600000; ++i) step(70);  // grow
  expect_same(m, model);
  const IndexStats grown = m.stats();
  EXPECT_GT(grown.splits, 0u);
  EXPECT_GT(grown.global_depth, 3u);

  // Erase almost everything, then insert a little: inserts into emptied tables merge them.
  std::vector<std::uint64_t> keys;
  for (const auto& [k, v] : model) keys.push_back(k);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i % 50 != 0) {
      ASSERT_EQ(m.erase(keys[i]), 1u);
      model.erase(keys[i]);
    }
  }
  expect_same(m, model);
  for (int i = 0; i < 100000; ++i) step(30);  // erase-heavy mixed
  expect_same(m, model);
  const IndexStats shrunk = m.stats();
  EXPECT_GT(shrunk.merges, 0u) << "emptied buddies merged";
  EXPECT_GT(shrunk.directory_halvings, 0u);
  EXPECT_LT(shrunk.global_depth, grown.global_depth);
  EXPECT_LT(shrunk.memory_bytes, grown.memory_bytes / 4);

  for (int i = 0; i < 300000; ++i) step(55);  // mixed
  expect_same(m, model);
}

TEST(ExtendibleHashMap, ShrinkToFitMergesEverythingItCan) {
  U64Map m;
  for (std::uint64_t k = 0; k < 200000; ++k) m[k] = k;
  const std::size_t big = m.memory_bytes();
  for (std::uint64_t k = 0; k < 200000; ++k) {
    if (k % 100 != 0) m.erase(k);
  }
  EXPECT_EQ(m.memory_bytes(), big) << "erase never moves or frees tables";
  m.shrink_to_fit();
  EXPECT_EQ(m.size(), 2000u);
  for (std::uint64_t k = 0; k < 200000; k += 100) ASSERT_EQ(m.at(k), k);
  const IndexStats s = m.stats();
  EXPECT_LT(s.memory_bytes, big / 50);
  EXPECT_GT(s.load_factor, 0.5);
  m.clear();
  m.shrink_to_fit();
  EXPECT_EQ(m.memory_bytes(), sizeof(m)) << "an empty map holds nothing";
}

// An insert/erase cycle at a growth boundary must not split and merge back and forth.
TEST(ExtendibleHashMap, NoThrashAtABoundary) {
  U64Map m;
  std::uint64_t k = 0;
  while (m.stats().splits == 0) m[k++] = 0;  // just past the first split
  const IndexStats before = m.stats();
  for (int round = 0; round < 2000; ++round) {
    m.erase(k - 1);
    m[k - 1] = 0;
  }
  const IndexStats after = m.stats();
  EXPECT_EQ(after.splits, before.splits);
  EXPECT_EQ(after.merges, before.merges);
  EXPECT_EQ(after.grows, before.grows);
  EXPECT_EQ(after.shrinks, before.shrinks);
}

// A steady state of erases and inserts (a cache, a memtable index) keeps tombstones and
// memory bounded: full tables are rebuilt without them instead of growing.
TEST(ExtendibleHashMap, TombstonesDoNotAccumulate) {
  U64Map m;
  std::vector<std::uint64_t> live;
  std::uint64_t next = 0;
  for (; next < 20000; ++next) {
    m[next] = next;
    live.push_back(next);
  }
  std::mt19937_64 rng(8);
  std::size_t worst_memory = 0;
  for (int round = 0; round < 400000; ++round) {
    const std::size_t i = rng() % live.size();
    ASSERT_EQ(m.erase(live[i]), 1u);
    live[i] = next;
    m[next] = next;
    ++next;
    if (round % 20000 == 0) {
      const IndexStats s = m.stats();
      ASSERT_LE(s.tombstones, s.capacity / 4) << "round " << round;
      if (round >= 100000) worst_memory = std::max(worst_memory, s.memory_bytes);
    }
  }
  const IndexStats s = m.stats();
  EXPECT_EQ(s.size, 20000u);
  EXPECT_GT(s.cleanups, 0u);
  EXPECT_LT(worst_memory, 20000u * 40) << "memory stays proportional to the live entries";
}

TEST(ExtendibleHashMap, StringKeysWithStringViewLookup) {
  ExtendibleHashMap<std::string, int> m;
  std::unordered_map<std::string, int> model;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    // Short keys (SSO) and long ones (heap), so that moves copy both kinds.
    std::string k = std::to_string(rng() % 50000);
    if (rng() % 3 == 0) k += std::string(40, 'x');
    const int op = static_cast<int>(rng() % 10);
    if (op < 6) {
      m[k] = i;
      model[k] = i;
    } else if (op < 8) {
      ASSERT_EQ(m.erase(std::string_view(k)), model.erase(k));
    } else {
      const std::string_view view(k);
      ASSERT_EQ(m.contains(view), model.count(k) == 1);
      auto it = m.find(view);
      if (it != m.end()) {
        ASSERT_EQ(it->second, model.at(k));
      }
    }
  }
  expect_same(m, model);
}

struct Point {
  int x, y;
  bool operator==(const Point&) const = default;
};
struct PointHash {
  std::size_t operator()(const Point& p) const {
    return hash_internal::mix64(static_cast<std::uint32_t>(p.x) * 0x100000001ULL ^
                                    static_cast<std::uint32_t>(p.y),
                                17);
  }
};
struct PointModelHash {
  std::size_t operator()(const Point& p) const { return PointHash{}(p); }
};

TEST(ExtendibleHashMap, StructKeyWithCustomHash) {
  ExtendibleHashMap<Point, std::string, PointHash, std::equal_to<Point>> m;
  std::unordered_map<Point, std::string, PointModelHash> model;
  std::mt19937 rng(3);
  for (int i = 0; i < 100000; ++i) {
    const Point p{static_cast<int>(rng() % 300) - 150, static_cast<int>(rng() % 300)};
    if (rng() % 4 != 0) {
      m[p] = std::to_string(i);
      model[p] = std::to_string(i);
    } else {
      ASSERT_EQ(m.erase(p), model.erase(p));
    }
  }
  expect_same(m, model);
}

TEST(ExtendibleHashMap, EraseWhileIteratingVisitsEachEntryOnce) {
  U64Map m;
  for (std::uint64_t k = 0; k < 50000; ++k) m[k] = k;
  std::set<std::uint64_t> visited;
  for (auto it = m.begin(); it != m.end();) {
    ASSERT_TRUE(visited.insert(it->first).second) << "visited twice";
    if (it->first % 3 != 0) {
      it = m.erase(it);
    } else {
      ++it;
    }
  }
  EXPECT_EQ(visited.size(), 50000u);
  EXPECT_EQ(m.size(), 16667u);
  for (const auto& [k, v] : m) ASSERT_EQ(k % 3, 0u);
}

TEST(ExtendibleHashMap, EraseKeepsOtherIteratorsValid) {
  U64Map m;
  for (std::uint64_t k = 0; k < 20000; ++k) m[k] = k * 2;
  std::vector<U64Map::iterator> its;
  for (std::uint64_t k = 0; k < 20000; k += 2) its.push_back(m.find(k));
  for (std::uint64_t k = 1; k < 20000; k += 2) m.erase(k);  // the odd ones
  for (auto it : its) {
    ASSERT_EQ(it->second, it->first * 2);  // still valid, still pointing to its entry
    it->second += 1;
  }
  for (std::uint64_t k = 0; k < 20000; k += 2) ASSERT_EQ(m.at(k), k * 2 + 1);
}

TEST(ExtendibleHashMap, EmptyMapBehaves) {
  U64Map m;
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.begin(), m.end());
  EXPECT_EQ(m.find(1), m.end());
  EXPECT_FALSE(m.contains(0));
  EXPECT_EQ(m.erase(5), 0u);
  EXPECT_THROW(m.at(3), std::out_of_range);
  EXPECT_EQ(m.memory_bytes(), sizeof(m)) << "a new map allocates nothing";
  const IndexStats s = m.stats();
  EXPECT_EQ(s.tables, 0u);
  EXPECT_EQ(s.load_factor, 0.0);
}

TEST(ExtendibleHashMap, SmallMapsStaySmall) {
  U64Map m;
  for (std::uint64_t k = 0; k < 7; ++k) m[k] = k;
  const IndexStats s = m.stats();
  EXPECT_EQ(s.tables, 1u);
  EXPECT_EQ(s.global_depth, 0u);
  EXPECT_LE(s.capacity, 16u);
  EXPECT_LE(s.memory_bytes, sizeof(m) + 512) << "no directory, one tiny table";
}

TEST(ExtendibleHashMap, CopyAndMove) {
  ExtendibleHashMap<std::string, std::string> a;
  for (int i = 0; i < 30000; ++i) a[std::to_string(i)] = std::string(i % 50, 'v');
  for (int i = 0; i < 30000; i += 7) a.erase(std::to_string(i));  // tombstones too

  ExtendibleHashMap<std::string, std::string> b = a;  // copy
  ASSERT_EQ(b.size(), a.size());
  for (const auto& [k, v] : a) ASSERT_EQ(b.at(k), v);
  b["new"] = "x";
  b.erase("1");
  EXPECT_FALSE(a.contains("new"));
  EXPECT_TRUE(a.contains("1"));

  const std::size_t n = a.size();
  ExtendibleHashMap<std::string, std::string> c = std::move(a);  // move
  EXPECT_EQ(c.size(), n);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): documented state
  a["again"] = "usable after move";
  EXPECT_EQ(a.size(), 1u);

  c = b;  // copy assign
  EXPECT_EQ(c.size(), b.size());
  c = c;  // self
  EXPECT_EQ(c.size(), b.size());
  b = std::move(c);
  EXPECT_TRUE(b.contains("new"));
  b.swap(a);
  EXPECT_EQ(b.size(), 1u);
  EXPECT_TRUE(a.contains("new"));

  U64Map small;
  small[1] = 1;  // a map with the inline directory
  U64Map moved = std::move(small);
  EXPECT_EQ(moved.at(1), 1u);
  moved[2] = 2;
  EXPECT_EQ(moved.size(), 2u);
}

// A large directory doubles into an array allocated and touched ahead of need (so that the
// doubling is a copy into warm memory, not a run of page faults); the map accounts for it, a
// copy starts without one, a move takes it along and clear() frees it.
TEST(ExtendibleHashMap, DirectoryDoublesIntoAWarmedSpare) {
  constexpr std::uint64_t kN = 1'100'000;  // global depth 11: doubled through a spare
  auto key = [](std::uint64_t i) { return hash_internal::mix64(i, 7); };
  U64Map m;
  for (std::uint64_t i = 0; i < kN; ++i) m[key(i)] = i;
  IndexStats s = m.stats();
  ASSERT_GE(s.global_depth, 11u);
  ASSERT_GE(s.directory_doublings, 11u);
  EXPECT_GE(s.warm_directory_doublings, 1u) << "1024 -> 2048 entries went into the spare";
  const std::size_t dir = (std::size_t{16} << s.global_depth);
  EXPECT_EQ(s.directory_bytes, dir + 2 * dir) << "the directory and its warmed successor";
  for (std::uint64_t i = 0; i < kN; ++i) {
    auto it = m.find(key(i));
    ASSERT_NE(it, m.end()) << i;
    ASSERT_EQ(it->second, i);
  }

  U64Map copy = m;
  EXPECT_EQ(copy.stats().directory_bytes, dir) << "a copy starts without a spare";
  EXPECT_EQ(copy.memory_bytes() + 2 * dir, m.memory_bytes());
  for (std::uint64_t i = kN; i < 2 * kN; ++i) copy[key(i)] = i;  // grows past a doubling
  EXPECT_EQ(copy.size(), 2 * kN);
  EXPECT_EQ(copy.at(key(2 * kN - 1)), 2 * kN - 1);
  EXPECT_EQ(copy.at(key(0)), 0u);

  const std::size_t bytes = m.memory_bytes();
  U64Map moved = std::move(m);
  EXPECT_EQ(moved.memory_bytes(), bytes) << "the spare moves along";
  EXPECT_EQ(m.memory_bytes(), sizeof(m));  // NOLINT(bugprone-use-after-move): moved-from is empty
  moved[key(kN)] = kN;
  EXPECT_EQ(moved.at(key(kN)), kN);

  moved.clear();
  EXPECT_EQ(moved.memory_bytes(), sizeof(moved)) << "clear frees the spare too";
  EXPECT_EQ(moved.stats().directory_bytes, 0u);
}

struct LowByteOnlyHash {
  using is_avalanching = void;  // so the map does not mix it
  std::uint64_t operator()(std::uint64_t k) const { return hash_internal::mix64(k, 9) & 0xff; }
};

// stats().mean_miss_probe_groups: groups a lookup of an absent key scans. One in a map whose
// groups all have an empty slot; short in a map built for its size; and with a constant hash
// (every key in one overflow chain) at least one group in every table of the chain.
TEST(ExtendibleHashMap, MissProbeLengthIsReported) {
  U64Map tiny;
  for (std::uint64_t k = 0; k < 10; ++k) tiny[k] = k;
  EXPECT_EQ(tiny.stats().mean_miss_probe_groups, 1.0);

  constexpr std::size_t kN = 100000;
  U64Map hinted(kN);
  for (std::uint64_t k = 0; k < kN; ++k) hinted[hash_internal::mix64(k, 3)] = k;
  const IndexStats h = hinted.stats();
  EXPECT_GE(h.mean_miss_probe_groups, 1.0);
  EXPECT_LT(h.mean_miss_probe_groups, 1.5) << "tables at ~0.7 load end most misses at home";

  // Grown without a hint, tables sit up to 15/16 full; the overflow filters still end most
  // misses at home (it was 2.6 groups per miss before them, docs/benchmarks.md).
  U64Map grown;
  for (std::uint64_t k = 0; k < kN; ++k) grown[hash_internal::mix64(k, 3)] = k;
  const IndexStats g = grown.stats();
  EXPECT_LT(g.mean_miss_probe_groups, 1.6) << "overflow filters stop misses early";
  for (std::uint64_t k = kN; k < 2 * kN; ++k) {
    ASSERT_EQ(grown.find(hash_internal::mix64(k, 3)), grown.end());
  }

  // Only the low byte (the tophash) varies: no split can separate keys, so they chain, and
  // each table of the chain looks like an ordinary full table (a miss scans ~2 groups).
  ExtendibleHashMap<std::uint64_t, std::uint64_t, LowByteOnlyHash> chained;
  for (std::uint64_t k = 0; k < 20000; ++k) chained[k] = k;
  const IndexStats c = chained.stats();
  ASSERT_GE(c.overflow_tables, 8u);
  EXPECT_GT(c.mean_miss_probe_groups, static_cast<double>(c.overflow_tables + 1))
      << "a miss scans every table of the chain";
}

TEST(ExtendibleHashMap, SizeHintAvoidsAllGrowth) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{100},
                        std::size_t{1000}, std::size_t{12345}, std::size_t{100000},
                        std::size_t{1000000}}) {
    for (bool sequential : {true, false}) {
      U64Map m(n);
      std::mt19937_64 rng(n);
      for (std::size_t i = 0; i < n; ++i) m[sequential ? i : rng()] = i;
      const IndexStats s = m.stats();
      EXPECT_EQ(s.size, n);
      EXPECT_EQ(s.splits + s.grows + s.directory_doublings, 0u)
          << "n=" << n << (sequential ? " sequential" : " random");
      if (n >= 1000) {
        // Close to the minimum: no power-of-two rounding of the total.
        EXPECT_GT(s.load_factor, 0.6) << n;
      }
    }
  }
}

TEST(ExtendibleHashMap, ReserveOnAFilledMap) {
  U64Map m;
  for (std::uint64_t k = 0; k < 1000; ++k) m[k] = k;
  m.reserve(200000);
  const IndexStats before = m.stats();
  for (std::uint64_t k = 1000; k < 200000; ++k) m[k] = k;
  const IndexStats after = m.stats();
  EXPECT_EQ(after.splits, before.splits);
  EXPECT_EQ(after.grows, before.grows);
  for (std::uint64_t k = 0; k < 200000; k += 997) ASSERT_EQ(m.at(k), k);
}

// Values of ~1 KiB and more: slots so large that no slab class is exactly two groups. The
// largest table must still hold two (a one-group table is full at 14 entries, and a size
// hint used to look forever for tables that fit their share plus 16). Sized maps, reserve,
// growth, erase and shrink_to_fit all work, and the hint still avoids growth.
template <std::size_t kBytes>
void check_large_values() {
  using Value = std::array<std::uint8_t, kBytes>;
  auto value_of = [](std::uint64_t k) {
    Value v;
    v.fill(static_cast<std::uint8_t>(k * 131));
    v.front() = static_cast<std::uint8_t>(k);
    return v;
  };
  using Map = ExtendibleHashMap<std::uint64_t, Value>;
  for (std::size_t n : {std::size_t{1}, std::size_t{10}, std::size_t{300}}) {
    Map m(n);
    for (std::uint64_t k = 0; k < n; ++k) m.try_emplace(k, value_of(k));
    const IndexStats s = m.stats();
    EXPECT_EQ(s.size, n);
    EXPECT_EQ(s.splits + s.grows + s.directory_doublings, 0u) << kBytes << " bytes, n=" << n;
  }
  Map m;
  std::unordered_map<std::uint64_t, Value> model;
  for (std::uint64_t k = 0; k < 400; ++k) {
    m.try_emplace(k, value_of(k));
    model.emplace(k, value_of(k));
  }
  m.reserve(1000);  // rebuilds a filled map through a sized one
  for (std::uint64_t k = 0; k < 400; k += 2) {
    m.erase(k);
    model.erase(k);
  }
  m.shrink_to_fit();
  ASSERT_EQ(m.size(), model.size());
  for (const auto& [k, v] : model) {
    auto it = m.find(k);
    ASSERT_NE(it, m.end()) << k;
    EXPECT_EQ(it->second, v) << k;
  }
  EXPECT_FALSE(m.contains(0));
}

TEST(ExtendibleHashMap, LargeValuesGrowAndTakeSizeHints) {
  check_large_values<1096>();  // 1104-byte slots: the largest table needs the class past 32 KiB
  check_large_values<2200>();  // one group alone is over 32 KiB
  check_large_values<7992>();  // the largest slot allowed (8000 bytes)
}

// A little more room than the map has: the total slots would hold it, but tables that are
// nearly full would still grow, and tables that have seen erases would shrink or merge at the
// next insert. reserve keeps its promise: the inserts grow, split, shrink and merge nothing.
TEST(ExtendibleHashMap, ReserveALittleMoreOnAFilledMap) {
  for (std::size_t n : {std::size_t{5000}, std::size_t{100000}}) {
    for (bool erase : {false, true}) {
      U64Map m;
      std::mt19937_64 rng(n);
      std::vector<std::uint64_t> keys;
      for (std::size_t i = 0; i < n; ++i) {
        keys.push_back(rng());
        m[keys.back()] = i;
      }
      // Erase ~80% of the keys: every table is left under a quarter full, and its next insert
      // would shrink it or merge it with its buddy.
      if (erase) {
        for (std::size_t i = 0; i < n; i += 1 + (i % 64 < 48 ? 0 : 5)) m.erase(keys[i]);
      }
      const std::size_t target = m.size() + n / 10;
      m.reserve(target);
      const IndexStats before = m.stats();
      while (m.size() < target) m[rng()] = 0;
      const IndexStats after = m.stats();
      const std::string what = std::to_string(n) + (erase ? " with erases" : "");
      EXPECT_EQ(after.splits, before.splits) << what;
      EXPECT_EQ(after.grows, before.grows) << what;
      EXPECT_EQ(after.shrinks, before.shrinks) << what;
      EXPECT_EQ(after.merges, before.merges) << what;
      EXPECT_EQ(after.directory_doublings, before.directory_doublings) << what;
    }
  }
}

// A map with room everywhere: reserve moves nothing (no rebuild of the whole map).
TEST(ExtendibleHashMap, ReserveWithRoomEverywhereMovesNothing) {
  U64Map m(100000);
  std::mt19937_64 rng(11);
  std::vector<std::pair<std::uint64_t, const std::uint64_t*>> where;
  for (int i = 0; i < 50000; ++i) {
    const std::uint64_t k = rng();
    m[k] = k;
    if (i % 97 == 0) where.push_back({k, &m.find(k)->second});
  }
  const IndexStats before = m.stats();
  m.reserve(60000);
  const IndexStats after = m.stats();
  EXPECT_EQ(after.grows + after.splits + after.cleanups,
            before.grows + before.splits + before.cleanups);
  for (const auto& [k, p] : where) ASSERT_EQ(&m.find(k)->second, p) << k;
}

TEST(ExtendibleHashMap, SequentialKeysSpreadEvenly) {
  U64Map m;
  for (std::uint64_t k = 0; k < 300000; ++k) m[k] = k;
  const IndexStats s = m.stats();
  // Every table sits at one of at most three adjacent depths.
  std::size_t lo = s.local_depth_histogram.size(), hi = 0;
  for (std::size_t d = 0; d < s.local_depth_histogram.size(); ++d) {
    if (s.local_depth_histogram[d] > 0) {
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
  }
  EXPECT_LE(hi - lo, 2u);
  EXPECT_EQ(s.overflow_tables, 0u);
  EXPECT_LT(s.mean_probe_groups, 1.5);
}

// --- hostile hashes --------------------------------------------------------------------------

// Hostile hashers claim to avalanche, so that the map takes their output as it is.
struct ConstantHash {
  using is_avalanching = void;
  std::size_t operator()(std::uint64_t) const { return 0x1234567890abcdefULL; }
};
struct FewValuesHash {  // four distinct values that differ only in their low bits
  using is_avalanching = void;
  std::size_t operator()(std::uint64_t k) const { return k % 4; }
};
struct TopBitsZeroHash {  // small keys: every bit the directory reads is zero
  using is_avalanching = void;
  std::size_t operator()(std::uint64_t k) const { return k; }
};
struct IdentityHash {  // std::hash on libstdc++, which does not claim to avalanche
  std::size_t operator()(std::uint64_t k) const { return k; }
};

template <class H>
void check_hostile(std::size_t n) {
  ExtendibleHashMap<std::uint64_t, std::uint64_t, H> m;
  std::unordered_map<std::uint64_t, std::uint64_t> model;
  for (std::uint64_t k = 0; k < n; ++k) {
    m[k * 7] = k;
    model[k * 7] = k;
  }
  for (std::uint64_t k = 0; k < n; k += 3) {
    ASSERT_EQ(m.erase(k * 7), 1u);
    model.erase(k * 7);
  }
  expect_same(m, model);
  const IndexStats s = m.stats();
  EXPECT_LE(s.global_depth, 12u) << "the directory stops doubling";
  EXPECT_LT(s.memory_bytes, n * 64) << "memory stays proportional to the entries";
  EXPECT_FALSE(m.contains(1));
}

TEST(ExtendibleHashMap, ConstantHashStaysCorrectAndBounded) {
  check_hostile<ConstantHash>(3000);
  ExtendibleHashMap<std::uint64_t, std::uint64_t, ConstantHash> m;
  for (std::uint64_t k = 0; k < 3000; ++k) m[k] = k;
  EXPECT_GT(m.stats().overflow_tables, 0u);
}
TEST(ExtendibleHashMap, FewDistinctHashesStayCorrectAndBounded) {
  check_hostile<FewValuesHash>(20000);
}
TEST(ExtendibleHashMap, TopBitsZeroHashStaysCorrectAndBounded) {
  check_hostile<TopBitsZeroHash>(20000);
}

// A hasher that does not claim to avalanche is mixed by the map: the identity spreads evenly.
TEST(ExtendibleHashMap, IdentityHashIsMixedAndSpreadsEvenly) {
  ExtendibleHashMap<std::uint64_t, std::uint64_t, IdentityHash> m;
  for (std::uint64_t k = 0; k < 200000; ++k) m[k] = k;
  const IndexStats s = m.stats();
  EXPECT_EQ(s.overflow_tables, 0u);
  EXPECT_GT(s.global_depth, 4u);
  EXPECT_GT(s.load_factor, 0.6);
  for (std::uint64_t k = 0; k < 200000; k += 101) ASSERT_EQ(m.at(k), k);
}

// FIFO churn under a constant hash (erase the oldest key, insert a new one: a queue, a
// cache) erases from the chain's full head and inserts at its tail. Without reclaiming
// erased slots the chain would grow forever; it must stay bounded.
TEST(ExtendibleHashMap, ConstantHashFifoChurnStaysBounded) {
  ExtendibleHashMap<std::uint64_t, std::uint64_t, ConstantHash> m;
  std::unordered_map<std::uint64_t, std::uint64_t> model;
  constexpr std::uint64_t kLive = 3000;
  for (std::uint64_t k = 0; k < kLive; ++k) {
    m[k] = k;
    model[k] = k;
  }
  std::size_t worst = 0;
  for (std::uint64_t oldest = 0; oldest < 40000; ++oldest) {
    ASSERT_EQ(m.erase(oldest), 1u);
    model.erase(oldest);
    m[oldest + kLive] = oldest;
    model[oldest + kLive] = oldest;
    if (oldest % 1000 == 0) worst = std::max(worst, m.memory_bytes());
  }
  expect_same(m, model);
  EXPECT_GT(m.stats().cleanups, 0u) << "the chain was rebuilt without its erased slots";
  EXPECT_LT(worst, kLive * 64) << "the chain does not grow with the number of erases";
}

// --- exception safety ------------------------------------------------------------------------

// A value whose copy throws when told to, and whose move may throw (so the map copies it when
// relocating): moves between tables can then fail halfway.
struct Fragile {
  static inline int copies_left = -1;  // -1: never throw
  int v = 0;
  explicit Fragile(int x) : v(x) {}
  Fragile(const Fragile& o) : v(o.v) {
    if (copies_left == 0) throw std::runtime_error("copy failed");
    if (copies_left > 0) --copies_left;
  }
  Fragile(Fragile&& o) noexcept(false) : Fragile(static_cast<const Fragile&>(o)) {}
  Fragile& operator=(const Fragile&) = default;
};

// A value whose constructor throws: the insert fails and the map is as it was, whether the
// insert took the one-pass fast path (a fresh table) or the general one (a table with erases).
struct ThrowingValue {
  explicit ThrowingValue(int x) : v(x) {
    if (x < 0) throw std::runtime_error("value refused");
  }
  int v;
};
TEST(ExtendibleHashMap, ValueConstructorThatThrowsLeavesTheMapAsItWas) {
  ExtendibleHashMap<std::uint64_t, ThrowingValue> m;
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(m.try_emplace(i, i).second);
    EXPECT_THROW(m.try_emplace(100000 + i, -1), std::runtime_error);
  }
  for (int i = 0; i < 5000; i += 2) ASSERT_EQ(m.erase(i), 1u);
  for (int i = 0; i < 2000; ++i) {
    EXPECT_THROW(m.try_emplace(200000 + i, -1), std::runtime_error);
  }
  ASSERT_EQ(m.size(), 2500u);
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(m.try_emplace(300000 + i, i).second);
  ASSERT_EQ(m.size(), 5500u);
  std::size_t seen = 0;
  for (const auto& [k, v] : m) {
    ++seen;
    ASSERT_TRUE((k < 5000 && k % 2 == 1 && v.v == static_cast<int>(k)) ||
                (k >= 300000 && k < 303000 && v.v == static_cast<int>(k - 300000)))
        << k;
  }
  EXPECT_EQ(seen, 5500u);
  EXPECT_FALSE(m.contains(100000));
  EXPECT_FALSE(m.contains(200000));
  const IndexStats s = m.stats();
  EXPECT_EQ(s.size, 5500u);
}

TEST(ExtendibleHashMap, FailedRelocationLeavesTheMapIntact) {
  ExtendibleHashMap<std::string, Fragile> m;
  std::unordered_map<std::string, int> model;
  std::mt19937 rng(11);
  int failures = 0;
  for (int i = 0; i < 40000; ++i) {
    const std::string k = "key" + std::to_string(i);
    Fragile::copies_left = static_cast<int>(rng() % 4000);  // fail somewhere in a big move
    try {
      m.try_emplace(k, i);
      model.emplace(k, i);
    } catch (const std::runtime_error&) {
      ++failures;
      ASSERT_FALSE(m.contains(k)) << "a failed insert leaves no trace";
    }
    Fragile::copies_left = -1;
    if (i % 5000 == 0) {
      ASSERT_EQ(m.size(), model.size());
      for (const auto& [mk, mv] : model) ASSERT_EQ(m.at(mk).v, mv);
    }
  }
  Fragile::copies_left = -1;
  EXPECT_GT(failures, 0) << "the test must exercise a failure";
  ASSERT_EQ(m.size(), model.size());
  for (const auto& [mk, mv] : model) ASSERT_EQ(m.at(mk).v, mv);
  // Failed splits (some after doubling the directory) left the bookkeeping sound: the map
  // still shrinks all the way down.
  for (const auto& [mk, mv] : model) m.erase(mk);
  m.shrink_to_fit();
  EXPECT_EQ(m.stats().global_depth, 0u);
  EXPECT_EQ(m.memory_bytes(), sizeof(m));
}

// A hasher that throws now and then: in an insert's own hashing, or in the middle of
// a hashing split (split_or_overflow). Every failure leaves the map as it was.
struct FlakyHash {
  using is_avalanching = void;
  static inline int calls_left = -1;  // -1: never throw
  std::size_t operator()(std::uint64_t k) const {
    if (calls_left == 0) throw std::runtime_error("hash failed");
    if (calls_left > 0) --calls_left;
    return hash_internal::mix64(k, 5);
  }
};

TEST(ExtendibleHashMap, ThrowingHasherLeavesTheMapIntact) {
  ExtendibleHashMap<std::uint64_t, std::uint64_t, FlakyHash> m;
  std::unordered_map<std::uint64_t, std::uint64_t> model;
  std::mt19937 rng(13);
  int failures = 0;
  for (std::uint64_t k = 0; k < 100000; ++k) {
    FlakyHash::calls_left = static_cast<int>(rng() % 3000);
    try {
      m[k] = k + 1;
      model[k] = k + 1;
    } catch (const std::runtime_error&) {
      ++failures;
    }
    FlakyHash::calls_left = -1;
  }
  EXPECT_GT(failures, 10);
  EXPECT_GT(m.stats().rehashed_keys, 0u) << "rehashes happened, some of them interrupted";
  expect_same(m, model);
}

TEST(ExtendibleHashMap, FailedReserveLeavesTheMapUnchanged) {
  ExtendibleHashMap<std::string, Fragile> m;
  for (int i = 0; i < 5000; ++i) m.try_emplace(std::to_string(i), i);
  Fragile::copies_left = 2500;  // the rebuild copies every value: fail half way
  EXPECT_THROW(m.reserve(100000), std::runtime_error);
  Fragile::copies_left = -1;
  ASSERT_EQ(m.size(), 5000u);
  for (int i = 0; i < 5000; ++i) ASSERT_EQ(m.at(std::to_string(i)).v, i);
  m.reserve(100000);  // and works when nothing fails
  for (int i = 0; i < 5000; ++i) ASSERT_EQ(m.at(std::to_string(i)).v, i);
}

// --- group implementations -------------------------------------------------------------------

// Lane 15 of each half is the overflow filter, never a slot; its 16 bits are addressed by the
// triehash's low 4 bits; needed_filters marks every group an entry's probe passes.
TEST(Group, FilterLanesAndBits) {
  using namespace index_internal;
  alignas(32) std::uint8_t meta[kGroupMetaBytes] = {};
  meta[15] = 7;  // a filter byte equal to a tophash...
  meta[31] = 9;  // ...and to a triehash
  meta[3] = 7;
  meta[16 + 3] = 9;
  EXPECT_EQ(SlotGroup::match(meta, 7, 9), SlotMask{1} << 3);
  EXPECT_EQ(SlotGroup::match_full(meta), SlotMask{1} << 3);
  EXPECT_EQ(SlotGroup::match_empty(meta), kSlotLanes & ~(SlotMask{1} << 3));
  std::memset(meta, 0, sizeof(meta));
  for (unsigned b = 0; b < 16; ++b) {
    EXPECT_FALSE(overflowed(meta, static_cast<std::uint8_t>(b)));
    mark_overflow(meta, static_cast<std::uint8_t>(0xa0 | b));  // high bits do not matter
    for (unsigned c = 0; c < 16; ++c)
      EXPECT_EQ(overflowed(meta, static_cast<std::uint8_t>(c)), c <= b);
  }
  EXPECT_EQ(stored_filter(meta), 0xffff);
  EXPECT_EQ(SlotGroup::match_empty(meta), kSlotLanes) << "filter bits are not slots";

  // Three groups; an entry with home group 0 sits in group 2, triehash 0x25 (bit 5).
  alignas(32) std::uint8_t table[3 * kGroupMetaBytes] = {};
  const std::uint8_t top = 2;  // home_group(2, 3) == 0
  ASSERT_EQ(home_group(top, 3), 0u);
  table[2 * kGroupMetaBytes + 4] = top;
  table[2 * kGroupMetaBytes + kGroupWidth + 4] = 0x25;
  std::uint16_t need[3];
  needed_filters(table, 3, need);
  EXPECT_EQ(need[0], 1u << 5);
  EXPECT_EQ(need[1], 1u << 5);
  EXPECT_EQ(need[2], 0u);
}

TEST(Group, SimdAndPortableAgree) {
  using namespace index_internal;
  std::mt19937 rng(5);
  alignas(32) std::uint8_t meta[kGroupMetaBytes];
  for (int round = 0; round < 20000; ++round) {
    for (auto& b : meta) {
      // Mostly a few values so that matches happen; empties and tombstones often.
      const unsigned r = rng() % 8;
      b = static_cast<std::uint8_t>(r < 2 ? r : (r < 5 ? 2 + r : rng()));
    }
    const auto top = static_cast<std::uint8_t>(meta[rng() % 16] | 2);
    const auto trie = meta[16 + rng() % 16];
    const unsigned bit = rng() % 8;
    const SlotMask want = GroupPortable::match(meta, top, trie);
    // The portable one against a plain loop, then the SIMD ones against it.
    SlotMask loop = 0;
    for (unsigned i = 0; i < 16; ++i) loop |= SlotMask{meta[i] == top && meta[16 + i] == trie} << i;
    ASSERT_EQ(want, loop);
#if defined(__SSE2__)
    ASSERT_EQ(GroupSse2::match(meta, top, trie), want);
    ASSERT_EQ(GroupSse2::match_empty(meta), GroupPortable::match_empty(meta));
    ASSERT_EQ(GroupSse2::match_free(meta), GroupPortable::match_free(meta));
    ASSERT_EQ(GroupSse2::match_full(meta), GroupPortable::match_full(meta));
    ASSERT_EQ(GroupSse2::trie_bit(meta, bit), GroupPortable::trie_bit(meta, bit));
#endif
#if defined(__x86_64__)
    if (GroupAvx2::cpu_supports()) {
      ASSERT_EQ(GroupAvx2::match(meta, top, trie), want);
      ASSERT_EQ(GroupAvx2::match_empty(meta), GroupPortable::match_empty(meta));
      ASSERT_EQ(GroupAvx2::match_free(meta), GroupPortable::match_free(meta));
      ASSERT_EQ(GroupAvx2::trie_bit(meta, bit), GroupPortable::trie_bit(meta, bit));
    }
#endif
  }
}

}  // namespace
}  // namespace sisu
