#include "util/epoch.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

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

}  // namespace

ThreadRecord* register_thread() {
  static std::once_flag fences_chosen;
  std::call_once(fences_chosen, choose_fences);
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
  if (!tls_exited) {
    static thread_local ThreadExit exit_hook;
    (void)exit_hook;
  }
  return r;
}

}  // namespace epoch_internal

namespace epoch {

using namespace epoch_internal;

void retire(EpochRetired* item, void (*reclaim)(EpochRetired*)) noexcept {
  item->reclaim = reclaim;
  item->retire_epoch = global_epoch.load(std::memory_order_seq_cst);
  pending_count.fetch_add(1, std::memory_order_relaxed);
  push_pending(item, item);
  collect();
}

std::size_t collect() noexcept {
  try_advance();
  EpochRetired* list = pending_head.exchange(nullptr, std::memory_order_acquire);
  if (list == nullptr) return 0;
  const std::uint64_t e = global_epoch.load(std::memory_order_seq_cst);
  EpochRetired* keep_first = nullptr;
  EpochRetired* keep_last = nullptr;
  std::size_t reclaimed = 0;
  while (list != nullptr) {
    EpochRetired* item = list;
    list = list->next_retired;
    if (item->retire_epoch + 2 <= e) {
      item->reclaim(item);
      ++reclaimed;
    } else {
      item->next_retired = keep_first;
      keep_first = item;
      if (keep_last == nullptr) keep_last = item;
    }
  }
  if (keep_first != nullptr) push_pending(keep_first, keep_last);
  pending_count.fetch_sub(reclaimed, std::memory_order_relaxed);
  return reclaimed;
}

void synchronize() noexcept {
  // Everything retired before now carries an epoch <= target - 2.
  const std::uint64_t target = global_epoch.load(std::memory_order_seq_cst) + 2;
  while (global_epoch.load(std::memory_order_seq_cst) < target) {
    if (!try_advance()) std::this_thread::yield();
  }
  collect();
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
