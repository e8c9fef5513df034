// Single-threaded behaviour of LockFreeHashMap: every method against std::unordered_map,
// the reserved keys, value range, freeze, clear, resizes under bad hashes.
#include "index/lock_free_hash_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace sisu {
namespace {

using Map = LockFreeHashMap<>;
constexpr std::uint64_t kMaxValue = (std::uint64_t{1} << 62) - 1;

// Every key hashes alike: every key collides, every probe is a full cluster.
struct ConstantHashTraits : LockFreeHashMapTraits {
  struct Hasher {
    std::uint64_t operator()(std::uint64_t) const noexcept { return 42; }
  };
};
// The identity: sequential keys fill neighbouring slots, clusters are long.
struct IdentityHashTraits : LockFreeHashMapTraits {
  struct Hasher {
    std::uint64_t operator()(std::uint64_t k) const noexcept { return k; }
  };
};

template <class M>
void expect_same(const M& m, const std::unordered_map<std::uint64_t, std::uint64_t>& model) {
  ASSERT_EQ(m.size(), model.size());
  ASSERT_EQ(m.empty(), model.empty());
  std::unordered_map<std::uint64_t, std::uint64_t> seen;
  m.for_each([&](std::uint64_t k, std::uint64_t v) {
    ASSERT_TRUE(seen.emplace(k, v).second) << "for_each visited key " << k << " twice";
  });
  ASSERT_EQ(seen, model);
  for (const auto& [k, v] : model) {
    ASSERT_EQ(m.get(k), v);
    ASSERT_TRUE(m.contains(k));
  }
}

// Random calls of every write method against the model, over a key space that includes 0 and
// UINT64_MAX and is small enough that keys are hit repeatedly.
template <class M>
void run_model(std::uint64_t seed, std::size_t initial_capacity, int steps) {
  M m(initial_capacity);
  const std::size_t initial_table = m.capacity();
  std::unordered_map<std::uint64_t, std::uint64_t> model;
  std::mt19937_64 rng(seed);
  const std::uint64_t specials[] = {0, 1, std::numeric_limits<std::uint64_t>::max(),
                                    std::numeric_limits<std::uint64_t>::max() - 1};
  auto key = [&]() -> std::uint64_t {
    if (rng() % 8 == 0) return specials[rng() % 4];
    return rng() % 600;
  };
  auto value = [&]() -> std::uint64_t {
    switch (rng() % 4) {
      case 0:
        return 0;
      case 1:
        return kMaxValue;
      default:
        return rng() % 1000;
    }
  };
  auto opt = [&](std::uint64_t k) -> std::optional<std::uint64_t> {
    auto it = model.find(k);
    if (it == model.end()) return std::nullopt;
    return it->second;
  };
  for (int i = 0; i < steps; ++i) {
    const std::uint64_t k = key();
    const std::uint64_t v = value();
    const auto before = opt(k);
    switch (rng() % 8) {
      case 0:
        ASSERT_EQ(m.put(k, v), before);
        model[k] = v;
        break;
      case 1:
        ASSERT_EQ(m.put_if_absent(k, v), before);
        if (!before) model[k] = v;
        break;
      case 2:
        ASSERT_EQ(m.replace(k, v), before);
        if (before) model[k] = v;
        break;
      case 3: {
        // Half the time expect what is there, half the time something else.
        const std::uint64_t expected = (before && rng() % 2) ? *before : value();
        const bool hit = before && *before == expected;
        ASSERT_EQ(m.replace(k, expected, v), hit);
        if (hit) model[k] = v;
        break;
      }
      case 4:
      case 5:
        ASSERT_EQ(m.remove(k), before);
        model.erase(k);
        break;
      case 6: {
        const std::uint64_t expected = (before && rng() % 2) ? *before : value();
        const bool hit = before && *before == expected;
        ASSERT_EQ(m.remove(k, expected), hit);
        if (hit) model.erase(k);
        break;
      }
      default:
        ASSERT_EQ(m.get(k), before);
        ASSERT_EQ(m.contains(k), before.has_value());
        break;
    }
    ASSERT_EQ(m.size(), model.size());
    if (i % 997 == 0) expect_same(m, model);
  }
  expect_same(m, model);
  m.clear();
  model.clear();
  expect_same(m, model);
  ASSERT_EQ(m.capacity(), initial_table) << "clear shrinks an emptied map to its initial size";
}

TEST(LockFreeHashMap, ModelEveryMethod) { run_model<Map>(1, 0, 60000); }
TEST(LockFreeHashMap, ModelFromLargeInitialCapacity) { run_model<Map>(2, 5000, 20000); }
TEST(LockFreeHashMap, ModelConstantHash) {
  run_model<LockFreeHashMap<std::uint64_t, std::uint64_t, ConstantHashTraits>>(3, 0, 8000);
}
TEST(LockFreeHashMap, ModelIdentityHash) {
  run_model<LockFreeHashMap<std::uint64_t, std::uint64_t, IdentityHashTraits>>(4, 0, 30000);
}

TEST(LockFreeHashMap, ReservedKeysAreOrdinaryKeys) {
  Map m;
  const std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  EXPECT_FALSE(m.get(0));
  EXPECT_FALSE(m.get(kMax));
  EXPECT_EQ(m.put(0, 7), std::nullopt);
  EXPECT_EQ(m.put(kMax, 8), std::nullopt);
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m.get(0), 7u);
  EXPECT_EQ(m.get(kMax), 8u);
  // Grow through many resizes: key 0's out-of-line slot moves with every table.
  for (std::uint64_t k = 1; k < 5000; ++k) m.put(k, k);
  EXPECT_EQ(m.get(0), 7u);
  EXPECT_EQ(m.get(kMax), 8u);
  EXPECT_EQ(m.remove(0), 7u);
  EXPECT_FALSE(m.get(0));
  EXPECT_EQ(m.size(), 5000u);
}

TEST(LockFreeHashMap, ValuesOutOfRangeAreRejectedWithoutChange) {
  Map m;
  m.put(5, 1);
  const std::uint64_t bad[] = {kMaxValue + 1, std::uint64_t{1} << 63,
                               std::numeric_limits<std::uint64_t>::max()};
  for (std::uint64_t v : bad) {
    EXPECT_THROW(m.put(5, v), std::invalid_argument);
    EXPECT_THROW(m.put(6, v), std::invalid_argument);
    EXPECT_THROW(m.put_if_absent(6, v), std::invalid_argument);
    EXPECT_THROW(m.replace(5, v), std::invalid_argument);
    EXPECT_THROW(m.replace(5, 1, v), std::invalid_argument);
    EXPECT_THROW(m.replace(5, v, 2), std::invalid_argument);
    EXPECT_THROW(m.remove(5, v), std::invalid_argument);
  }
  EXPECT_EQ(m.get(5), 1u);
  EXPECT_FALSE(m.contains(6));
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(m.put(5, kMaxValue), 1u);
  EXPECT_EQ(m.get(5), kMaxValue);
}

TEST(LockFreeHashMap, FreezeRejectsEveryWriteAndKeepsReads) {
  Map m(4);
  for (std::uint64_t k = 0; k < 300; ++k) m.put(k, k * 2);
  m.remove(7);
  EXPECT_FALSE(m.frozen());
  m.freeze();
  EXPECT_TRUE(m.frozen());
  EXPECT_THROW(m.put(1, 1), std::logic_error);
  EXPECT_THROW(m.put(1000, 1), std::logic_error);
  EXPECT_THROW(m.put_if_absent(1000, 1), std::logic_error);
  EXPECT_THROW(m.replace(1, 5), std::logic_error);
  EXPECT_THROW(m.replace(1, 2, 5), std::logic_error);
  EXPECT_THROW(m.remove(1), std::logic_error);
  EXPECT_THROW(m.remove(1000), std::logic_error);
  EXPECT_THROW(m.remove(1, 2), std::logic_error);
  EXPECT_THROW(m.clear(), std::logic_error);
  m.freeze();  // a second freeze does nothing
  EXPECT_TRUE(m.frozen());
  EXPECT_EQ(m.size(), 299u);
  for (std::uint64_t k = 0; k < 300; ++k) {
    if (k == 7) {
      EXPECT_FALSE(m.get(k));
    } else {
      EXPECT_EQ(m.get(k), k * 2);
    }
  }
  EXPECT_FALSE(m.get(1000));
  std::size_t n = 0;
  m.for_each([&](std::uint64_t k, std::uint64_t v) {
    EXPECT_EQ(v, k * 2);
    EXPECT_NE(k, 7u);
    ++n;
  });
  EXPECT_EQ(n, 299u);
}

TEST(LockFreeHashMap, FreezeEmptyMap) {
  Map m;
  m.freeze();
  EXPECT_TRUE(m.empty());
  EXPECT_FALSE(m.get(0));
  EXPECT_THROW(m.put(0, 1), std::logic_error);
}

TEST(LockFreeHashMap, InitialCapacityAvoidsResizes) {
  Map m(1000);
  const std::size_t cap = m.capacity();
  EXPECT_GE(cap, 2000u);
  for (std::uint64_t k = 0; k < 1000; ++k) m.put(k, k);
  EXPECT_EQ(m.capacity(), cap);
}

// With the default hash (FoldHash), structured keys never cluster enough for a probe to pass
// the reprobe limit: 2^16 of them end in the table that growth by load alone gives (2^17
// slots), as with random keys. An identity hash fails this for keys i << 32 and i << 48. (How
// evenly FoldHash spreads them is tests/util/hash_test.cc's.)
TEST(LockFreeHashMap, StructuredKeysNeverForceAGrowth) {
  for (int shift : {0, 12, 32, 48}) {
    Map m;
    for (std::uint64_t i = 0; i < (1u << 16); ++i) m.put(i << shift, i);
    EXPECT_EQ(m.capacity(), 1u << 17) << "keys i << " << shift;
    EXPECT_EQ(m.size(), 1u << 16);
  }
}

TEST(LockFreeHashMap, GrowsUnderConstantHashAndStaysCorrect) {
  LockFreeHashMap<std::uint64_t, std::uint64_t, ConstantHashTraits> m;
  for (std::uint64_t k = 0; k < 2000; ++k) ASSERT_EQ(m.put(k, k), std::nullopt);
  for (std::uint64_t k = 0; k < 2000; ++k) ASSERT_EQ(m.get(k), k);
  EXPECT_FALSE(m.get(5000));
  // A probe may cover at most a quarter of a table: the table grew to hold the cluster.
  EXPECT_GE(m.capacity(), 4 * 2000u - 40);
}

TEST(LockFreeHashMap, ChurnOfDistinctKeysKeepsTheTableSmall) {
  // Every key is inserted and removed once: the table fills with dead keys, which each
  // resize drops. Capacity must stay proportional to the live entries, not to the keys seen.
  Map m;
  for (std::uint64_t k = 1; k <= 200000; ++k) {
    m.put(k, k);
    if (k > 50) m.remove(k - 50);
  }
  EXPECT_EQ(m.size(), 50u);
  EXPECT_LE(m.capacity(), 1024u);
  epoch::synchronize();
}

TEST(LockFreeHashMap, RetiredTablesAreGivenBack) {
  epoch::synchronize();
  const std::int64_t before = lock_free_internal::live_table_bytes.load();
  {
    Map m;
    for (std::uint64_t k = 0; k < 100000; ++k) m.put(k, k);
    EXPECT_GT(lock_free_internal::live_table_bytes.load(), before);
  }
  epoch::synchronize();
  EXPECT_EQ(lock_free_internal::live_table_bytes.load(), before);
  EXPECT_EQ(epoch::pending(), 0u);
}

TEST(LockFreeHashMap, SignedAndEnumKeys) {
  LockFreeHashMap<std::int64_t, std::uint32_t> m;
  m.put(-1, 3);
  m.put(std::numeric_limits<std::int64_t>::min(), 4);
  EXPECT_EQ(m.get(-1), 3u);
  EXPECT_EQ(m.get(std::numeric_limits<std::int64_t>::min()), 4u);
  std::size_t n = 0;
  m.for_each([&](std::int64_t k, std::uint32_t) {
    EXPECT_TRUE(k == -1 || k == std::numeric_limits<std::int64_t>::min());
    ++n;
  });
  EXPECT_EQ(n, 2u);
}

TEST(LockFreeHashMap, MemoryBytesCoversTheTable) {
  Map m;
  for (std::uint64_t k = 0; k < 10000; ++k) m.put(k, k);
  constexpr std::size_t kSlotBytes = 16;  // a key word and a value word, four to a line
  EXPECT_GE(m.memory_bytes(), m.capacity() * kSlotBytes);
  EXPECT_LE(m.memory_bytes(), m.capacity() * kSlotBytes + 8192);
}

}  // namespace
}  // namespace sisu
