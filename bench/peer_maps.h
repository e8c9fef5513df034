// What the hash map benchmarks share, so that sisu and its peers are measured alike: the peer
// libraries (each included only when bench/CMakeLists.txt found it and defined SISU_HAVE_ABSL
// or SISU_HAVE_BOOST), one seeded hash for every map, and the random keys.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "util/hash.h"

#ifdef SISU_HAVE_ABSL
#include <absl/container/flat_hash_map.h>
#endif
#ifdef SISU_HAVE_BOOST
#include <boost/unordered/unordered_flat_map.hpp>
#endif

namespace sisu::bench {

inline constexpr std::uint64_t kSeed = 0x5eed;

// sisu::Hash with kSeed, for the peers (sisu's maps take sisu::Hash<std::uint64_t>(kSeed)).
struct BenchHash {
  using is_avalanching = void;  // boost: the hash is already well mixed
  std::size_t operator()(std::uint64_t k) const { return Hash<std::uint64_t>(kSeed)(k); }
};

inline std::vector<std::uint64_t> random_keys(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> keys(n);
  for (auto& k : keys) k = rng();
  return keys;
}

}  // namespace sisu::bench
