// SpinLock: a test-and-test-and-set lock for critical sections of tens of nanoseconds, such as
// the SlabAllocator's transfer of a batch of block pointers. A contended std::mutex puts the
// waiter to sleep in the kernel, which costs microseconds, far more than the section it waits
// for. A waiter here spins on a plain load (no cache-line ping-pong while the lock is held),
// with the CPU's pause hint, and yields its time slice after kSpinsBeforeYield tries so that a
// preempted holder can run (this matters on a machine with few cores).
//
// Satisfies Lockable, so std::lock_guard works. Not recursive, not fair.
// Thread-safety: that is its purpose.
#pragma once

#include <atomic>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace sisu {

class SpinLock {
 public:
  void lock() noexcept {
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < kSpinsBeforeYield) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  static constexpr int kSpinsBeforeYield = 128;

  static void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  std::atomic<bool> locked_{false};
};

}  // namespace sisu
