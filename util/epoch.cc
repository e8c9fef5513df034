#include "util/epoch.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace sisu {
namespace epoch_internal {
namespace {

// Push-only list of every record ever made. Records are never unlinked, so a scan needs no
// protection of its own.
std::atomic<ThreadRecord*> registry{nullptr};

// Retired objects not yet reclaimed, a Treiber stack. collect() takes the whole stack with one
// exchange, so concurrent collectors work on disjoint lists and pops never meet ABA.
std::atomic<EpochRetired*> pending_head{nullptr};
std::atomic<std::size_t> pending_count{0};

// The lists a collector holds while it works (under collect_mu): what is left to look at,
// and what it keeps for later. Only so that they stay reachable from a global: a leak
// checker at exit that does not see the collecting thread's registers (the background
// collector runs at idle priority and may be anywhere in its loop) would otherwise report
// every object in hand as leaked. (A clean-clone ASan run did once: a LockFreeHashMap's
// retired tables, all of them, as a direct leak and its successors.)
std::atomic<EpochRetired*> in_hand{nullptr};
std::atomic<EpochRetired*> kept_in_hand{nullptr};

// Set when this thread's record was given back at exit; a pin after that (from another
// thread_local's destructor) takes a record that is never given back rather than registering a
// second exit hook during thread teardown.
constinit thread_local bool tls_exited = false;

struct ThreadExit {
  ~ThreadExit() {
    ThreadRecord* r = tls_record;
    if (r == nullptr) return;
    r->state.store(0, std::memory_order_release);
    r->owned.store(false, std::memory_order_release);
    tls_record = nullptr;
    tls_light_record = nullptr;
    tls_exited = true;
  }
};

void push_pending(EpochRetired* first, EpochRetired* last) noexcept {
  EpochRetired* head = pending_head.load(std::memory_order_relaxed);
  do {
    last->next_retired = head;
    // release: the item's fields (and the object behind it) are visible to the collector.
  } while (!pending_head.compare_exchange_weak(head, first, std::memory_order_release,
                                               std::memory_order_relaxed));
}

long membarrier(int cmd) { return ::syscall(__NR_membarrier, cmd, 0, 0); }

// Chooses light pins when the kernel can order them for us.
void choose_fences() {
  const char* heavy = std::getenv("SISU_EPOCH_HEAVY");
  if (heavy != nullptr && heavy[0] != '\0' && heavy[0] != '0') return;
  const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
  if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
  if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) return;
  light_pins.store(true, std::memory_order_release);
}

// Advances the global epoch by one if every pinned thread has seen it.
bool try_advance() noexcept {
  // Light pins: make every running thread's pin store visible, or its later loads see our
  // unlinks, before reading the records.
  if (light_pins.load(std::memory_order_relaxed)) membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
  std::uint64_t e = global_epoch.load(std::memory_order_seq_cst);
  for (ThreadRecord* r = registry.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    // seq_cst: in the total order after the unlink that preceded retire(), so a thread that
    // read the unlinked pointer is seen pinned here (see the header).
    const std::uint64_t s = r->state.load(std::memory_order_seq_cst);
    if ((s & 1) != 0 && (s >> 1) != e) return false;
  }
  return global_epoch.compare_exchange_strong(e, e + 1, std::memory_order_seq_cst);
}

// Serializes the collectors. Operations that collect on their way (retire) only try it, so
// they never wait; the background thread and synchronize() wait for it, so that when
// synchronize() runs its pass no other collector holds items in a private list.
std::mutex collect_mu;

// Reclaims what is due; heavy objects only when `heavy`. *heavy_left tells whether heavy
// objects still wait. `wait`: block for the collector lock instead of giving up.
std::size_t collect_impl(bool heavy, bool* heavy_left_out = nullptr, bool wait = false) noexcept {
  if (heavy_left_out != nullptr) *heavy_left_out = false;
  std::unique_lock<std::mutex> lock(collect_mu, std::defer_lock);
  if (wait) {
    lock.lock();
  } else if (!lock.try_lock()) {
    return 0;  // another thread is collecting
  }
  try_advance();
  EpochRetired* list = pending_head.exchange(nullptr, std::memory_order_acquire);
  bool heavy_left = false;
  if (list == nullptr) return 0;
  in_hand.store(list, std::memory_order_relaxed);
  const std::uint64_t e = global_epoch.load(std::memory_order_seq_cst);
  EpochRetired* keep_first = nullptr;
  EpochRetired* keep_last = nullptr;
  std::size_t reclaimed = 0;
  while (list != nullptr) {
    EpochRetired* item = list;
    list = list->next_retired;
    const bool due = item->retire_epoch + 2 <= e;
    if (due && (heavy || !item->heavy)) {
      in_hand.store(list, std::memory_order_relaxed);
      item->reclaim(item);
      ++reclaimed;
    } else {
      heavy_left |= item->heavy;
      item->next_retired = keep_first;
      keep_first = item;
      if (keep_last == nullptr) keep_last = item;
      kept_in_hand.store(keep_first, std::memory_order_relaxed);
      in_hand.store(list, std::memory_order_relaxed);
    }
  }
  if (keep_first != nullptr) push_pending(keep_first, keep_last);
  kept_in_hand.store(nullptr, std::memory_order_relaxed);
  in_hand.store(nullptr, std::memory_order_relaxed);
  pending_count.fetch_sub(reclaimed, std::memory_order_relaxed);
  if (heavy_left_out != nullptr) *heavy_left_out = heavy_left;
  return reclaimed;
}

// The background reclaimer: started on the first heavy retire, it collects (heavy objects
// included) when woken, then every millisecond while heavy objects wait for their epoch, and
// sleeps when none is left. Its state is leaked on purpose, so that the thread never meets a
// destroyed mutex while the process exits.
struct Background {
  std::mutex mu;
  std::condition_variable cv;
  bool work = false;
};

Background* background() {
  static Background* const b = [] {
    auto* bg = new Background;
    std::thread([bg] {
      // Idle priority: unmapping a big table takes milliseconds of CPU, which must not
      // preempt the threads whose inserts caused it (measured: 4 ms puts, one scheduler
      // tick, when it ran at normal priority on a busy 2-core machine).
      sched_param param{};
      pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
      bool waiting = false;  // heavy objects not yet due
      for (;;) {
        {
          std::unique_lock<std::mutex> lock(bg->mu);
          if (waiting) {
            bg->cv.wait_for(lock, std::chrono::milliseconds(1), [bg] { return bg->work; });
          } else {
            bg->cv.wait(lock, [bg] { return bg->work; });
          }
          bg->work = false;
        }
        collect_impl(/*heavy=*/true, &waiting, /*wait=*/true);
      }
    }).detach();
    return bg;
  }();
  return b;
}

void wake_background() {
  Background* bg = background();
  {
    std::lock_guard<std::mutex> lock(bg->mu);
    bg->work = true;
  }
  bg->cv.notify_one();
}

}  // namespace

// The fences are chosen once per process, at load time: registering for membarrier waits for
// an RCU grace period (milliseconds), which must not land in some thread's first operation.
static std::once_flag fences_chosen;
[[maybe_unused]] static const bool fences_chosen_at_load = [] {
  std::call_once(fences_chosen, choose_fences);
  return true;
}();

ThreadRecord* register_thread() {
  std::call_once(fences_chosen, choose_fences);  // in case a pin runs before static init
  ThreadRecord* r = nullptr;
  for (ThreadRecord* it = registry.load(std::memory_order_acquire); it != nullptr; it = it->next) {
    bool expected = false;
    if (!it->owned.load(std::memory_order_relaxed) &&
        it->owned.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      r = it;
      break;
    }
  }
  if (r == nullptr) {
    r = new ThreadRecord;  // never freed: the registry is push-only
    r->owned.store(true, std::memory_order_relaxed);
    ThreadRecord* head = registry.load(std::memory_order_relaxed);
    do {
      r->next = head;
    } while (!registry.compare_exchange_weak(head, r, std::memory_order_release,
                                             std::memory_order_relaxed));
  }
  tls_record = r;
  // light_pins is settled: call_once above chose it before any record was handed out.
  tls_light_record = light_pins.load(std::memory_order_relaxed) ? r : nullptr;
  if (!tls_exited) {
    static thread_local ThreadExit exit_hook;
    (void)exit_hook;
  }
  return r;
}

ThreadRecord* pin_slow() noexcept {
  ThreadRecord* r = tls_record;
  if (r == nullptr) r = register_thread();
  if (r->state.load(std::memory_order_relaxed) != 0) return nullptr;  // nested
  const std::uint64_t e = global_epoch.load(std::memory_order_seq_cst);
  if (light_pins.load(std::memory_order_relaxed)) {
    // The inline pin's light store (see EpochGuard), with its compiler-only fence: the call
    // is one too, unless a link-time optimizer inlines it.
    r->state.store((e << 1) | 1, std::memory_order_release);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    // seq_cst: in the single total order before the caller's seq_cst loads of shared
    // pointers (see retire()). On x86 an xchg.
    r->state.store((e << 1) | 1, std::memory_order_seq_cst);
  }
  return r;
}

}  // namespace epoch_internal

namespace epoch {

using namespace epoch_internal;

void retire(EpochRetired* item, void (*reclaim)(EpochRetired*), bool heavy) noexcept {
  item->reclaim = reclaim;
  item->heavy = heavy;
  item->retire_epoch = global_epoch.load(std::memory_order_seq_cst);
  pending_count.fetch_add(1, std::memory_order_relaxed);
  push_pending(item, item);
  collect_impl(/*heavy=*/false);
  if (heavy) wake_background();
}

std::size_t collect() noexcept { return collect_impl(/*heavy=*/false); }

void synchronize() noexcept {
  // Everything retired before now carries an epoch <= target - 2.
  const std::uint64_t target = global_epoch.load(std::memory_order_seq_cst) + 2;
  while (global_epoch.load(std::memory_order_seq_cst) < target) {
    if (!try_advance()) std::this_thread::yield();
  }
  collect_impl(/*heavy=*/true, nullptr, /*wait=*/true);
}

std::size_t pending() noexcept { return pending_count.load(std::memory_order_relaxed); }

std::uint64_t current() noexcept { return global_epoch.load(std::memory_order_seq_cst); }

bool light_pins() noexcept { return epoch_internal::light_pins.load(std::memory_order_relaxed); }

bool pinned() noexcept {
  const ThreadRecord* r = tls_record;
  return r != nullptr && r->state.load(std::memory_order_relaxed) != 0;
}

}  // namespace epoch
}  // namespace sisu
