// Prints what a lookup miss reads, for sisu and (when built with them) boost and absl: each
// map's metadata bytes, and how many keys a miss compares (each a slot read: a false match
// of the metadata filter). Counted, not timed: the maps take a KeyEqual that counts its calls.
// It shows what sisu's 16 metadata bits per slot buy against a flat table's 8 (docs/design.md,
// "What the metadata bits filter"). Usage: miss_filter [N...] (default 3.4M 4M 6.8M 10M keys,
// random u64, misses by 2M other random keys).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench/peer_maps.h"
#include "index/extendible_hash_map.h"

namespace {

using sisu::bench::BenchHash;
using sisu::bench::kSeed;
using sisu::bench::random_keys;

std::size_t compares = 0;

struct CountingEq {
  bool operator()(std::uint64_t a, std::uint64_t b) const {
    ++compares;
    return a == b;
  }
};

// Key compares per lookup of the absent keys.
template <class Map>
double compares_per_miss(const Map& m, const std::vector<std::uint64_t>& misses) {
  compares = 0;
  std::size_t found = 0;
  for (std::uint64_t k : misses) found += m.find(k) != m.end();
  if (found != 0) std::fprintf(stderr, "miss_filter: %zu of the absent keys were found\n", found);
  return static_cast<double>(compares) / static_cast<double>(misses.size());
}

void row(const char* name, std::size_t n, double load, double meta_bytes, double per_miss,
         const char* extra) {
  std::printf("%-6s %10zu %6.3f %10.1f %12.2f %14.4f %s\n", name, n, load, meta_bytes / 1e6,
              meta_bytes / static_cast<double>(n), per_miss, extra);
}

void measure(std::size_t n, const std::vector<std::uint64_t>& misses) {
  const std::vector<std::uint64_t> keys = random_keys(n, 1);
  {
    sisu::ExtendibleHashMap<std::uint64_t, std::uint64_t, sisu::Hash<std::uint64_t>, CountingEq> m(
        0, sisu::Hash<std::uint64_t>(kSeed));
    for (std::uint64_t k : keys) m[k] = k;
    const sisu::IndexStats s = m.stats();
    const double meta = static_cast<double>(s.capacity) / sisu::index_internal::kGroupSlots *
                        sisu::index_internal::kGroupMetaBytes;
    char extra[64];
    std::snprintf(extra, sizeof extra, "(%.3f groups per miss)", s.mean_miss_probe_groups);
    row("sisu", n, s.load_factor, meta, compares_per_miss(m, misses), extra);
  }
#ifdef SISU_HAVE_BOOST
  {
    boost::unordered_flat_map<std::uint64_t, std::uint64_t, BenchHash, CountingEq> m;
    for (std::uint64_t k : keys) m[k] = k;
    // bucket_count() is its slots: groups of 15, each with 16 bytes of metadata.
    const double meta = static_cast<double>(m.bucket_count()) / 15 * 16;
    row("boost", n, m.load_factor(), meta, compares_per_miss(m, misses), "");
  }
#endif
#ifdef SISU_HAVE_ABSL
  {
    absl::flat_hash_map<std::uint64_t, std::uint64_t, BenchHash, CountingEq> m;
    for (std::uint64_t k : keys) m[k] = k;
    // One control byte per slot, plus a group's width of cloned bytes.
    const double meta = static_cast<double>(m.capacity()) + 16;
    row("absl", n, m.load_factor(), meta, compares_per_miss(m, misses), "");
  }
#endif
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 10));
  if (sizes.empty()) sizes = {3'400'000, 4'000'000, 6'800'000, 10'000'000};
  const std::vector<std::uint64_t> misses = random_keys(2'000'000, 2);
  std::printf("%-6s %10s %6s %10s %12s %14s\n", "map", "keys", "load", "meta MB", "meta B/key",
              "compares/miss");
  for (std::size_t n : sizes) measure(n, misses);
  return 0;
}
