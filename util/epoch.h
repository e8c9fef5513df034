// Epoch-based reclamation: frees memory that lock-free readers may still be reading only once
// no thread can hold a pointer to it. One process-wide domain serves every LockFreeHashMap.
//
//   thread record (one per live thread, cache-line sized, in a push-only registry)
//   +----------------------------------+
//   | state = (epoch << 1) | 1  pinned  |     global epoch E, advanced by one when every
//   |       = 0                idle    |     pinned record shows E
//   +----------------------------------+
//
//   retire(x) at epoch r  -->  pending list  -->  reclaimed once E >= r + 2
//
// Why r + 2: x was unlinked before retire() read r, so a thread that pins at r + 1 or later
// cannot reach it. E moves from r + 1 to r + 2 only when no pinned thread shows r, or anything
// older: by then every thread that could have read x has unpinned.
//
// A reader pays one store to its own record to pin and one to unpin. The pin store must be
// ordered before the reader's loads of shared pointers, against the reclaimer's unlink and scan
// (a store-load ordering). Two ways to get it:
//   - light (Linux membarrier, the default where the kernel offers it): the pin is a plain
//     release store; the reclaimer, before it scans, makes every running thread of the process
//     execute a full barrier (MEMBARRIER_CMD_PRIVATE_EXPEDITED, a few microseconds, once per
//     scan). A reader's pin is then either visible to the scan, or the reader's loads come after
//     the unlink. Readers keep their memory-level parallelism: a fence per operation would
//     drain the pipeline between two lookups' cache misses (measured: docs/benchmarks.md).
//   - heavy (SISU_EPOCH_HEAVY=1, or no membarrier): the pin is a seq_cst store (an xchg on
//     x86) and the scan's loads are seq_cst. Pinning nests: an inner
// EpochGuard on a pinned thread does nothing, so a for_each callback may call the map again.
// Retiring is rare (a map retires a table per resize) and lock-free; collectors take turns
// under a mutex, which an operation only tries (it skips collecting rather than wait).
//
// The synchronization is all std::atomic, so ThreadSanitizer checks it: a table freed while a
// reader could still touch it is reported as a use-after-free race, not hidden.
//
// Thread-safety: every function may be called from any thread. A thread that exits gives its
// record back for reuse; records themselves are never freed (their number is bounded by the
// largest number of threads that were alive at once).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sisu {

namespace epoch_internal {

struct alignas(64) ThreadRecord {
  std::atomic<std::uint64_t> state{0};  // (epoch << 1) | 1 while pinned, 0 while not
  std::atomic<bool> owned{false};       // a live thread uses this record
  ThreadRecord* next = nullptr;         // registry link; immutable once published
};

// The global epoch. Starts at 1 so that no pinned state is 0.
inline std::atomic<std::uint64_t> global_epoch{1};

// True once the process registered for membarrier: pins are plain stores (see above). Set
// before the first record is handed out, never cleared.
inline std::atomic<bool> light_pins{false};

// The calling thread's record once it has one; constinit so that reading it is a plain TLS
// load, with no initialization guard.
inline constinit thread_local ThreadRecord* tls_record = nullptr;

// The same record where pins are light, null where they are heavy: the inline pin loads and
// tests only this before its fast path. A thread's first pin and every heavy pin take
// pin_slow(). (Testing light_pins inline as well cost a load and a branch per operation, which
// a lookup bound by how many cache misses the CPU overlaps pays for: 3-6% of LockFreeHashMap's
// lookups, docs/benchmarks.md.)
inline constinit thread_local ThreadRecord* tls_light_record = nullptr;

// Takes a free record or makes one for the calling thread.
ThreadRecord* register_thread();

// The pin, out of line, for either kind of pin: returns the record to unpin, or null when the
// thread was pinned already (a nested pin).
ThreadRecord* pin_slow() noexcept;

}  // namespace epoch_internal

// Something that can be retired: embed it in the object (no allocation to retire).
struct EpochRetired {
  EpochRetired* next_retired = nullptr;
  std::uint64_t retire_epoch = 0;
  void (*reclaim)(EpochRetired*) = nullptr;
  bool heavy = false;  // reclaimed by the background thread only (see retire)
};

// Pins the calling thread for its lifetime: shared objects read inside are not reclaimed
// until it is destroyed. Cheap (see the file comment); not movable.
class EpochGuard {
 public:
  [[gnu::always_inline]] EpochGuard() noexcept {
    using namespace epoch_internal;
    ThreadRecord* r = tls_light_record;
    if (r == nullptr) [[unlikely]] {
      record_ = pin_slow();
      return;
    }
    // Only this thread writes its state, so a relaxed read of it is exact.
    if (r->state.load(std::memory_order_relaxed) != 0) [[unlikely]] {
      return;  // nested: the outer pin holds
    }
    const std::uint64_t e = global_epoch.load(std::memory_order_seq_cst);
    // A light pin. release: a scan that reads this state acquires everything this thread did
    // before, including its previous pinned section. The store-load order comes from the
    // reclaimer's membarrier; the signal fence keeps the compiler from reordering.
    r->state.store((e << 1) | 1, std::memory_order_release);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    record_ = r;
  }
  [[gnu::always_inline]] ~EpochGuard() {
    // release: everything this thread read under the pin happens-before a reclaimer that sees
    // the record idle (its scan loads acquire).
    if (record_ != nullptr) record_->state.store(0, std::memory_order_release);
  }
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;

 private:
  epoch_internal::ThreadRecord* record_ = nullptr;
};

namespace epoch {

// Hands `item` to the domain: `reclaim(item)` runs once no thread pinned now can still reach
// it. REQUIRES: the object was unlinked (by a seq_cst store or RMW) before this call, so that no
// thread pinning later can find it. Also tries to reclaim what is due.
//
// `heavy`: reclaiming it is slow (unmapping a big table touches every page: 9 ms for 128 MiB),
// so it is left to a background thread that the domain starts on first need, instead of
// lengthening whatever operation happens to collect next.
void retire(EpochRetired* item, void (*reclaim)(EpochRetired*), bool heavy = false) noexcept;

// Tries to advance the epoch and reclaims what is due, except heavy objects; returns how many
// objects it reclaimed. Never waits.
std::size_t collect() noexcept;

// Waits until every object retired before the call is due, then reclaims them (heavy ones
// too): when it returns, each such object has been reclaimed.
// REQUIRES: the calling thread is not pinned (it would wait for itself). Blocks while other
// threads stay pinned.
void synchronize() noexcept;

// Objects retired and not yet reclaimed (process-wide).
std::size_t pending() noexcept;

// The current global epoch (for tests and tools).
std::uint64_t current() noexcept;

// True when the calling thread is pinned.
bool pinned() noexcept;

// True when pins are plain stores ordered by membarrier (see the file comment).
bool light_pins() noexcept;

}  // namespace epoch
}  // namespace sisu
