// The epoch domain: an object is reclaimed only after every thread that was pinned when it
// was retired has unpinned, and then promptly; pins nest; thread records are reused.
#include "util/epoch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "util/striped_counter.h"

namespace sisu {
namespace {

struct Node {
  EpochRetired retired;
  std::atomic<bool>* freed;
};

void reclaim_node(EpochRetired* r) {
  Node* n = reinterpret_cast<Node*>(r);
  n->freed->store(true);
  delete n;
}

TEST(Epoch, PinnedReaderDelaysReclamation) {
  epoch::synchronize();
  std::atomic<bool> freed{false};
  std::atomic<int> phase{0};
  std::thread reader([&] {
    EpochGuard pin;
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
  });
  while (phase.load() != 1) std::this_thread::yield();
  epoch::retire(&(new Node{{}, &freed})->retired, &reclaim_node);
  for (int i = 0; i < 100; ++i) epoch::collect();
  EXPECT_FALSE(freed.load()) << "reclaimed while a thread pinned before the retire was pinned";
  phase.store(2);
  reader.join();
  epoch::synchronize();
  EXPECT_TRUE(freed.load());
  EXPECT_EQ(epoch::pending(), 0u);
}

TEST(Epoch, ReaderPinnedAfterRetireDoesNotDelay) {
  epoch::synchronize();
  std::atomic<bool> freed{false};
  epoch::retire(&(new Node{{}, &freed})->retired, &reclaim_node);
  // Pins that start after the retire cannot hold the object; collect must get past them.
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      EpochGuard pin;
    }
  });
  // Bounded by time, not rounds: a reader descheduled while pinned at an old epoch holds the
  // advance for as long as it sleeps (a loaded 2-core machine, a sanitizer).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!freed.load() && std::chrono::steady_clock::now() < deadline) {
    epoch::collect();
    std::this_thread::yield();
  }
  stop.store(true);
  reader.join();
  EXPECT_TRUE(freed.load());
}

TEST(Epoch, PinsNest) {
  EXPECT_FALSE(epoch::pinned());
  {
    EpochGuard outer;
    EXPECT_TRUE(epoch::pinned());
    {
      EpochGuard inner;
      EXPECT_TRUE(epoch::pinned());
    }
    EXPECT_TRUE(epoch::pinned()) << "the inner guard must not unpin the outer one";
  }
  EXPECT_FALSE(epoch::pinned());
}

TEST(Epoch, ManyThreadsRetireAndEverythingIsReclaimed) {
  epoch::synchronize();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::atomic<int> freed_count{0};
  struct Counted {
    EpochRetired retired;
    std::atomic<int>* count;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        EpochGuard pin;
        epoch::retire(&(new Counted{{}, &freed_count})->retired, [](EpochRetired* r) {
          Counted* c = reinterpret_cast<Counted*>(r);
          c->count->fetch_add(1);
          delete c;
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  epoch::synchronize();
  EXPECT_EQ(freed_count.load(), kThreads * kPerThread);
  EXPECT_EQ(epoch::pending(), 0u);
}

TEST(Epoch, ExitedThreadsDoNotBlockAndRecordsAreReused) {
  // Threads that pinned and exited must not hold the epoch back.
  for (int i = 0; i < 50; ++i) {
    std::thread([] { EpochGuard pin; }).join();
  }
  const std::uint64_t e = epoch::current();
  epoch::synchronize();
  EXPECT_GE(epoch::current(), e + 2);
}

TEST(Epoch, HeavyPinsWhenAsked) {
  { EpochGuard pin; }  // the first pin chooses the fences
  const char* heavy = std::getenv("SISU_EPOCH_HEAVY");
  if (heavy != nullptr && heavy[0] == '1') {
    EXPECT_FALSE(epoch::light_pins()) << "SISU_EPOCH_HEAVY=1 must select seq_cst pins";
  }
  std::printf("pins: %s\n", epoch::light_pins() ? "light (membarrier)" : "heavy (seq_cst)");
}

// The inline pin's fast path is taken exactly where pins are light: a thread's light record
// is its record then, and null with heavy pins (which must go through pin_slow()).
TEST(Epoch, InlinePinTakesTheFastPathOnlyForLightPins) {
  std::thread([] {
    EXPECT_EQ(epoch_internal::tls_light_record, nullptr);  // nothing registered yet
    { EpochGuard pin; }
    ASSERT_NE(epoch_internal::tls_record, nullptr);
    if (epoch::light_pins()) {
      EXPECT_EQ(epoch_internal::tls_light_record, epoch_internal::tls_record);
    } else {
      EXPECT_EQ(epoch_internal::tls_light_record, nullptr);
    }
    {
      EpochGuard pin;
      EXPECT_TRUE(epoch::pinned());
    }
    EXPECT_FALSE(epoch::pinned());
  }).join();
}

TEST(StripedCounter, ExactWhenQuiescent) {
  StripedCounter c;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) c.add(t % 2 == 0 ? 3 : -1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.sum(), 4 * 10000 * 3 - 4 * 10000);
  c.reset();
  EXPECT_EQ(c.sum(), 0);
}

}  // namespace
}  // namespace sisu
