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
  EXPECT_EQ(a.stats().thread_caches, 0u) << "exited threads returned their caches";
  EXPECT_EQ(a.stats().bytes_in_use, 0u);
  a.trim();  // empties the transfer arrays too: then every block is back in a slab
  EXPECT_EQ(a.stats().bytes_cached, 0u);
  EXPECT_EQ(a.stats().bytes_reserved, 0u);
}

// Every thread churns its own live set while another thread reads stats(): contents survive,
// and each class's accounting stays whole (every block of every slab is in use, cached or
// free), which stats() reads under the class's lock. The split between "in use" and "cached"
// is only a recent value while threads run, and exact once they stop.
TEST(SlabAllocatorConcurrent, ChurnWithConcurrentStats) {
  SlabAllocator a;
  std::atomic<bool> stop{false};
  std::atomic<int> corrupt{0};
  std::atomic<int> bad_accounting{0};
  constexpr int kLive = 64;
  constexpr int kOps = 30000;
  std::thread reader([&] {
    while (!stop.load()) {
      for (const SlabClassStats& c : a.stats().classes) {
        const std::size_t per_slab =
            (c.slab_bytes - SlabAllocator::kSlabHeaderBytes) / c.block_bytes;
        if (c.blocks_in_use + c.blocks_cached + c.blocks_free != c.slabs * per_slab) {
          bad_accounting.fetch_add(1);
        }
      }
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
  EXPECT_EQ(bad_accounting.load(), 0);
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

// Many short threads each leave a cache behind at exit; memory stays bounded by what the
// threads of one round hold at once, however many threads came and went, because an exiting
// thread returns its blocks. (A leaked cache would hold up to 102 blocks of 10 KiB per thread:
// 200 threads would leak 200 MiB.)
TEST(SlabAllocatorConcurrent, ShortLivedThreadsDoNotLeakCachedBlocks) {
  SlabAllocator a;
  constexpr int kBlocks = 200;
  constexpr std::size_t kBytes = 9216;  // class of 10 KiB
  for (int round = 0; round < 50; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        std::vector<void*> v;
        for (int i = 0; i < kBlocks; ++i) v.push_back(a.allocate(kBytes));
        for (void* p : v) a.deallocate(p, kBytes);
      });
    }
    for (auto& th : threads) th.join();
    const SlabStats s = a.stats();
    ASSERT_EQ(s.thread_caches, 0u);
    ASSERT_EQ(s.bytes_in_use, 0u);
    // One round's peak (every thread's blocks live at once) plus a slab of rounding and the
    // kept empty slab; and the pool of empty slabs, which holds at most 4 slabs (or an eighth
    // of what is in use, which is less here).
    const std::size_t slab = a.options().slab_bytes;
    ASSERT_LE(s.bytes_reserved - s.bytes_pooled, kThreads * kBlocks * 10240 + 2 * slab)
        << "round " << round;
    ASSERT_LE(s.bytes_pooled, 4 * slab) << "round " << round;
  }
  a.trim();
  EXPECT_EQ(a.stats().bytes_reserved, 0u);
}

}  // namespace
}  // namespace sisu
