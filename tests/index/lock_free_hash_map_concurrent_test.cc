// Concurrent invariants of LockFreeHashMap, each checked while other threads keep the table
// resizing (tiny initial capacity, churn threads, yields at the racy points). 4+ threads on
// any machine; each test runs for a bounded number of operations, not a time.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tests/index/lock_free_test_support.h"

namespace sisu::testing {
namespace {

constexpr std::uint64_t kMaxKey = std::numeric_limits<std::uint64_t>::max();

// Runs body(t) on `threads` threads plus one churn thread, then joins.
template <class Map, class Body>
void run_with_churn(Map& m, int threads, Body body) {
  std::atomic<bool> stop{false};
  std::thread churner([&] { churn(m, std::uint64_t{1} << 40, stop); });
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { body(t); });
  for (auto& t : ts) t.join();
  stop.store(true);
  churner.join();
}

TEST(LockFreeHashMapConcurrent, PutIfAbsentElectsOneWinnerPerKey) {
  TestMap<> m;
  constexpr int kThreads = 4;
  constexpr std::uint64_t kKeys = 20000;
  std::vector<std::vector<std::uint64_t>> won(kThreads);
  std::vector<std::vector<std::uint64_t>> saw(kThreads, std::vector<std::uint64_t>(kKeys));
  run_with_churn(m, kThreads, [&](int t) {
    for (std::uint64_t k = 0; k < kKeys; ++k) {
      // Keys 0 and UINT64_MAX stand in for two of them.
      const std::uint64_t key = k == 1 ? kMaxKey : k;
      auto prev = m.put_if_absent(key, static_cast<std::uint64_t>(t));
      if (!prev) {
        won[t].push_back(k);
        saw[t][k] = static_cast<std::uint64_t>(t);
      } else {
        saw[t][k] = *prev;
      }
    }
  });
  std::vector<int> winners(kKeys, 0);
  for (int t = 0; t < kThreads; ++t) {
    for (std::uint64_t k : won[t]) ++winners[k];
  }
  for (std::uint64_t k = 0; k < kKeys; ++k) {
    ASSERT_EQ(winners[k], 1) << "key " << k;
    const std::uint64_t key = k == 1 ? kMaxKey : k;
    const auto v = m.get(key);
    ASSERT_TRUE(v.has_value());
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_EQ(saw[t][k], *v) << "a loser must be told the winner's value";
    }
  }
  EXPECT_GE(m.resizes(), 8u) << "the table must have grown under the racing threads";
}

TEST(LockFreeHashMapConcurrent, CompareAndSetIncrementsLoseNothing) {
  TestMap<> m;
  constexpr int kThreads = 4;
  constexpr int kIncrements = 3000;
  const std::uint64_t counters[] = {0, kMaxKey, 17, 18};
  for (std::uint64_t c : counters) m.put(c, 0);
  run_with_churn(m, kThreads, [&](int t) {
    std::mt19937_64 rng(t);
    for (int i = 0; i < kIncrements; ++i) {
      const std::uint64_t c = counters[rng() % 4];
      for (;;) {
        const std::uint64_t v = *m.get(c);
        if (m.replace(c, v, v + 1)) break;
      }
    }
  });
  std::uint64_t total = 0;
  for (std::uint64_t c : counters) total += *m.get(c);
  EXPECT_EQ(total, std::uint64_t{kThreads} * kIncrements);
}

TEST(LockFreeHashMapConcurrent, DisjointKeysSeeSequentialSemantics) {
  TestMap<> m;
  constexpr int kThreads = 4;
  std::atomic<int> failures{0};
  run_with_churn(m, kThreads, [&](int t) {
    std::unordered_map<std::uint64_t, std::uint64_t> model;
    std::mt19937_64 rng(100 + t);
    for (int i = 0; i < 8000; ++i) {
      // Keys owned by thread t: t, t + 4, t + 8, ... (thread 0 owns key 0).
      const std::uint64_t k = (rng() % 300) * kThreads + static_cast<std::uint64_t>(t);
      const std::uint64_t v = rng() % 1000;
      std::optional<std::uint64_t> before;
      if (auto it = model.find(k); it != model.end()) before.emplace(it->second);
      bool ok = true;
      switch (rng() % 5) {
        case 0:
          ok = m.put(k, v) == before;
          model[k] = v;
          break;
        case 1:
          ok = m.put_if_absent(k, v) == before;
          if (!before) model[k] = v;
          break;
        case 2:
          ok = m.remove(k) == before;
          model.erase(k);
          break;
        case 3: {
          const bool hit = before.has_value();
          ok = m.replace(k, before.value_or(v), v + 1) == hit;
          if (hit) model[k] = v + 1;
          break;
        }
        default:
          ok = m.get(k) == before;
          break;
      }
      if (!ok) failures.fetch_add(1);
    }
    for (const auto& [k, v] : model) {
      if (m.get(k) != v) failures.fetch_add(1);
    }
  });
  EXPECT_EQ(failures.load(), 0);
}

TEST(LockFreeHashMapConcurrent, StableKeysAreAlwaysVisibleAndCounted) {
  TestMap<> m;
  constexpr std::uint64_t kStable = 200;
  for (std::uint64_t k = 0; k < kStable; ++k) m.put(k * 7919, k);
  m.put(kMaxKey, 99);
  std::atomic<bool> stop{false};
  std::atomic<int> missing{0};
  std::atomic<int> undercounted{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        for (std::uint64_t k = 0; k < kStable; ++k) {
          if (m.get(k * 7919) != k) missing.fetch_add(1);
        }
        if (m.get(kMaxKey) != 99u) missing.fetch_add(1);
        // Present for the whole call: size() must count them.
        if (m.size() < kStable + 1) undercounted.fetch_add(1);
        std::this_thread::yield();  // 5 threads on 2 cores: let the writers run
      }
    });
  }
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937_64 rng(w);
      // Fresh keys, each removed 64 puts later: dead keys fill tables, which resize.
      const std::uint64_t base = (std::uint64_t{1} << 50) + (static_cast<std::uint64_t>(w) << 40);
      for (std::uint64_t i = 0; i < 6000; ++i) {
        m.put(base + i, i);
        if (i >= 64) m.remove(base + i - 64);
      }
    });
  }
  for (auto& w : writers) w.join();
  stop.store(true);
  for (auto& r : readers) r.join();
  EXPECT_EQ(missing.load(), 0);
  EXPECT_EQ(undercounted.load(), 0);
  EXPECT_GE(m.resizes(), 10u);
}

TEST(LockFreeHashMapConcurrent, ChurnKeepsMemoryBounded) {
  epoch::synchronize();
  const std::int64_t baseline = lock_free_internal::live_table_bytes.load();
  std::int64_t peak = 0;
  {
    TestMap<> m;
    std::atomic<bool> stop{false};
    std::atomic<std::int64_t> peak_seen{0};
    std::thread watcher([&] {
      while (!stop.load()) {
        const std::int64_t b = lock_free_internal::live_table_bytes.load() - baseline;
        std::int64_t p = peak_seen.load();
        while (b > p && !peak_seen.compare_exchange_weak(p, b)) {
        }
        std::this_thread::yield();
      }
    });
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        // About 256 live keys per thread, every key new: dead keys force resize after resize.
        const std::uint64_t base = static_cast<std::uint64_t>(t) << 40;
        for (std::uint64_t i = 0; i < 40000; ++i) {
          m.put(base + i, i);
          if (i >= 256) m.remove(base + i - 256);
        }
      });
    }
    for (auto& t : ts) t.join();
    stop.store(true);
    watcher.join();
    peak = peak_seen.load();
    EXPECT_GT(m.resizes(), 50u);
    EXPECT_EQ(m.size(), 4u * 256);
  }
  // 1024 live keys need a 4096-slot table (128 KiB); a resize holds two, and retired tables
  // wait a few epochs (longer while a pinned writer is descheduled: 5 threads share 2 cores).
  // 8 MiB means reclamation keeps up; a leak of one table per resize would pass it within
  // ~64 resizes, and the exact count after synchronize() below catches any leak.
  EXPECT_LT(peak, 8 << 20) << "peak bytes of tables alive during churn";
  epoch::synchronize();
  EXPECT_EQ(lock_free_internal::live_table_bytes.load(), baseline);
}

TEST(LockFreeHashMapConcurrent, ForEachIsWeaklyConsistent) {
  TestMap<> m;
  constexpr std::uint64_t kStable = 300;
  // Stable keys keep their key in the top 32 bits of every value they ever hold.
  for (std::uint64_t k = 0; k < kStable; ++k) m.put(k, k << 32);
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937_64 rng(w);
      std::uint64_t i = 0;
      while (!stop.load()) {
        ++i;
        // Update stable keys (never remove them) and churn others.
        const std::uint64_t s = rng() % kStable;
        m.put(s, (s << 32) | (i & 0xffffffff));
        // Fresh keys, each removed 64 puts later: dead keys keep the table resizing.
        const std::uint64_t k = 1000000 + (static_cast<std::uint64_t>(w) << 40) + i;
        m.put(k, k & 0xffff);
        if (i > 64) m.remove(k - 64);
      }
    });
  }
  // At least 30 walks, and on until walks have overlapped 20 resizes.
  // (Yielding between walks: on 2 cores the writers must get to run.)
  for (int round = 0; round < 200000 && (round < 30 || m.resizes() < 20); ++round) {
    std::this_thread::yield();
    std::unordered_set<std::uint64_t> seen;
    std::size_t stable_seen = 0;
    m.for_each([&](std::uint64_t k, std::uint64_t v) {
      ASSERT_TRUE(seen.insert(k).second) << "key " << k << " seen twice";
      if (k < kStable) {
        ASSERT_EQ(v >> 32, k) << "a value key " << k << " never held";
        ++stable_seen;
      } else {
        ASSERT_GE(k, 1000000u) << "a key never inserted";
        ASSERT_EQ(v, k & 0xffff) << "a value key " << k << " never held";
      }
    });
    ASSERT_EQ(stable_seen, kStable) << "a key present for the whole call was missed";
  }
  stop.store(true);
  for (auto& w : writers) w.join();
  EXPECT_GE(m.resizes(), 20u);
}

TEST(LockFreeHashMapConcurrent, FreezeIsLinearizableWithWriters) {
  TestMap<> m;
  constexpr int kWriters = 4;
  std::atomic<bool> go{false};
  // Each writer puts increasing keys of its own until a put throws; the keys it was told
  // were written must all be there after the freeze, the one that threw must not.
  std::vector<std::uint64_t> last_ok(kWriters, 0);
  std::vector<std::uint64_t> threw_at(kWriters, 0);
  std::vector<std::thread> ts;
  for (int t = 0; t < kWriters; ++t) {
    ts.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      const std::uint64_t base = static_cast<std::uint64_t>(t + 1) << 32;
      for (std::uint64_t i = 1;; ++i) {
        try {
          m.put(base + i, i);
          last_ok[t] = i;
        } catch (const std::logic_error&) {
          threw_at[t] = i;
          break;
        }
      }
    });
  }
  go.store(true);
  // Let the writers get going (and resize), then freeze under them.
  while (m.size() < 5000) std::this_thread::yield();
  m.freeze();
  EXPECT_TRUE(m.frozen());
  const std::size_t size_at_freeze = m.size();
  for (auto& t : ts) t.join();
  std::size_t expected = 0;
  for (int t = 0; t < kWriters; ++t) {
    const std::uint64_t base = static_cast<std::uint64_t>(t + 1) << 32;
    ASSERT_EQ(threw_at[t], last_ok[t] + 1);
    for (std::uint64_t i = 1; i <= last_ok[t]; ++i) ASSERT_EQ(m.get(base + i), i);
    ASSERT_FALSE(m.get(base + threw_at[t])) << "a put that threw changed the map";
    expected += last_ok[t];
  }
  EXPECT_EQ(m.size(), expected) << "exact once the writers are joined";
  // Writers were still failing their last puts: size() may count those for a moment, never
  // fewer than were there.
  EXPECT_GE(size_at_freeze, expected);
  EXPECT_THROW(m.remove(1), std::logic_error);
}

}  // namespace
}  // namespace sisu::testing
