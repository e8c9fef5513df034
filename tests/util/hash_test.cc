#include "util/hash.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace sisu {
namespace {

using U64Hash = Hash<std::uint64_t>;

// Persisted index files depend on these exact values (a file records the seed and kVersion,
// not the function). If this test fails, the function changed: bump SeededHash::kVersion.
TEST(Hash, OutputIsPinnedForPersistedFiles) {
  EXPECT_EQ(hash_internal::SeededHash::kVersion, 1u);
  const U64Hash h(42);
  EXPECT_EQ(h(0), 0xbdd732262feb6e95ULL) << std::hex << h(0);
  EXPECT_EQ(h(1), 0xba69ec90eb4fef88ULL) << std::hex << h(1);
  EXPECT_EQ(h(UINT64_MAX), 0x03e137111aabff83ULL) << std::hex << h(UINT64_MAX);
  const Hash<std::string> s(42);
  EXPECT_EQ(s("sisu"), 0x67f934110be28e26ULL) << std::hex << s("sisu");
  // XXH3-64 of the empty input with seed 0 is a published constant: this is the real XXH3.
  EXPECT_EQ(hash_internal::hash_bytes("", 0, 0), 0x2D06800538D394C2ULL);
}

TEST(Hash, IntegerHashIsNeverTheIdentity) {
  for (std::uint64_t seed : {0ULL, 1ULL, 42ULL}) {
    const U64Hash h(seed);
    int fixed_points = 0;
    for (std::uint64_t k = 0; k < 100000; ++k) fixed_points += (h(k) == k);
    EXPECT_EQ(fixed_points, 0) << "seed " << seed;
  }
}

// Strict avalanche on sequential keys: flipping any one input bit flips each output bit with
// probability 1/2. With 20000 keys the standard error is 0.0035; the bound is 8 of them.
TEST(Hash, IntegerMixerAvalanchesOnSequentialKeys) {
  constexpr int kKeys = 20000;
  const U64Hash h(12345);
  std::array<std::array<int, 64>, 64> flips{};
  for (std::uint64_t k = 0; k < kKeys; ++k) {
    const std::uint64_t base = h(k);
    for (int in = 0; in < 64; ++in) {
      const std::uint64_t diff = base ^ h(k ^ (std::uint64_t{1} << in));
      for (int out = 0; out < 64; ++out) flips[in][out] += (diff >> out) & 1;
    }
  }
  double worst = 0;
  for (int in = 0; in < 64; ++in) {
    for (int out = 0; out < 64; ++out) {
      const double p = static_cast<double>(flips[in][out]) / kKeys;
      worst = std::max(worst, std::abs(p - 0.5));
      ASSERT_NEAR(p, 0.5, 0.028) << "input bit " << in << " -> output bit " << out;
    }
  }
  RecordProperty("worst_avalanche_bias", std::to_string(worst));
}

// Every output bit is set half the time over sequential keys, and the top 8 bits (what an
// extendible-hashing directory reads first) fill 256 buckets evenly.
TEST(Hash, SequentialKeysBalanceEveryBitAndTheTopByte) {
  constexpr int kKeys = 1 << 18;
  const U64Hash h(7);
  std::array<int, 64> ones{};
  std::array<int, 256> buckets{};
  for (std::uint64_t k = 0; k < kKeys; ++k) {
    const std::uint64_t v = h(k);
    for (int b = 0; b < 64; ++b) ones[b] += (v >> b) & 1;
    buckets[v >> 56]++;
  }
  for (int b = 0; b < 64; ++b) {
    EXPECT_NEAR(static_cast<double>(ones[b]) / kKeys, 0.5, 0.006) << "bit " << b;
  }
  // Each bucket expects 1024 keys with standard deviation ~32; allow 6 of them.
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(buckets[i], 1024, 192) << "bucket " << i;
}

TEST(Hash, IntegerMixerIsABijectionForAFixedSeed) {
  const U64Hash h(99);
  std::unordered_set<std::uint64_t> seen;
  for (std::uint64_t k = 0; k < 200000; ++k) ASSERT_TRUE(seen.insert(h(k)).second) << k;
}

TEST(Hash, SignedIntegersWidenConsistently) {
  EXPECT_EQ(Hash<int>(5)(-1), Hash<long>(5)(-1L));
  EXPECT_EQ(Hash<std::uint32_t>(5)(7u), U64Hash(5)(7u));
}

TEST(Hash, StringAndStringViewHashEqualAndAreTransparent) {
  static_assert(requires { typename Hash<std::string>::is_transparent; });
  static_assert(requires { typename Hash<std::string_view>::is_transparent; });
  const Hash<std::string> hs(3);
  const Hash<std::string_view> hv(3);
  for (const std::string& k : {std::string(), std::string("a"), std::string("sisu"),
                               std::string(1000, 'x'), std::string("with\0nul", 8)}) {
    EXPECT_EQ(hs(k), hs(std::string_view(k)));
    EXPECT_EQ(hs(k), hv(std::string_view(k)));
  }
  EXPECT_EQ(hs("literal"), hs(std::string("literal")));
  EXPECT_NE(hs(std::string("with\0nul", 8)), hs(std::string("with")));  // length counts
}

TEST(Hash, DifferentSeedsGiveDifferentHashes) {
  const U64Hash a(1), b(2);
  const Hash<std::string> sa(1), sb(2);
  int same_int = 0, same_str = 0;
  for (std::uint64_t k = 0; k < 10000; ++k) {
    same_int += (a(k) == b(k));
    same_str += (sa(std::to_string(k)) == sb(std::to_string(k)));
  }
  EXPECT_EQ(same_int, 0);
  EXPECT_EQ(same_str, 0);
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a == U64Hash(1));
}

TEST(Hash, OtherTypesGoThroughStdHashThenTheMixer) {
  const Hash<double> h(11);
  EXPECT_EQ(h(0.0), h(-0.0));  // equal keys hash equal
  EXPECT_NE(h(1.0), h(2.0));
  EXPECT_NE(h(1.0), std::hash<double>{}(1.0));
  int x = 0;
  EXPECT_EQ(Hash<int*>(11)(&x), Hash<int*>(11)(&x));
}

TEST(Hash, DefaultConstructedHashersShareTheProcessSeed) {
  EXPECT_EQ(U64Hash().seed(), hash_internal::process_seed());
  EXPECT_EQ(Hash<std::string>().seed(), U64Hash().seed());
}

// FoldHash is LockFreeHashMap's hash, and the map's index is the hash's low bits: structured
// key sets must fill low-bit buckets the way random keys do. Each bucket expects 256 keys with
// standard deviation 16; the bound is 6 of them. (A single folded multiply fails on sequential
// keys: buckets from 40 to 473.)
TEST(FoldHash, StructuredKeysFillLowBitBucketsLikeRandomOnes) {
  struct Pattern {
    const char* name;
    int shift;  // key i is i << shift
    int log_keys;
  };
  const Pattern patterns[] = {{"sequential", 0, 18},
                              {"stride 2^10", 10, 18},
                              {"stride 2^12", 12, 18},
                              {"stride 2^32", 32, 18},
                              {"top 16 bits", 48, 16}};
  for (std::uint64_t seed : {0ULL, 42ULL, 0xdeadbeef12345678ULL}) {
    const FoldHash h(seed);
    for (const Pattern& p : patterns) {
      const std::size_t buckets = (std::size_t{1} << p.log_keys) / 256;
      std::vector<int> count(buckets);
      for (std::uint64_t i = 0; i < (std::uint64_t{1} << p.log_keys); ++i) {
        count[h(i << p.shift) & (buckets - 1)]++;
      }
      const auto [lo, hi] = std::minmax_element(count.begin(), count.end());
      EXPECT_GE(*lo, 256 - 96) << p.name << ", seed " << seed;
      EXPECT_LE(*hi, 256 + 96) << p.name << ", seed " << seed;
    }
  }
}

TEST(FoldHash, SeedsChangeTheHashAndTheDefaultIsTheProcessSeed) {
  EXPECT_EQ(FoldHash().seed(), hash_internal::process_seed());
  const FoldHash a(1), b(2);
  int same = 0;
  for (std::uint64_t k = 0; k < 10000; ++k) {
    EXPECT_EQ(a(k), FoldHash(1)(k));  // a pure function of (seed, key)
    same += a(k) == b(k);
  }
  EXPECT_EQ(same, 0);
  // Distinct keys collide on all 64 bits about never (it is not a bijection, but close).
  std::unordered_set<std::uint64_t> seen;
  for (std::uint64_t k = 0; k < 200000; ++k) seen.insert(a(k));
  EXPECT_EQ(seen.size(), 200000u);
}

// The process seed is random per process unless SISU_HASH_SEED fixes it. Each case runs this
// test binary again with PrintProcessSeed and reads the seed it prints.
std::uint64_t seed_of_child(const char* env) {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return 0;
  exe[n] = '\0';
  const std::string cmd = std::string(env) + " '" + exe +
                          "' --gtest_also_run_disabled_tests"
                          " --gtest_filter=HashChild.DISABLED_PrintProcessSeed 2>/dev/null";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return 0;
  char line[256];
  std::uint64_t seed = 0;
  while (std::fgets(line, sizeof(line), pipe) != nullptr) {
    unsigned long long v;
    if (std::sscanf(line, "process_seed=%llu", &v) == 1) seed = v;
  }
  pclose(pipe);
  return seed;
}

TEST(HashChild, DISABLED_PrintProcessSeed) {
  std::printf("process_seed=%llu\n",
              static_cast<unsigned long long>(hash_internal::process_seed()));
}

TEST(Hash, ProcessSeedIsRandomUnlessFixedByEnvironment) {
  EXPECT_EQ(seed_of_child("SISU_HASH_SEED=123"), 123u);
  EXPECT_EQ(seed_of_child("SISU_HASH_SEED=0x7b"), 123u);
  const std::uint64_t r1 = seed_of_child("env -u SISU_HASH_SEED");
  const std::uint64_t r2 = seed_of_child("env -u SISU_HASH_SEED");
  ASSERT_NE(r1, 0u);
  EXPECT_NE(r1, r2);
  // A malformed value is not silently read as a fixed seed.
  const std::uint64_t bad = seed_of_child("SISU_HASH_SEED=12x");
  EXPECT_NE(bad, 12u);
  EXPECT_NE(bad, 0u);
}

}  // namespace
}  // namespace sisu
