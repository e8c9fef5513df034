// Concurrent tests of SlabAllocator; scripts/test runs them under ThreadSanitizer too.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "alloc/slab_allocator.h"

namespace sisu {
namespace {

constexpr int kThreads = 4;

struct Block {
  void* p;
  std::size_t bytes;
  std::uint64_t tag;
};

void fill(const Block& b) {
  auto* w = static_cast<std::uint64_t*>(b.p);
  for (std::size_t i = 0; i < b.bytes / 8; ++i) w[i] = b.tag + i;
}
bool intact(const Block& b) {
  const auto* w = static_cast<const std::uint64_t*>(b.p);
  for (std::size_t i = 0; i < b.bytes / 8; ++i) {
    if (w[i] != b.tag + i) return false;
  }
  return true;
}

// Producers allocate and fill blocks and hand them over a queue; consumers on other threads
// check the contents and free them. A block handed out twice, or two blocks that overlap,
// would break some consumer's check. Afterwards nothing is in use.
TEST(SlabAllocatorConcurrent, CrossThreadFreeKeepsContentsAndBalances) {
  SlabAllocator a;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Block> queue;
  std::atomic<int> producers_left{kThreads / 2};
  std::atomic<int> corrupt{0};
  constexpr int kPerProducer = 20000;
  const std::size_t sizes[] = {64, 640, 4608, 9216, 40000};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads / 2; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < kPerProducer; ++i) {
        const std::size_t bytes = sizes[rng() % 5];
        Block b{a.allocate(bytes), bytes, rng()};
        fill(b);
        {
          std::lock_guard lock(mu);
          queue.push_back(b);
        }
        cv.notify_one();
      }
      producers_left.fetch_sub(1);
      cv.notify_all();
    });
  }
  for (int t = 0; t < kThreads / 2; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return !queue.empty() || producers_left.load() == 0; });
        if (queue.empty()) return;
        const Block b = queue.front();
        queue.pop_front();
        lock.unlock();
        if (!intact(b)) corrupt.fetch_add(1);
        a.deallocate(b.p, b.bytes);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(corrupt.load(), 0);
  const SlabStats s = a.stats();
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.bytes_cached, 0u) << "exited threads returned their caches";
  EXPECT_EQ(s.thread_caches, 0u);
}

// Every thread churns its own live set while another thread reads stats(): contents survive,
// and stats stay within what the threads could hold.
TEST(SlabAllocatorConcurrent, ChurnWithConcurrentStats) {
  SlabAllocator a;
  std::atomic<bool> stop{false};
  std::atomic<int> corrupt{0};
  constexpr int kLive = 64;
  constexpr int kOps = 30000;
  std::thread reader([&] {
    while (!stop.load()) {
      const SlabStats s = a.stats();
      // Each churning thread holds at most kLive blocks of at most 16 KiB.
      if (s.bytes_in_use > std::size_t{kThreads} * kLive * 16384) corrupt.fetch_add(1);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      std::vector<Block> live;
      for (int op = 0; op < kOps; ++op) {
        if (live.size() < kLive && (live.empty() || rng() % 2)) {
          const std::size_t bytes = 64 * (1 + rng() % 256);
          Block b{a.allocate(bytes), bytes, rng()};
          fill(b);
          live.push_back(b);
        } else {
          const std::size_t i = rng() % live.size();
          if (!intact(live[i])) corrupt.fetch_add(1);
          a.deallocate(live[i].p, live[i].bytes);
          live[i] = live.back();
          live.pop_back();
        }
      }
      for (const Block& b : live) a.deallocate(b.p, b.bytes);
    });
  }
  for (auto& th : threads) th.join();
  stop.store(true);
  reader.join();
  EXPECT_EQ(corrupt.load(), 0);
  EXPECT_EQ(a.stats().bytes_in_use, 0u);
}

// Allocators come and go while threads that used them live on; threads exit while allocators
// live on. Neither side may touch what the other freed (ASan and TSan watch).
TEST(SlabAllocatorConcurrent, AllocatorsAndThreadsEndInAnyOrder) {
  for (int round = 0; round < 20; ++round) {
    auto a = std::make_unique<SlabAllocator>();
    std::mutex mu;
    std::condition_variable cv;
    bool attached = false;
    bool destroyed = false;
    std::thread lingering([&] {
      void* p = a->allocate(1000);
      a->deallocate(p, 1000);  // this thread now has a cache in *a
      std::unique_lock lock(mu);
      attached = true;
      cv.notify_all();
      cv.wait(lock, [&] { return destroyed; });
      // *a is gone; a new allocator must give this thread a new cache.
      SlabAllocator b;
      for (int i = 0; i < 10; ++i) b.deallocate(b.allocate(1000), 1000);
    });
    std::thread short_lived([&] { a->deallocate(a->allocate(2000), 2000); });
    short_lived.join();
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return attached; });
      a.reset();
      destroyed = true;
    }
    cv.notify_all();
    lingering.join();
  }
}

// Many short threads each leave a cache behind at exit; the allocator's memory stays bounded
// because exiting threads return their blocks.
TEST(SlabAllocatorConcurrent, ShortLivedThreadsDoNotLeakCachedBlocks) {
  SlabAllocator a;
  std::size_t reserved_after_first = 0;
  for (int round = 0; round < 50; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        std::vector<void*> v;
        for (int i = 0; i < 200; ++i) v.push_back(a.allocate(9216));
        for (void* p : v) a.deallocate(p, 9216);
      });
    }
    for (auto& th : threads) th.join();
    if (round == 0) reserved_after_first = a.stats().bytes_reserved;
  }
  const SlabStats s = a.stats();
  EXPECT_EQ(s.thread_caches, 0u);
  EXPECT_EQ(s.bytes_in_use + s.bytes_cached, 0u);
  EXPECT_LE(s.bytes_reserved, reserved_after_first);
}

}  // namespace
}  // namespace sisu
