// Large-size tests, labelled `slow`.
#include <gtest/gtest.h>

#include <random>

#include "index/extendible_hash_map.h"

namespace sisu {
namespace {

// The size hint at 10M keys: inserting them splits, grows and doubles nothing, and the map is
// sized close to the minimum (no power-of-two rounding of the total).
TEST(ExtendibleHashMapSlow, SizeHintOfTenMillion) {
  constexpr std::size_t kN = 10'000'000;
  ExtendibleHashMap<std::uint64_t, std::uint64_t> m(kN);
  const std::size_t reserved = m.memory_bytes();
  std::mt19937_64 rng(10);
  for (std::size_t i = 0; i < kN; ++i) m[rng()] = i;
  const IndexStats s = m.stats();
  EXPECT_EQ(s.size, kN);
  EXPECT_EQ(s.splits + s.grows + s.directory_doublings, 0u);
  EXPECT_EQ(m.memory_bytes(), reserved) << "nothing was allocated after construction";
  EXPECT_GT(s.load_factor, 0.75);
  EXPECT_LT(static_cast<double>(s.memory_bytes) / kN, 24.0);
  std::mt19937_64 again(10);
  for (std::size_t i = 0; i < kN; i += 7) {
    const std::uint64_t k = again();
    ASSERT_TRUE(m.contains(k));
    for (int skip = 0; skip < 6 && i + skip + 1 < kN; ++skip) again();
  }
}

// Growth to 4M keys without a hint: the load factor never drops below 0.7 once the map has
// more than one table's worth of keys.
TEST(ExtendibleHashMapSlow, LoadFactorStaysAboveSevenTenths) {
  ExtendibleHashMap<std::uint64_t, std::uint64_t> m;
  double worst = 1;
  std::size_t next = 4096;
  for (std::uint64_t k = 1; k <= 4'000'000; ++k) {
    m[k] = k;
    if (k == next) {
      worst = std::min(worst, m.stats().load_factor);
      next += next / 16;
    }
  }
  EXPECT_GE(worst, 0.70);
}

}  // namespace
}  // namespace sisu
