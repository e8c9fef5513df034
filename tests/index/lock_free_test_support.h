// Shared by the LockFreeHashMap concurrency tests: traits that yield at the algorithm's racy
// points (so that 2 cores interleave like many would), and a churn thread that keeps the map
// resizing.
#pragma once

#include <atomic>
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

template <CopyOrder kOrder>
struct YieldingTraits : LockFreeHashMapTraits {
  static constexpr CopyOrder kCopyOrder = kOrder;
  static void before_value_cas() noexcept {
    if (one_in(4)) std::this_thread::yield();
  }
  static void copy_step() noexcept {
    if (one_in(2)) std::this_thread::yield();
  }
};

template <CopyOrder kOrder = CopyOrder::kFreezeOldFirst>
using TestMap = LockFreeHashMap<std::uint64_t, std::uint64_t, YieldingTraits<kOrder>>;

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
