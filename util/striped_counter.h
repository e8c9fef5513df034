// StripedCounter: a counter that many threads add to without sharing a cache line, summed on
// demand (LongAdder, Click's ConcurrentAutoTable). Each thread adds to the cell picked by its
// stripe number; threads get stripe numbers round-robin as they first count, so up to
// `cells` threads never share a cell.
//
//   cells: [ c0 | c1 | c2 | ... ]   one 64-byte line each;  sum() = c0 + c1 + ...
//
// sum() is exact when no add() runs concurrently (after the adders are joined, say). While
// adders run it reads each cell once, so it may combine cells read at different moments.
//
// Thread-safety: add() and sum() may be called from any number of threads at once.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace sisu {

namespace striped_internal {
inline std::atomic<std::uint32_t> next_stripe{0};
inline constinit thread_local std::uint32_t tls_stripe_plus_one = 0;
}  // namespace striped_internal

// The calling thread's stripe number: small, distinct per thread until they wrap.
inline std::uint32_t this_thread_stripe() noexcept {
  using namespace striped_internal;
  std::uint32_t s = tls_stripe_plus_one;
  if (s == 0) [[unlikely]] {
    s = next_stripe.fetch_add(1, std::memory_order_relaxed) + 1;
    tls_stripe_plus_one = s;
  }
  return s - 1;
}

class StripedCounter {
 public:
  // REQUIRES: cells is a power of two.
  explicit StripedCounter(std::size_t cells = kDefaultCells)
      : mask_(cells - 1), cells_(std::make_unique<Cell[]>(cells)) {}

  // seq_cst costs nothing more than relaxed for an x86 RMW or load, and puts every add in the
  // single total order with the map's slot CASes, which is what the map's size() argument uses.
  void add(std::int64_t delta) noexcept {
    cells_[this_thread_stripe() & mask_].value.fetch_add(delta, std::memory_order_seq_cst);
  }

  std::int64_t sum() const noexcept {
    std::int64_t s = 0;
    for (std::size_t i = 0; i <= mask_; ++i) s += cells_[i].value.load(std::memory_order_seq_cst);
    return s;
  }

  // REQUIRES: no concurrent add().
  void reset() noexcept {
    for (std::size_t i = 0; i <= mask_; ++i) cells_[i].value.store(0, std::memory_order_relaxed);
  }

  std::size_t memory_bytes() const noexcept { return (mask_ + 1) * sizeof(Cell); }

  // 16 cells: a 16-core machine's threads each get a line; 1 KiB per counter.
  static constexpr std::size_t kDefaultCells = 16;

 private:
  struct alignas(64) Cell {
    std::atomic<std::int64_t> value{0};
  };
  static_assert(sizeof(Cell) == 64, "one cache line per cell, or neighbours share it");

  std::size_t mask_;
  std::unique_ptr<Cell[]> cells_;
};

}  // namespace sisu
