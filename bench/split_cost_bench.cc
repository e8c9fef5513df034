// Why triehash: growth with the stored triehash deciding each split, against the same map
// built with -DSISU_EHM_TRIE_SPLITS=0 (split_cost_bench_rehash), which hashes every key of a
// table again at each split. Reported per run: time to grow to `size` keys, splits, and keys
// hashed again. u64 keys hash in ~2 ns from a register; string keys (~35 bytes, on the heap)
// cost a pointer chase and XXH3 each, which is where the stored bits pay off.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "index/extendible_hash_map.h"

namespace {

template <class Key>
std::vector<Key> make_keys(std::size_t n) {
  std::mt19937_64 rng(n);
  std::vector<Key> keys(n);
  for (auto& k : keys) {
    if constexpr (std::is_same_v<Key, std::string>) {
      k = std::to_string(rng()) + "-key-padding-xx";  // ~35 bytes: never in the SSO buffer
    } else {
      k = rng();
    }
  }
  return keys;
}

template <class Key>
void BM_Grow(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::vector<Key> keys = make_keys<Key>(size);
  sisu::IndexStats stats;
  for (auto _ : state) {
    sisu::ExtendibleHashMap<Key, std::uint32_t> m;
    for (std::size_t i = 0; i < size; ++i) m[keys[i]] = static_cast<std::uint32_t>(i);
    state.PauseTiming();
    stats = m.stats();
    state.ResumeTiming();
  }
  state.counters["splits"] = static_cast<double>(stats.splits);
  state.counters["rehashed_keys"] = static_cast<double>(stats.rehashed_keys);
  state.counters["trie_splits"] = sisu::index_internal::kTrieSplits;
}

BENCHMARK_TEMPLATE(BM_Grow, std::uint64_t)->Arg(1 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Grow, std::string)->Arg(1 << 20)->Unit(benchmark::kMillisecond);

}  // namespace
