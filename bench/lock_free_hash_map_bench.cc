// LockFreeHashMap against the concurrent maps a user would otherwise pick, in one process:
// libcuckoo's cuckoohash_map, TBB's concurrent_hash_map and concurrent_unordered_map, and
// absl::flat_hash_map on one thread (the ceiling without synchronization). The concurrent peers
// hash with sisu's default (sisu::FoldHash: a folded multiply, an xor-shift), absl with its own
// absl::Hash (a folded multiply), so no map pays for a heavier hash than sisu's.
//
// Workloads (each op draws a key from a prefilled set of 2^20 random 64-bit keys):
//   Mix/90      90% get, 10% put (overwrite), keys uniform or Zipf(0.99)
//   Mix/50      50% get, 50% put, uniform
//   Churn       remove a live key, insert a fresh one (the live set stays 2^20)
//   Growth      insert-only from an empty map to 10M keys; counters report the longest single
//               insert (max_put_us) and the insert rate (Minserts_per_s, over wall time)
// Reported: items_per_second = operations per second over all threads.
//
//   build/bench/lock_free_hash_map_bench --benchmark_repetitions=5
//     (add --benchmark_report_aggregates_only=true for medians only)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "index/lock_free_hash_map.h"
#include "util/hash.h"

#ifdef SISU_HAVE_CUCKOO
#include <libcuckoo/cuckoohash_map.hh>
#endif
#ifdef SISU_HAVE_TBB
#include <tbb/concurrent_hash_map.h>
#include <tbb/concurrent_unordered_map.h>
#endif
#ifdef SISU_HAVE_ABSL
#include <absl/container/flat_hash_map.h>
#endif

namespace {

// What every map but absl hashes with: LockFreeHashMap's default.
using BenchHash = sisu::LockFreeHashMapTraits::Hasher;

constexpr std::size_t kKeys = std::size_t{1} << 20;

// Random distinct-enough 64-bit keys (a bijection of 0..n-1), shared by every map.
const std::vector<std::uint64_t>& keys() {
  static const std::vector<std::uint64_t> k = [] {
    std::vector<std::uint64_t> v(kKeys);
    for (std::size_t i = 0; i < kKeys; ++i) v[i] = sisu::hash_internal::mix64(i, 0x5eed);
    return v;
  }();
  return k;
}

struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    s += 0x9e3779b97f4a7c15ULL;
    return sisu::hash_internal::mix64(s, 0);
  }
  double uniform01() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

// YCSB's Zipfian generator (Gray et al.), theta = 0.99 over kKeys ranks. Rank r maps to
// keys()[r], which is random, so hot keys are spread over the table.
class Zipf {
 public:
  Zipf() {
    zetan_ = zeta(kKeys);
    const double zeta2 = zeta(2);
    alpha_ = 1.0 / (1.0 - kTheta);
    eta_ = (1 - std::pow(2.0 / kKeys, 1 - kTheta)) / (1 - zeta2 / zetan_);
  }
  std::size_t next(Rng& rng) const {
    const double u = rng.uniform01();
    const double uz = u * zetan_;
    if (uz < 1.0) return 0;
    if (uz < 1.0 + std::pow(0.5, kTheta)) return 1;
    const auto r = static_cast<std::size_t>(kKeys * std::pow(eta_ * u - eta_ + 1, alpha_));
    return std::min(r, kKeys - 1);
  }

 private:
  static double zeta(std::size_t n) {
    double s = 0;
    for (std::size_t i = 1; i <= n; ++i) s += 1.0 / std::pow(static_cast<double>(i), kTheta);
    return s;
  }
  static constexpr double kTheta = 0.99;
  double zetan_, alpha_, eta_;
};

const Zipf& zipf() {
  static const Zipf z;
  return z;
}

// ---- adapters: get / put (insert or overwrite) / remove ---------------------------------
// Forced inline: a user's call of get() is inlined (it is always_inline), and GCC inlines the
// peers' adapters on its own but not this one, whose call then cost sisu ~2% here.
struct SisuMap {
  static constexpr bool kConcurrent = true;
  sisu::LockFreeHashMap<> m;
  [[gnu::always_inline]] bool get(std::uint64_t k) { return m.get(k).has_value(); }
  void put(std::uint64_t k, std::uint64_t v) { m.put(k, v); }
  void remove(std::uint64_t k) { m.remove(k); }
};

#ifdef SISU_HAVE_CUCKOO
struct CuckooMap {
  static constexpr bool kConcurrent = true;
  libcuckoo::cuckoohash_map<std::uint64_t, std::uint64_t, BenchHash> m;
  bool get(std::uint64_t k) {
    std::uint64_t v;
    return m.find(k, v);
  }
  void put(std::uint64_t k, std::uint64_t v) { m.insert_or_assign(k, v); }
  void remove(std::uint64_t k) { m.erase(k); }
};
#endif

#ifdef SISU_HAVE_TBB
struct TbbHashCompare {
  static std::size_t hash(std::uint64_t k) { return BenchHash(1)(k); }
  static bool equal(std::uint64_t a, std::uint64_t b) { return a == b; }
};
struct TbbHashMap {
  static constexpr bool kConcurrent = true;
  tbb::concurrent_hash_map<std::uint64_t, std::uint64_t, TbbHashCompare> m;
  bool get(std::uint64_t k) {
    decltype(m)::const_accessor a;
    return m.find(a, k);
  }
  void put(std::uint64_t k, std::uint64_t v) {
    decltype(m)::accessor a;
    m.insert(a, k);
    a->second = v;
  }
  void remove(std::uint64_t k) { m.erase(k); }
};
// concurrent_unordered_map has no concurrent erase: it runs the get/put workloads only. Values
// are atomics so that concurrent overwrites are not data races.
struct TbbUnorderedMap {
  static constexpr bool kConcurrent = true;
  static constexpr bool kNoRemove = true;
  tbb::concurrent_unordered_map<std::uint64_t, std::atomic<std::uint64_t>, BenchHash> m;
  bool get(std::uint64_t k) { return m.find(k) != m.end(); }
  void put(std::uint64_t k, std::uint64_t v) {
    auto [it, inserted] = m.emplace(k, v);
    if (!inserted) it->second.store(v, std::memory_order_relaxed);
  }
  void remove(std::uint64_t) {}
};
#endif

#ifdef SISU_HAVE_ABSL
struct AbslMap {
  static constexpr bool kConcurrent = false;  // one thread only: the no-synchronization ceiling
  absl::flat_hash_map<std::uint64_t, std::uint64_t> m;
  bool get(std::uint64_t k) { return m.find(k) != m.end(); }
  void put(std::uint64_t k, std::uint64_t v) { m.insert_or_assign(k, v); }
  void remove(std::uint64_t k) { m.erase(k); }
};
#endif

template <class M>
constexpr bool has_remove() {
  if constexpr (requires { M::kNoRemove; }) return !M::kNoRemove;
  return true;
}

// ---- workloads --------------------------------------------------------------------------
template <class M>
M* prefilled() {
  auto* m = new M;
  for (std::size_t i = 0; i < kKeys; ++i) m->put(keys()[i], i);
  return m;
}

// Mix: get_pct% get, the rest put; zipf or uniform keys. Ops run in batches of 64 between
// checks of the benchmark loop.
template <class M, int kGetPct, bool kZipf>
void BM_Mix(benchmark::State& state) {
  static M* map = nullptr;
  if (state.thread_index() == 0) map = prefilled<M>();
  Rng rng{static_cast<std::uint64_t>(state.thread_index()) * 7919 + 1};
  const auto& k = keys();
  std::uint64_t found = 0;
  for (auto _ : state) {
    for (int i = 0; i < 64; ++i) {
      const std::size_t r = kZipf ? zipf().next(rng) : (rng.next() & (kKeys - 1));
      if (static_cast<int>(rng.next() % 100) < kGetPct) {
        found += map->get(k[r]);
      } else {
        map->put(k[r], r);
      }
    }
  }
  benchmark::DoNotOptimize(found);
  state.SetItemsProcessed(state.iterations() * 64);
  if (state.thread_index() == 0) {
    delete map;
    map = nullptr;
  }
}

// Churn: each op removes one of this thread's live keys and inserts a fresh one.
template <class M>
void BM_Churn(benchmark::State& state) {
  static M* map = nullptr;
  const std::size_t threads = static_cast<std::size_t>(state.threads());
  const std::size_t per_thread = kKeys / threads;
  const std::size_t t = static_cast<std::size_t>(state.thread_index());
  if (t == 0) map = prefilled<M>();
  // Thread t owns keys i with i % threads == t; key "generation" g of slot i is
  // mix64(i + g * kKeys), so every insert is a key never seen before.
  std::uint64_t next = 0;
  for (auto _ : state) {
    for (int i = 0; i < 64; ++i) {
      const std::uint64_t slot = (next % per_thread) * threads + t;
      const std::uint64_t gen = next / per_thread;
      map->remove(sisu::hash_internal::mix64(slot + gen * kKeys, 0x5eed));
      map->put(sisu::hash_internal::mix64(slot + (gen + 1) * kKeys, 0x5eed), slot);
      ++next;
    }
  }
  state.SetItemsProcessed(state.iterations() * 64 * 2);
  if (t == 0) {
    delete map;
    map = nullptr;
  }
}

// Growth: the threads insert 10M fresh keys into an empty map, timing every insert. Counters:
// max_put_us (the longest single insert of any thread) and Minserts_per_s (10M over the wall
// time of the slowest thread).
template <class M>
void BM_Growth(benchmark::State& state) {
  constexpr std::size_t kTotal = 10'000'000;
  static M* map = nullptr;
  static std::atomic<std::int64_t> max_ns{0};
  static std::atomic<std::int64_t> wall_ns{0};
  const std::size_t threads = static_cast<std::size_t>(state.threads());
  const std::size_t t = static_cast<std::size_t>(state.thread_index());
  if (t == 0) {
    map = new M;  // before the loop: the threads start together after it (one iteration)
    max_ns.store(0);
    wall_ns.store(0);
  }
  auto raise = [](std::atomic<std::int64_t>& a, std::int64_t v) {
    std::int64_t cur = a.load();
    while (v > cur && !a.compare_exchange_weak(cur, v)) {
    }
  };
  for (auto _ : state) {
    std::int64_t worst = 0;
    const auto begin = std::chrono::steady_clock::now();
    for (std::size_t i = t; i < kTotal; i += threads) {
      const auto start = std::chrono::steady_clock::now();
      map->put(sisu::hash_internal::mix64(i, 0x9e0), i);
      const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::steady_clock::now() - start)
                                  .count();
      worst = std::max(worst, ns);
    }
    raise(max_ns, worst);
    raise(wall_ns, std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now() - begin)
                       .count());
  }
  if (t == 0) {
    state.counters["max_put_us"] = static_cast<double>(max_ns.load()) / 1000.0;
    state.counters["Minserts_per_s"] =
        static_cast<double>(kTotal) * 1000.0 / static_cast<double>(wall_ns.load());
    delete map;
    map = nullptr;
  }
}

template <class M>
void register_map(const char* name) {
  const int max_threads = M::kConcurrent ? 2 : 1;
  auto reg = [&](const std::string& what, auto fn, bool once = false) {
    auto* b = benchmark::RegisterBenchmark((what + "/" + name).c_str(), fn);
    b->UseRealTime();
    if (once) {
      b->Iterations(1);
    } else {
      b->MinTime(0.3);
    }
    for (int th = 1; th <= max_threads; ++th) b->Threads(th);
    return b;
  };
  reg("Mix90Uniform", BM_Mix<M, 90, false>);
  reg("Mix100Uniform", BM_Mix<M, 100, false>);
  reg("Mix90Zipf", BM_Mix<M, 90, true>);
  reg("Mix50Uniform", BM_Mix<M, 50, false>);
  if constexpr (has_remove<M>()) reg("Churn", BM_Churn<M>);
  reg("Growth10M", BM_Growth<M>, /*once=*/true);
}

const bool registered = [] {
  register_map<SisuMap>("sisu");
#ifdef SISU_HAVE_CUCKOO
  register_map<CuckooMap>("libcuckoo");
#endif
#ifdef SISU_HAVE_TBB
  register_map<TbbHashMap>("tbb_hash_map");
  register_map<TbbUnorderedMap>("tbb_unordered_map");
#endif
#ifdef SISU_HAVE_ABSL
  register_map<AbslMap>("absl_1thread");
#endif
  return true;
}();

}  // namespace
