#include "alloc/slab_allocator.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <new>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define SISU_TEST_ASAN 1
#endif

namespace sisu {
namespace {

constexpr std::size_t kKiB = 1024;

std::size_t reserved(const SlabAllocator& a) { return a.stats().bytes_reserved; }

// Fills a block with a pattern derived from its address and a tag, and checks it back.
void fill(void* p, std::size_t bytes, std::uint64_t tag) {
  auto* w = static_cast<std::uint64_t*>(p);
  for (std::size_t i = 0; i < bytes / 8; ++i) w[i] = tag * 0x9E3779B97F4A7C15ULL + i;
}
bool intact(const void* p, std::size_t bytes, std::uint64_t tag) {
  const auto* w = static_cast<const std::uint64_t*>(p);
  for (std::size_t i = 0; i < bytes / 8; ++i) {
    if (w[i] != tag * 0x9E3779B97F4A7C15ULL + i) return false;
  }
  return true;
}

bool is_mapped(const void* p) {
  unsigned char vec = 0;
  void* page = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{4095});
  return mincore(page, 4096, &vec) == 0;
}

TEST(SlabAllocatorClasses, CoverEverySizeWithBoundedWaste) {
  std::size_t prev_class = 0;
  for (std::size_t bytes = 1; bytes <= SlabAllocator::kMaxBlockBytes; bytes += 1 + bytes / 97) {
    const std::size_t c = SlabAllocator::class_index(bytes);
    const std::size_t block = SlabAllocator::class_block_bytes(c);
    ASSERT_LT(c, SlabAllocator::kNumClasses);
    ASSERT_GE(block, bytes);
    ASSERT_EQ(block % SlabAllocator::kAlignment, 0u) << bytes;
    ASSERT_GE(c, prev_class) << "classes grow with size";
    if (bytes > 512) {
      ASSERT_LE(block - bytes, bytes / 4) << "waste above 512 B is < 25%";
    }
    if (c > 0) {
      ASSERT_LT(SlabAllocator::class_block_bytes(c - 1), bytes) << "the smallest class that fits";
    }
    prev_class = c;
  }
  EXPECT_EQ(SlabAllocator::class_index(SlabAllocator::kMaxBlockBytes),
            SlabAllocator::kNumClasses - 1);
  EXPECT_EQ(SlabAllocator::block_bytes_for(64), 64u);
  EXPECT_EQ(SlabAllocator::block_bytes_for(65), 128u);
  EXPECT_EQ(SlabAllocator::block_bytes_for(9 * kKiB), 10 * kKiB);
}

TEST(SlabAllocatorClasses, SizesNotServedAreRefusedClearly) {
  SlabAllocator a;
  EXPECT_THROW(SlabAllocator::class_index(0), std::invalid_argument);
  EXPECT_THROW(SlabAllocator::class_index(SlabAllocator::kMaxBlockBytes + 1),
               std::invalid_argument);
  EXPECT_THROW(SlabAllocator::class_block_bytes(SlabAllocator::kNumClasses), std::invalid_argument);
  EXPECT_THROW((void)a.allocate(0), std::invalid_argument);
  try {
    (void)a.allocate(SlabAllocator::kMaxBlockBytes + 1);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("262145"), std::string::npos) << e.what();
  }
  EXPECT_EQ(a.stats().bytes_reserved, 0u) << "a refused request maps nothing";
}

TEST(SlabAllocatorOptions, BadSlabSizeIsRefused) {
  SlabAllocator::Options o;
  o.slab_bytes = 3 << 20;
  EXPECT_THROW(SlabAllocator{o}, std::invalid_argument);
  o.slab_bytes = 4 * kKiB;
  EXPECT_THROW(SlabAllocator{o}, std::invalid_argument);
}

// Random allocations and frees over every class, against a model of the live blocks.
TEST(SlabAllocator, ModelOfLiveBlocks) {
  SlabAllocator a;
  std::mt19937_64 rng(2026);
  struct Live {
    std::size_t bytes;
    std::uint64_t tag;
  };
  std::map<std::uintptr_t, Live> live;  // address -> block
  std::size_t live_block_bytes = 0;
  auto random_size = [&] {
    // Mostly the index's table sizes, sometimes anything up to the largest class.
    switch (rng() % 4) {
      case 0:
        return std::size_t{1} + rng() % 512;
      case 1:
        return std::size_t{1} + rng() % (16 * kKiB);
      case 2:
        return std::size_t{9 * kKiB};
      default:
        return std::size_t{1} + rng() % SlabAllocator::kMaxBlockBytes;
    }
  };
  for (int op = 0; op < 60000; ++op) {
    const bool grow = live.size() < 50 || (rng() % 100) < (op % 20000 < 10000 ? 60 : 40);
    if (grow) {
      const std::size_t bytes = random_size();
      void* p = a.allocate(bytes);
      const auto addr = reinterpret_cast<std::uintptr_t>(p);
      ASSERT_EQ(addr % SlabAllocator::kAlignment, 0u);
      const std::size_t block = SlabAllocator::block_bytes_for(bytes);
      // No overlap with the neighbours on either side.
      auto next = live.lower_bound(addr);
      if (next != live.end()) {
        ASSERT_LE(addr + block, next->first);
      }
      if (next != live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + SlabAllocator::block_bytes_for(prev->second.bytes), addr);
      }
      const std::uint64_t tag = rng();
      fill(p, block, tag);  // the whole block is usable, not only `bytes`
      live.emplace(addr, Live{bytes, tag});
      live_block_bytes += block;
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      void* p = reinterpret_cast<void*>(it->first);
      const std::size_t block = SlabAllocator::block_bytes_for(it->second.bytes);
      ASSERT_TRUE(intact(p, block, it->second.tag)) << "a live block was overwritten";
      a.deallocate(p, it->second.bytes);
      live_block_bytes -= block;
      live.erase(it);
    }
    if (op % 5000 == 0) {
      const SlabStats s = a.stats();
      ASSERT_EQ(s.bytes_in_use, live_block_bytes);  // exact: one thread
      std::size_t slab_sum = 0;
      for (const SlabClassStats& c : s.classes) {
        slab_sum += c.slabs * c.slab_bytes;
        ASSERT_EQ(c.slabs * ((c.slab_bytes - SlabAllocator::kSlabHeaderBytes) / c.block_bytes),
                  c.blocks_in_use + c.blocks_cached + c.blocks_free);
      }
      ASSERT_EQ(slab_sum + s.bytes_pooled, s.bytes_reserved);
    }
  }
  for (auto& [addr, l] : live) {
    ASSERT_TRUE(
        intact(reinterpret_cast<void*>(addr), SlabAllocator::block_bytes_for(l.bytes), l.tag));
    a.deallocate(reinterpret_cast<void*>(addr), l.bytes);
  }
  EXPECT_EQ(a.stats().bytes_in_use, 0u);
}

TEST(SlabAllocator, FreedBlocksAreReusedSoMemoryStaysFlat) {
  SlabAllocator a;
  const std::size_t sizes[] = {1 * kKiB, 4608, 9 * kKiB, 18 * kKiB};
  std::vector<std::pair<void*, std::size_t>> map;
  std::size_t reserved_after_first = 0;
  std::size_t mapped_after_first = 0;
  for (int m = 0; m < 1000; ++m) {  // 1000 maps of 64 tables each, one after another
    for (int t = 0; t < 64; ++t) {
      const std::size_t bytes = sizes[(m + t) % 4];
      map.emplace_back(a.allocate(bytes), bytes);
    }
    for (auto [p, bytes] : map) a.deallocate(p, bytes);
    map.clear();
    if (m == 0) {
      reserved_after_first = reserved(a);
      mapped_after_first = a.stats().slabs_mapped_total;
    }
  }
  EXPECT_EQ(reserved(a), reserved_after_first);
  EXPECT_EQ(a.stats().slabs_mapped_total, mapped_after_first) << "no slab was mapped again";
  EXPECT_EQ(a.stats().bytes_in_use, 0u);
}

TEST(SlabAllocator, EmptySlabsGoBackToTheOs) {
  SlabAllocator::Options o;
  o.empty_slabs_kept = 1;
  o.slab_bytes = 1u << 20;
  SlabAllocator a(o);
  constexpr std::size_t kBlock = 64 * kKiB;  // 15 blocks per 1 MiB slab
  std::vector<void*> blocks;
  for (int i = 0; i < 15 * 40; ++i) blocks.push_back(a.allocate(kBlock));
  const SlabStats full = a.stats();
  EXPECT_EQ(full.slabs, 40u);
  EXPECT_EQ(full.bytes_reserved, 40u << 20);
  for (void* p : blocks) a.deallocate(p, kBlock);
  a.flush_thread_cache();
  // What is still mapped: the slabs holding the blocks parked in the class's transfer array
  // (the first ones freed, so they fill whole slabs), one kept empty slab, and the pool of
  // empty slabs for any class (at most 4 slabs here, since almost nothing is in use).
  const SlabStats after = a.stats();
  const std::size_t parked = after.bytes_cached / kBlock;
  const std::size_t pooled = after.bytes_pooled >> 20;
  EXPECT_EQ(after.bytes_in_use, 0u);
  EXPECT_LE(parked, 40u) << "the transfer array is bounded (1 MiB of blocks, or 2 caches)";
  EXPECT_LE(after.slabs, (parked + 14) / 15 + 1);
  EXPECT_EQ(after.classes.at(0).empty_slabs, 1u);
  EXPECT_LE(pooled, 5u);
  EXPECT_EQ(after.slabs_released_total, 40u - after.slabs - pooled);
  EXPECT_EQ(after.bytes_reserved, (after.slabs + pooled) << 20);

  // trim() empties the transfer array, unmaps every empty slab and the pool, and the memory
  // really is gone from the address space.
  void* probe = blocks.front();
  EXPECT_EQ(a.trim(), after.bytes_reserved);
  EXPECT_EQ(a.stats().bytes_reserved, 0u);
  EXPECT_EQ(a.stats().bytes_cached, 0u);
  EXPECT_FALSE(is_mapped(probe)) << "the slab's pages are unmapped";

  // And it still works afterwards.
  void* again = a.allocate(kBlock);
  a.deallocate(again, kBlock);
}

TEST(SlabAllocator, ReservationCapGivesBadAllocAndLeavesTheAllocatorUsable) {
  SlabAllocator::Options o;
  o.slab_bytes = 1u << 20;
  o.max_reserved_bytes = 2u << 20;  // two 1 MiB slabs
  SlabAllocator a(o);
  constexpr std::size_t kBlock = 64 * kKiB;
  std::vector<void*> blocks;
  for (int i = 0; i < 30; ++i) blocks.push_back(a.allocate(kBlock));  // fills both slabs
  const SlabStats before = a.stats();
  EXPECT_THROW((void)a.allocate(kBlock), std::bad_alloc);
  EXPECT_THROW((void)a.allocate(100), std::bad_alloc) << "another class needs a slab too";
  const SlabStats after = a.stats();
  EXPECT_EQ(after.bytes_reserved, before.bytes_reserved);
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
  for (void* p : blocks) ASSERT_NO_THROW(a.deallocate(p, kBlock));
  a.flush_thread_cache();
  // With the 64 KiB blocks back, memory for them is reusable at once.
  void* p = a.allocate(kBlock);
  EXPECT_NE(p, nullptr);
  a.deallocate(p, kBlock);
}

TEST(SlabAllocator, ThreadExitReturnsItsCache) {
  SlabAllocator a;
  std::thread([&] {
    std::vector<void*> v;
    for (int i = 0; i < 100; ++i) v.push_back(a.allocate(200));
    for (void* p : v) a.deallocate(p, 200);
    EXPECT_GT(a.stats().bytes_cached, 0u) << "some blocks sit in this thread's cache";
    EXPECT_EQ(a.stats().thread_caches, 1u);
  }).join();
  const SlabStats s = a.stats();
  EXPECT_EQ(s.thread_caches, 0u);
  EXPECT_EQ(s.bytes_cached, 0u);
  EXPECT_EQ(s.bytes_in_use, 0u);
}

// A thread_local destructor that runs after the allocator released the thread's cache still
// frees correctly (straight to the slabs).
TEST(SlabAllocator, FreeFromALateThreadLocalDestructor) {
  SlabAllocator a;
  struct Holder {
    SlabAllocator* a = nullptr;
    void* p = nullptr;
    ~Holder() {
      if (p) a->deallocate(p, 300);
    }
  };
  std::thread([&] {
    thread_local Holder holder;  // constructed before the thread's cache list: destroyed after
    holder.a = &a;
    holder.p = a.allocate(300);
  }).join();
  EXPECT_EQ(a.stats().bytes_in_use, 0u);
}

TEST(SlabAllocator, DestroyingWithBlocksInUseUnmapsEverything) {
  auto a = std::make_unique<SlabAllocator>();
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(a->allocate(5000));
  for (void* p : blocks) ASSERT_TRUE(is_mapped(p));
  a.reset();
  for (void* p : blocks) ASSERT_FALSE(is_mapped(p));
}

TEST(SlabAllocator, GlobalIsOneInstance) {
  EXPECT_EQ(&SlabAllocator::global(), &SlabAllocator::global());
  void* p = SlabAllocator::global().allocate(64);
  SlabAllocator::global().deallocate(p, 64);
}

using SlabAllocatorDeathTest = ::testing::Test;

TEST_F(SlabAllocatorDeathTest, FreeingAForeignBlockAbortsWithAMessage) {
  EXPECT_DEATH(
      {
        SlabAllocator a;
        SlabAllocator b;
        void* p = a.allocate(128);
        b.deallocate(p, 128);
        b.flush_thread_cache();
      },
      "did not hand out");
}

TEST_F(SlabAllocatorDeathTest, FreeingWithTheWrongSizeAbortsWithAMessage) {
  EXPECT_DEATH(
      {
        SlabAllocator a;
        void* p = a.allocate(128);
        a.deallocate(p, 5000);
        a.flush_thread_cache();
      },
      "did not hand out");
  EXPECT_DEATH(
      {
        SlabAllocator a;
        a.deallocate(a.allocate(128), SlabAllocator::kMaxBlockBytes + 1);
      },
      "never served");
}

TEST_F(SlabAllocatorDeathTest, AsanReportsUseAfterFreeIntoAFreeBlock) {
#ifndef SISU_TEST_ASAN
  GTEST_SKIP() << "poisoning is active only under AddressSanitizer";
#else
  EXPECT_DEATH(
      {
        SlabAllocator a;
        auto* p = static_cast<volatile char*>(a.allocate(256));
        a.deallocate(const_cast<char*>(p), 256);
        p[100] = 1;
      },
      "use-after-poison");
  EXPECT_DEATH(
      {
        SlabAllocator a;
        void* p = a.allocate(256);
        a.deallocate(p, 256);
        a.deallocate(p, 256);
      },
      "double free");
#endif
}

}  // namespace
}  // namespace sisu
