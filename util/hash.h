// sisu::Hash<Key>: the default hasher of ExtendibleHashMap, of index files and of the engine.
// sisu::FoldHash (below): LockFreeHashMap's, cheaper, for 64-bit keys in memory only.
//
// - Integers, enums and pointers: a seeded 64-bit finalizer (the SplitMix64/Stafford "mix13"
//   shape: xor-shift, multiply, twice). It is a bijection for a fixed seed, so distinct integer
//   keys never collide on the full 64 bits, and every output bit depends on every input bit,
//   so sequential keys spread over the top bits that an extendible-hashing directory reads.
//   It is never the identity (std::hash<uint64_t> is, on libstdc++).
// - std::string and std::string_view: XXH3-64 from libxxhash, seeded. Both spellings hash equal
//   and the hasher is transparent, so map<std::string, V>::find(std::string_view) needs no copy.
// - Anything else with a std::hash: std::hash, then the integer finalizer (so a weak
//   std::hash, such as the identity, still spreads).
//
// Seeds. A default-constructed Hash uses the process seed: random per process, so that an
// attacker who does not know it cannot make keys collide (hash flooding). Set the environment
// variable SISU_HASH_SEED (decimal or 0x-hex) to fix it for reproducible runs, or construct
// Hash(seed) to pick one per map. A hash value is a pure function of (kVersion, seed, key) and
// is the same on every compiler and CPU, which is what lets a persisted index work in another
// process: the index file records seed() and kVersion, and the loader rebuilds Hash(seed).
//
// Thread-safety: a Hash is an immutable value; operator() may run on any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>

namespace sisu {
namespace hash_internal {

// The seed every default-constructed Hash uses in this process (see the file comment).
std::uint64_t process_seed() noexcept;

// XXH3-64 of [data, data + len) with the given seed.
std::uint64_t hash_bytes(const void* data, std::size_t len, std::uint64_t seed) noexcept;

// A bijective 64-bit finalizer of x, keyed by seed: SplitMix64's golden-ratio step, then
// Stafford's "mix13". The step keeps 0 from being a fixed point when the seed is 0.
constexpr std::uint64_t mix64(std::uint64_t x, std::uint64_t seed) noexcept {
  x = (x ^ seed) + 0x9e3779b97f4a7c15ULL;
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// One folded multiply: the 128-bit product of x and an odd constant, its two halves xored.
__extension__ using U128 = unsigned __int128;  // __extension__: users may build with -Wpedantic
constexpr std::uint64_t fold_multiply(std::uint64_t x, std::uint64_t c) noexcept {
  const U128 m = static_cast<U128>(x) * c;
  return static_cast<std::uint64_t>(m) ^ static_cast<std::uint64_t>(m >> 64);
}

// One folded multiply of (x ^ seed), then an xor-shift. The fold alone is not enough for a
// power-of-two table's index (the low bits): for small keys the product's high half grows
// linearly with the key, and xored with the low half it fills 1024 low-bit buckets of 2^18
// sequential keys from 40 to 473 keys each, against 208..304 for random keys. Xoring in bits
// 23 and up brings every structured key set the tests try to the random spread, as a second
// fold does, with one multiply less (tests/util/hash_test.cc). Not a bijection.
constexpr std::uint64_t fold64(std::uint64_t x, std::uint64_t seed) noexcept {
  const std::uint64_t h = fold_multiply(x ^ seed, 0x9e3779b97f4a7c15ULL);
  return h ^ (h >> 23);
}

// Holds the seed; the base of every sisu hasher.
class SeededHash {
 public:
  // Every output bit depends on every input bit, so maps need not mix the hash again
  // (the trait boost::unordered and sisu's maps look for).
  using is_avalanching = void;

  // Bump when Hash's output changes: persisted files record it. (fold64 and FoldHash are not
  // persisted and are outside this rule.)
  static constexpr std::uint32_t kVersion = 1;

  SeededHash() noexcept : seed_(process_seed()) {}
  explicit SeededHash(std::uint64_t seed) noexcept : seed_(seed) {}

  std::uint64_t seed() const noexcept { return seed_; }
  friend bool operator==(const SeededHash& a, const SeededHash& b) noexcept {
    return a.seed_ == b.seed_;
  }

 protected:
  std::uint64_t seed_;
};

// Transparent string hashing shared by Hash<std::string> and Hash<std::string_view>.
class StringHash : public SeededHash {
 public:
  using is_transparent = void;
  using SeededHash::SeededHash;

  std::uint64_t operator()(std::string_view s) const noexcept {
    return hash_bytes(s.data(), s.size(), seed_);
  }
};

}  // namespace hash_internal

template <class Key>
class Hash : public hash_internal::SeededHash {
 public:
  using SeededHash::SeededHash;

  std::uint64_t operator()(const Key& key) const noexcept {
    if constexpr (std::is_integral_v<Key> || std::is_enum_v<Key>) {
      // Signed values widen by sign extension, so int(-1) and long(-1) hash equal.
      return hash_internal::mix64(static_cast<std::uint64_t>(key), seed_);
    } else if constexpr (std::is_pointer_v<Key>) {
      return hash_internal::mix64(reinterpret_cast<std::uintptr_t>(key), seed_);
    } else {
      return hash_internal::mix64(static_cast<std::uint64_t>(std::hash<Key>{}(key)), seed_);
    }
  }
};

// sisu::FoldHash: the default hasher of LockFreeHashMap, for 64-bit keys of tables that live
// in memory only. fold64: one 64x64->128-bit multiply, an xor and an xor-shift, against
// mix64's two multiplies and three xor-shifts. A lookup that waits on a cache miss overlaps
// more of the following lookups when its own instructions are fewer: +5..6% on the lock-free
// map's one-thread lookups (docs/benchmarks.md). Seeded like Hash (the process seed by
// default). Its output may change between versions: never persist it (ExtendibleHashMap files
// use Hash).
class FoldHash {
 public:
  FoldHash() noexcept : seed_(hash_internal::process_seed()) {}
  explicit FoldHash(std::uint64_t seed) noexcept : seed_(seed) {}

  std::uint64_t operator()(std::uint64_t key) const noexcept {
    return hash_internal::fold64(key, seed_);
  }
  std::uint64_t seed() const noexcept { return seed_; }

 private:
  std::uint64_t seed_;
};

template <>
class Hash<std::string> : public hash_internal::StringHash {
 public:
  using StringHash::StringHash;
};

template <>
class Hash<std::string_view> : public hash_internal::StringHash {
 public:
  using StringHash::StringHash;
};

}  // namespace sisu
