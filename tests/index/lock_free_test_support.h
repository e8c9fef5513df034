// Shared by the LockFreeHashMap concurrency tests: traits that yield at the algorithm's racy
// points (so that 2 cores interleave like many would), and a churn thread that keeps the map
// resizing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>

#include "index/lock_free_hash_map.h"

namespace sisu::testing {

inline bool one_in(unsigned n) {
  thread_local std::minstd_rand rng(
      static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id())));
  return rng() % n == 0;
}

// kStall: now and then a copier sleeps mid-copy, long enough for the table it copies into to
// be resized and copied in turn (three tables in flight).
template <CopyOrder kOrder, bool kStall = false>
struct YieldingTraits : LockFreeHashMapTraits {
  static constexpr CopyOrder kCopyOrder = kOrder;
  static void before_value_cas() noexcept {
    if (one_in(4)) std::this_thread::yield();
  }
  static void copy_step() noexcept {
    if (kStall && one_in(8)) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    } else if (one_in(2)) {
      std::this_thread::yield();
    }
  }
};

template <CopyOrder kOrder = CopyOrder::kFreezeOldFirst, bool kStall = false>
using TestMap = LockFreeHashMap<std::uint64_t, std::uint64_t, YieldingTraits<kOrder, kStall>>;

// Inserts and removes keys of its own range (from `base` up) until stop: the table fills with
// dead keys and resizes every few dozen operations (m.resizes() counts them).
template <class Map>
void churn(Map& m, std::uint64_t base, const std::atomic<bool>& stop) {
  std::uint64_t k = base;
  while (!stop.load(std::memory_order_relaxed)) {
    m.put(k, k & 0xffff);
    if (k >= base + 8) m.remove(k - 8);
    ++k;
  }
}

}  // namespace sisu::testing
