// ExtendibleHashMap against absl::flat_hash_map, boost::unordered_flat_map and
// std::unordered_map, in the same binary, all with the same hasher (sisu::Hash with a fixed
// seed; boost is told it avalanches so it does not mix again).
//
//   BM_ShortUse:  the seed's benchmark. Create with no hint, insert `size` unique u64 keys, look
//                 them all up, destroy; `times` times per iteration. Reported: ns per key.
//   BM_Lookup:    hits and misses on a map of 4M or 10M keys, in random order; also at 3.4M
//                 and 6.8M keys, where boost and absl are at their fullest (load 0.86 and
//                 0.81; sisu's is 0.80-0.86 at these sizes), to compare the maps at the same
//                 load factor (counter `load`).
//   BM_Update:    `m[k] += 1` on present keys of a 4M or 10M map, in random order.
//   BM_LookupLatency: dependent hits (each key is the value found before), so that nothing
//                 overlaps: the latency of one lookup's chain of loads, at 6215 keys (in
//                 cache), 1M, 4M and 10M; BM_ChaseLatency, one dependent load per step over as
//                 many 16-byte nodes, is its yardstick.
//   BM_InsertSized, BM_FindHot: one insert into a map sized ahead, one lookup of a present
//                 key, at 6215 keys (in cache): the per-operation cost without growth.
//   BM_Growth:    insert 4M or 10M keys one by one, timing each: the slowest insert (max) and
//                 the 99.9th percentile, and the peak memory during growth over the final.
//   BM_Memory:    bytes per entry at 4M (memory from the map's own accounting for sisu, from a
//                 counting allocator for the peers).
// A peer whose library is missing at build time is skipped with a message.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

#include "bench/peer_maps.h"
#include "index/extendible_hash_map.h"

namespace {

using sisu::bench::BenchHash;
using sisu::bench::kSeed;
using sisu::bench::random_keys;

// Counts the bytes a peer's allocator holds (current and peak), for the memory benchmarks.
struct AllocStats {
  static inline std::size_t current = 0;
  static inline std::size_t peak = 0;
  static void reset() { current = peak = 0; }
};
template <class T>
struct CountingAllocator {
  using value_type = T;
  CountingAllocator() = default;
  template <class U>
  CountingAllocator(const CountingAllocator<U>&) {}
  T* allocate(std::size_t n) {
    AllocStats::current += n * sizeof(T);
    AllocStats::peak = std::max(AllocStats::peak, AllocStats::current);
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) {
    AllocStats::current -= n * sizeof(T);
    std::allocator<T>().deallocate(p, n);
  }
  friend bool operator==(const CountingAllocator&, const CountingAllocator&) { return true; }
};

using Pair = std::pair<const std::uint64_t, std::uint64_t>;

struct Sisu {
  using Map = sisu::ExtendibleHashMap<std::uint64_t, std::uint64_t, sisu::Hash<std::uint64_t>>;
  static Map make() { return Map(0, sisu::Hash<std::uint64_t>(kSeed)); }
  static Map make_sized(std::size_t n) { return Map(n, sisu::Hash<std::uint64_t>(kSeed)); }
  static std::size_t memory(const Map& m) { return m.memory_bytes(); }
  static double load(const Map& m) { return m.stats().load_factor; }
  static bool available() { return true; }
};
#ifdef SISU_HAVE_ABSL
struct Absl {
  using Map = absl::flat_hash_map<std::uint64_t, std::uint64_t, BenchHash, std::equal_to<>,
                                  CountingAllocator<Pair>>;
  static Map make() { return Map(); }
  static Map make_sized(std::size_t n) {
    Map m;
    m.reserve(n);
    return m;
  }
  static std::size_t memory(const Map&) { return AllocStats::current; }
  static double load(const Map& m) { return m.load_factor(); }
  static bool available() { return true; }
};
#endif
#ifdef SISU_HAVE_BOOST
struct Boost {
  using Map = boost::unordered_flat_map<std::uint64_t, std::uint64_t, BenchHash, std::equal_to<>,
                                        CountingAllocator<Pair>>;
  static Map make() { return Map(); }
  static Map make_sized(std::size_t n) {
    Map m;
    m.reserve(n);
    return m;
  }
  static std::size_t memory(const Map&) { return AllocStats::current; }
  static double load(const Map& m) { return m.load_factor(); }
  static bool available() { return true; }
};
#endif
struct Std {
  using Map = std::unordered_map<std::uint64_t, std::uint64_t, BenchHash, std::equal_to<>,
                                 CountingAllocator<Pair>>;
  static Map make() { return Map(); }
  static Map make_sized(std::size_t n) {
    Map m;
    m.reserve(n);
    return m;
  }
  static std::size_t memory(const Map&) { return AllocStats::current; }
  static double load(const Map& m) { return m.load_factor(); }
  static bool available() { return true; }
};

template <class P>
void BM_ShortUse(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto times = static_cast<std::size_t>(state.range(1));
  const std::vector<std::uint64_t> keys = random_keys(size, size);
  std::uint64_t sum = 0;
  double ns = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t t = 0; t < times; ++t) {
      auto m = P::make();
      for (std::uint64_t k : keys) m[k] = k;
      for (std::uint64_t k : keys) sum += m.find(k)->second;
    }
    ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  }
  benchmark::DoNotOptimize(sum);
  // Per key: one insert and one lookup, the map's creation and destruction shared among them.
  state.counters["ns_per_key"] =
      ns / static_cast<double>(size * times * static_cast<std::size_t>(state.iterations()));
}

template <class P>
void BM_Lookup(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const bool hits = state.range(1) != 0;
  const std::vector<std::uint64_t> keys = random_keys(size, 1);
  auto m = P::make();
  for (std::uint64_t k : keys) m[k] = k;
  std::vector<std::uint64_t> probe = hits ? keys : random_keys(size, 2);  // 2: all misses
  std::shuffle(probe.begin(), probe.end(), std::mt19937_64(3));
  std::size_t i = 0;
  std::uint64_t found = 0;
  for (auto _ : state) {
    found += m.find(probe[i]) != m.end();
    if (++i == probe.size()) i = 0;
  }
  benchmark::DoNotOptimize(found);
  state.SetItemsProcessed(state.iterations());
  state.counters["load"] = P::load(m);
}

// Updates of present keys (`m[k] += 1`) on a map of 4M or 10M keys, in random order: the
// insert path's lookup.
template <class P>
void BM_Update(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::vector<std::uint64_t> keys = random_keys(size, 1);
  auto m = P::make();
  for (std::uint64_t k : keys) m[k] = k;
  std::vector<std::uint64_t> probe = keys;
  std::shuffle(probe.begin(), probe.end(), std::mt19937_64(3));
  std::size_t i = 0;
  for (auto _ : state) {
    m[probe[i]] += 1;
    if (++i == probe.size()) i = 0;
  }
  benchmark::DoNotOptimize(m.size());
  state.SetItemsProcessed(state.iterations());
}

// One lookup after another, each waiting for the one before: the value found is the next key
// to look up (a random cycle through all keys), so lookups never overlap and the time per
// lookup is the latency of its chain of dependent loads. BM_Lookup's lookups are independent
// and overlap as far as the CPU's reorder window reaches; throughput is about this latency
// times the instructions per lookup over the window's size (docs/design.md).
template <class P>
void BM_LookupLatency(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint64_t> keys = random_keys(size, 1);
  std::shuffle(keys.begin(), keys.end(), std::mt19937_64(5));
  auto m = P::make();
  for (std::size_t i = 0; i < size; ++i) m[keys[i]] = keys[(i + 1) % size];
  if (m.size() != size) {  // a repeated key would cut the cycle short
    state.SkipWithError("random_keys repeated a key");
    return;
  }
  std::uint64_t at = keys[0];
  for (auto _ : state) {
    at = m.find(at)->second;
    benchmark::DoNotOptimize(at);
  }
  state.SetItemsProcessed(state.iterations());
}

// The reference for BM_LookupLatency: one dependent load after another through a random
// cycle over `size` 16-byte nodes (the footprint of a map's slots at full load), so that a
// lookup's latency reads as a number of such loads.
void BM_ChaseLatency(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  struct Node {
    std::uint64_t next, pad;
  };
  std::vector<std::uint64_t> order(size);
  for (std::size_t i = 0; i < size; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(5));
  std::vector<Node> nodes(size);
  for (std::size_t i = 0; i < size; ++i) nodes[order[i]].next = order[(i + 1) % size];
  std::uint64_t at = order[0];
  for (auto _ : state) {
    at = nodes[at].next;
    benchmark::DoNotOptimize(at);
  }
  state.SetItemsProcessed(state.iterations());
}

template <class P>
void BM_Growth(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::vector<std::uint64_t> keys = random_keys(size, 4);
  std::vector<std::uint32_t> ns(size);
  double peak_over_final = 0, bytes_per_entry = 0;
  for (auto _ : state) {
    AllocStats::reset();
    std::size_t peak = 0;
    auto m = P::make();
    for (std::size_t i = 0; i < size; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      m[keys[i]] = i;
      const auto t1 = std::chrono::steady_clock::now();
      ns[i] = static_cast<std::uint32_t>(
          std::min<std::int64_t>(UINT32_MAX, std::chrono::nanoseconds(t1 - t0).count()));
      if constexpr (std::is_same_v<P, Sisu>) peak = std::max(peak, P::memory(m));
    }
    if constexpr (!std::is_same_v<P, Sisu>) peak = AllocStats::peak;
    const std::size_t final_bytes = P::memory(m);
    peak_over_final = static_cast<double>(peak) / static_cast<double>(final_bytes);
    bytes_per_entry = static_cast<double>(final_bytes) / static_cast<double>(size);
  }
  std::sort(ns.begin(), ns.end());
  // How many inserts took over 100 us: one or two in millions are the OS preempting the
  // benchmark (2 shared vCPUs), a structural pause shows as a count that grows with size.
  state.counters["over_100us"] = static_cast<double>(
      ns.end() - std::upper_bound(ns.begin(), ns.end(), std::uint32_t{100000}));
  state.counters["max_us"] = ns.back() / 1e3;
  state.counters["p999_us"] = ns[ns.size() * 999 / 1000] / 1e3;
  state.counters["p50_ns"] = ns[ns.size() / 2];
  state.counters["peak_over_final"] = peak_over_final;
  state.counters["bytes_per_entry"] = bytes_per_entry;
}

// The cost of one operation without growth, at a ShortUse size whose map stays in cache:
// inserts into a map sized for them (times a fresh map, its creation included), and lookups
// of present keys (reading the value).
template <class P>
void BM_InsertSized(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::vector<std::uint64_t> keys = random_keys(size, size);
  std::uint64_t sum = 0;
  for (auto _ : state) {
    auto m = P::make_sized(size);
    for (std::uint64_t k : keys) m[k] = k;
    sum += m.size();
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

template <class P>
void BM_FindHot(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::vector<std::uint64_t> keys = random_keys(size, size);
  auto m = P::make();
  for (std::uint64_t k : keys) m[k] = k;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    for (std::uint64_t k : keys) sum += m.find(k)->second;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

void ShortUseArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"size", "times"});
  for (auto [size, times] : std::initializer_list<std::pair<int, int>>{
           {7, 10000}, {33, 1000}, {121, 1000}, {795, 1000}, {1092, 1000}, {1976, 200},
           {2359, 200}, {6215, 200}, {500000, 5}}) {
    b->Args({size, times});
  }
}
void LookupArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"size", "hit"});
  // 3.4M and 6.8M: just under the peers' rehash points (2^18 and 2^19 groups of 15 slots, max
  // load 7/8), where a flat table is as full as sisu's tables are on average.
  for (int size : {3400000, 4000000, 6800000, 10000000}) {
    b->Args({size, 1});
    b->Args({size, 0});
  }
}
void LatencyArgs(benchmark::internal::Benchmark* b) {
  b->ArgName("size")->Arg(6215)->Arg(1000000)->Arg(4000000)->Arg(10000000);
}
void GrowthArgs(benchmark::internal::Benchmark* b) {
  b->ArgName("size")->Arg(4000000)->Arg(10000000)->Iterations(1)->Unit(benchmark::kMillisecond);
}

#define SISU_PEER_BENCHMARKS(P)                                                   \
  BENCHMARK_TEMPLATE(BM_ShortUse, P)->Apply(ShortUseArgs);                        \
  BENCHMARK_TEMPLATE(BM_Lookup, P)->Apply(LookupArgs);                            \
  BENCHMARK_TEMPLATE(BM_LookupLatency, P)->Apply(LatencyArgs);                    \
  BENCHMARK_TEMPLATE(BM_Update, P)->ArgName("size")->Arg(4000000)->Arg(10000000); \
  BENCHMARK_TEMPLATE(BM_InsertSized, P)->ArgName("size")->Arg(6215);              \
  BENCHMARK_TEMPLATE(BM_FindHot, P)->ArgName("size")->Arg(6215);                  \
  BENCHMARK_TEMPLATE(BM_Growth, P)->Apply(GrowthArgs);

SISU_PEER_BENCHMARKS(Sisu)
#ifdef SISU_HAVE_ABSL
SISU_PEER_BENCHMARKS(Absl)
#endif
#ifdef SISU_HAVE_BOOST
SISU_PEER_BENCHMARKS(Boost)
#endif
SISU_PEER_BENCHMARKS(Std)
BENCHMARK(BM_ChaseLatency)->Apply(LatencyArgs);

}  // namespace
