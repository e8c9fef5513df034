#include "util/hash.h"

#include <chrono>
#include <cstdlib>
#include <random>

// Header-only use of libxxhash: the functions are compiled into libsisu, so neither the
// library's users nor the installed package need libxxhash at link time.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace sisu::hash_internal {
namespace {

std::uint64_t make_process_seed() noexcept {
  if (const char* env = std::getenv("SISU_HASH_SEED"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 0);
    if (end != nullptr && *end == '\0') return v;
    // A malformed value falls through to a random seed: reproducibility was asked for, but a
    // predictable seed must never come from a typo silently parsed as 0.
  }
  std::uint64_t seed = 0;
  try {
    std::random_device rd;
    seed = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    // No entropy device: time and ASLR still differ between processes.
  }
  seed ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  seed ^= reinterpret_cast<std::uintptr_t>(&seed);
  return mix64(seed, 0x6a09e667f3bcc908ULL);
}

}  // namespace

std::uint64_t process_seed() noexcept {
  static const std::uint64_t seed = make_process_seed();
  return seed;
}

std::uint64_t hash_bytes(const void* data, std::size_t len, std::uint64_t seed) noexcept {
  return XXH3_64bits_withSeed(data, len, seed);
}

}  // namespace sisu::hash_internal
