// LockFreeHashMap: Cliff Click's non-blocking hash map, in C++, for 64-bit keys and values
// below 2^62. The engine's memtable uses it to find the newest record of a key hash.
//
// One table is a power-of-two array of 16-byte slots, four per cache line, probed linearly (step
// 1) from the first slot of the line the hash picks, plus one out-of-line slot for key 0 (the
// word 0 marks an empty key slot, so key 0 cannot live in the array). A table header holds the
// resize state. The default hash is sisu::FoldHash (util/hash.h), cheaper than sisu::Hash;
// nothing here is persisted.
//
//   top_ --> Table                                        Table (next, being filled)
//            +-----------------------------------+        +--------------------------+
//            | capacity, mask, reprobe_limit     |  next  |                          |
//            | next ---------------------------------->   |  ...                     |
//            | copy_idx (work cursor), copy_done |        +--------------------------+
//            | claimed-slot counter cells        |
//            +-----------------------------------+
//            | slot 0: key | value               |  16 B; slots 0..3 share a line,
//            | slot 1: key | value               |  the first four probes of a key
//            | slot 2 | slot 3 | slot 4 ...      |  whose hash picks that line
//            | slot cap: key 0's slot            |
//            +-----------------------------------+
//
// The state machine (Click's, with the copy order of his shipped high-scale-lib code):
// - A key word goes once from 0 (empty) to the key by CAS and never changes again, so a reader
//   can never pair a value with the wrong key. There is no hash word: Click caches the hash
//   so that a probe rejects a Java key without calling equals(); a one-word key is its own
//   cheap reject, and a hash word would double the table (docs/design.md). A copy rehashes.
// - A value word holds a 62-bit value and two state bits:
//     0                 null: no value has ever been written here
//     1                 tombstone: removed
//     01vv..vv          live value v                (bit 62 set)
//     11vv..vv          primed v: frozen by a copy  (bit 63 set)
//     1000..01          primed tombstone: the slot is dead here, look in the next table
//     1000..00          primed null: dead here, and nothing was ever written to it (the one
//                       dead slot a late copy may pass on to the next table; see prime_absent)
//   Writers CAS values; a put whose CAS fails re-reads and retries (it must return the value it
//   replaced, so it cannot simply "lose" to the other write as a blind store could).
// - Resize: when a put probes past reprobe_limit (so a bad hash grows the table instead of
//   probing forever) or when a put that claims a new key with a long probe finds 5/8 of the
//   table claimed (live or dead keys). The new table has two slots per live entry and is
//   published by CAS on `next`. Threads that meet it help copy chunks of slots (64 on their
//   way, 1024 for a whole-table copy) claimed from copy_idx; each slot's copy is counted once
//   in copy_done, and the thread whose count completes the copy swings top_ and retires the
//   old table into the epoch domain (util/epoch.h).
// - Copying a slot: (1) CAS the old value to its primed form, which freezes it against late
//   writers; (2) put the unprimed value into the new table only if the new slot is still null
//   (a write that already reached the new table is newer and wins); (3) CAS the old value to
//   the primed tombstone. A reader or writer that meets a prime finishes that slot's copy and
//   goes on in the newer table. docs/design.md explains why this order and what breaks
//   without it; tests/index/lock_free_hash_map_linearizability_test.cc catches a wrong one.
// - freeze(): CAS a marker into the top table's `next`, then prime every slot. A writer that
//   meets a prime or the marker helps the freeze finish, then throws std::logic_error; readers
//   read through primes. Freezing is lock-free and linearizable at its last prime.
//
// Memory order: each atomic access names its order and why. Key and value words are read
// with acquire and written with acq_rel CAS: a value is the user's publication (the memtable
// stores record offsets in it), and a key seen implies the claimer's CAS happened-before.
// Table pointers (top_, next) are read seq_cst, which pairs with the epoch pin (see epoch.h).
//
// Thread-safety: every method may be called from any number of threads at once, except the
// destructor. get, put, put_if_absent, replace and remove are linearizable and lock-free. Each
// operation pins the thread in the epoch domain (a plain store where Linux membarrier is
// available) and never allocates, except the put that creates a new table during a resize.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>

#include "util/epoch.h"
#include "util/hash.h"
#include "util/striped_counter.h"

namespace sisu {

// How a slot is copied into the new table. Only kFreezeOldFirst is correct; the others exist
// so that the linearizability test can show it catches a wrong order.
enum class CopyOrder {
  kFreezeOldFirst,      // prime old, copy if the new slot is null, kill old (Click's shipped code)
  kTestSkipPrime,       // BROKEN: copy without freezing the old slot; late writes are stomped
  kTestOverwriteNew,    // BROKEN: freeze, but overwrite the new slot; newer writes are lost
  kTestForwardAnyDead,  // BROKEN: a late delivery goes on past any dead slot (a removed value
                        // can come back when three tables are in flight)
};

// The default traits. A user may supply a hasher; tests also supply hooks that yield at the
// racy points of the algorithm so that 2 cores see the interleavings a 64-core machine would.
struct LockFreeHashMapTraits {
  using Hasher = sisu::FoldHash;  // in-memory only, so the cheaper hash (util/hash.h)
  static constexpr CopyOrder kCopyOrder = CopyOrder::kFreezeOldFirst;
  static void before_value_cas() noexcept {}  // a writer, between reading a value and its CAS
  static void copy_step() noexcept {}         // a copier, between the steps of a slot's copy
};

namespace lock_free_internal {

// Value words (see the file comment).
inline constexpr std::uint64_t kNull = 0;
inline constexpr std::uint64_t kTombstone = 1;
inline constexpr std::uint64_t kLiveBit = std::uint64_t{1} << 62;
inline constexpr std::uint64_t kPrimeBit = std::uint64_t{1} << 63;
inline constexpr std::uint64_t kTombPrime = kPrimeBit | kTombstone;
inline constexpr std::uint64_t kPrimedNull = kPrimeBit | kNull;
// Expectations of a conditional write; never stored.
inline constexpr std::uint64_t kNoMatchOld = 2;  // write whatever is there
inline constexpr std::uint64_t kMatchAny = 3;    // write only over a live value
// (kTombstone as an expectation: only over an absent value; kNull: only over null.)

inline constexpr std::uint64_t kMaxValue = kLiveBit - 1;

constexpr bool is_prime(std::uint64_t w) { return (w & kPrimeBit) != 0; }
// The top two bits are 01. A shift, not a mask: one instruction less than the two 64-bit
// constants a mask compare needs, on the lookup's path.
constexpr bool is_live(std::uint64_t w) { return (w >> 62) == 1; }
static_assert(kLiveBit >> 62 == 1 && kPrimeBit >> 62 == 2, "the two state bits are the top two");
constexpr std::uint64_t unprime(std::uint64_t w) { return w & ~kPrimeBit; }

struct Slot {
  std::uint64_t key;    // 0: empty; accessed through std::atomic_ref only
  std::uint64_t value;  // value word
};
// Four slots per line, the array 64-byte aligned: a probe's first four steps read one line.
// No hash word (see the file comment).
inline constexpr std::uint64_t kLineSlots = 64 / sizeof(Slot);
static_assert(sizeof(Slot) == 16 && kLineSlots == 4,
              "16-byte slots at 64-byte alignment never straddle a cache line");

inline std::uint64_t load(const std::uint64_t& w, std::memory_order mo) {
  return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(w)).load(mo);
}
inline void store(std::uint64_t& w, std::uint64_t v, std::memory_order mo) {
  std::atomic_ref<std::uint64_t>(w).store(v, mo);
}
inline bool cas(std::uint64_t& w, std::uint64_t& expected, std::uint64_t desired) {
  // acq_rel on success: release publishes what the writer did before (the user's record, the
  // claimer's key); acquire on failure: the value we now hold may be acted upon at once.
  return std::atomic_ref<std::uint64_t>(w).compare_exchange_strong(
      expected, desired, std::memory_order_acq_rel, std::memory_order_acquire);
}

// Bytes of all live tables of every LockFreeHashMap in the process (tests check that retired
// tables are given back).
inline std::atomic<std::int64_t> live_table_bytes{0};

struct Table {
  EpochRetired retired;  // first member: the epoch domain hands back this address
  std::uint64_t capacity;
  std::uint64_t mask;
  std::uint64_t line_bytes_mask;  // home line's byte offset: (hash * sizeof(Slot)) & this
  std::uint64_t reprobe_limit;
  std::size_t bytes;
  bool mapped;
  std::uint32_t cell_mask;
  std::int64_t* claimed_cells;  // striped count of claimed key slots, cell per 64 bytes
  Slot* slots;                  // capacity + 1 slots; slots[capacity] is key 0's

  // Every operation reads next; copiers write the counters below it. Separate lines, or each
  // copied chunk would invalidate every reader's copy of `next`.
  alignas(64) std::atomic<Table*> next{nullptr};
  alignas(64) std::atomic<std::uint64_t> copy_idx{0};
  std::atomic<std::uint64_t> copy_done{0};
  std::atomic<std::uint32_t> resizers{0};
  std::atomic<std::uint64_t> populated{0};  // bytes of a mapped table prefaulted so far

  // Prefaults the next stretch of a mapped table for writing. A fresh mapping's first touch is
  // usually a probe's read, which maps the shared zero page; the write that follows then
  // replaces it, and with the process on several CPUs that costs a TLB shootdown (an IPI,
  // a VM exit under a hypervisor: most of a 2-thread growth profile). The copy's helpers
  // call this once per chunk, so pages are made writable ahead of the random probes, a few
  // tens of microseconds at a time.
  void populate_some() {
    if (!mapped) return;
    const std::uint64_t off = populated.fetch_add(kPopulateBytes, std::memory_order_relaxed);
    if (off >= bytes) return;
    const std::size_t len = std::min<std::size_t>(kPopulateBytes, bytes - off);
#ifdef MADV_POPULATE_WRITE
    ::madvise(reinterpret_cast<char*>(this) + off, len, MADV_POPULATE_WRITE);  // best effort
#endif
  }
  static constexpr std::uint64_t kPopulateBytes = 64 << 10;

  std::uint64_t total_slots() const { return capacity + 1; }

  void add_claimed() {
    std::atomic_ref<std::int64_t>(claimed_cells[(this_thread_stripe() & cell_mask) * 8])
        .fetch_add(1, std::memory_order_relaxed);  // an estimate: only sizes resizes
  }
  std::int64_t claimed() const {
    std::int64_t s = 0;
    for (std::uint32_t i = 0; i <= cell_mask; ++i) {
      s += std::atomic_ref<std::int64_t>(claimed_cells[i * 8]).load(std::memory_order_relaxed);
    }
    return s;
  }

  // Zeroed, so every key is empty and every value null. Big tables come from mmap, whose
  // zero pages cost nothing until a slot on them is written. Throws std::bad_alloc.
  static Table* create(std::uint64_t capacity) {
    const std::uint32_t cells = capacity >= 4096 ? 16 : capacity >= 512 ? 4 : 1;
    const std::size_t header = (sizeof(Table) + 63) & ~std::size_t{63};
    const std::size_t cell_bytes = std::size_t{cells} * 64;
    if (capacity > (std::size_t{1} << 40)) throw std::bad_alloc();
    const std::size_t bytes = header + cell_bytes + (capacity + 1) * sizeof(Slot);
    const bool mapped = bytes >= kMmapBytes;
    void* mem;
    if (mapped) {
      mem = map_table(bytes);
    } else {
      mem = ::operator new (bytes, std::align_val_t{64});
      std::memset(mem, 0, bytes);
    }
    Table* t = new (mem) Table;
    t->capacity = capacity;
    t->mask = capacity - 1;
    t->line_bytes_mask = (t->mask & ~(kLineSlots - 1)) * sizeof(Slot);
    // Click's limit: a probe may run a quarter of the table (plus a little for tiny tables)
    // before the put resizes. Keeps a table that a bad hash clusters from probing forever,
    // and never fires on a good hash below half load.
    t->reprobe_limit = 10 + (capacity >> 2);
    t->bytes = bytes;
    t->mapped = mapped;
    t->cell_mask = cells - 1;
    t->claimed_cells = reinterpret_cast<std::int64_t*>(static_cast<char*>(mem) + header);
    t->slots = reinterpret_cast<Slot*>(static_cast<char*>(mem) + header + cell_bytes);
    live_table_bytes.fetch_add(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
    return t;
  }

  static void destroy(Table* t) noexcept {
    const std::size_t bytes = t->bytes;
    const bool mapped = t->mapped;
    t->~Table();
    if (mapped) {
      // Free the pages under the shared mmap lock first: munmap holds it exclusively while it
      // frees them (9 ms for 128 MiB), stalling every page fault of the process meanwhile,
      // which is every insert into a table that is growing.
      ::madvise(t, bytes, MADV_DONTNEED);
      ::munmap(t, bytes);
    } else {
      ::operator delete (static_cast<void*>(t), std::align_val_t{64});
    }
    live_table_bytes.fetch_sub(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
  }

  static void reclaim(EpochRetired* r) noexcept { destroy(reinterpret_cast<Table*>(r)); }

  // A big table is mapped, and opts out of transparent huge pages: a put that touches a fresh
  // huge page waits while the kernel zeroes 2 MiB (and may compact memory for it), measured at
  // 4.5 ms per fault and hundreds of such puts while a table grows to 10M entries. With 4 KiB
  // pages a fault costs microseconds; lookups lose a little to TLB misses (docs/benchmarks.md).
  static void* map_table(std::size_t bytes) {
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) throw std::bad_alloc();
    ::madvise(mem, bytes, MADV_NOHUGEPAGE);
    return mem;
  }

  static constexpr std::size_t kMmapBytes = std::size_t{1} << 20;
};
static_assert(offsetof(Table, retired) == 0, "reclaim() casts the EpochRetired back");

}  // namespace lock_free_internal

template <class Key = std::uint64_t, class Value = std::uint64_t,
          class Traits = LockFreeHashMapTraits>
class LockFreeHashMap {
  static_assert(sizeof(Key) == 8 && std::is_trivially_copyable_v<Key>,
                "keys are stored as one 64-bit word, claimed by CAS");
  static_assert(std::is_integral_v<Value> && std::is_unsigned_v<Value>,
                "values are unsigned integers below 2^62: the top two bits are state bits");

  using Table = lock_free_internal::Table;
  using Slot = lock_free_internal::Slot;
  using Hasher = typename Traits::Hasher;

 public:
  using key_type = Key;
  using mapped_type = Value;

  // The smallest table; a put that finds it too full doubles it.
  static constexpr std::size_t kMinCapacity = 8;

  // Sized so that `initial_capacity` entries fit before the first resize.
  explicit LockFreeHashMap(std::size_t initial_capacity = 0)
      : min_capacity_(capacity_for(initial_capacity)), top_(Table::create(min_capacity_)) {}

  // REQUIRES: no other thread uses the map any more.
  ~LockFreeHashMap() {
    Table* t = top_.load(std::memory_order_acquire);
    while (t != nullptr && t != frozen_marker()) {
      Table* next = t->next.load(std::memory_order_acquire);
      Table::destroy(t);
      t = next;
    }
    epoch::collect();  // tables this map retired may be due
  }

  LockFreeHashMap(const LockFreeHashMap&) = delete;
  LockFreeHashMap& operator=(const LockFreeHashMap&) = delete;

  [[gnu::always_inline]] std::optional<Value> get(Key key) const {
    using namespace lock_free_internal;
    EpochGuard pin;
    const std::uint64_t k = to_word(key);
    const std::uint64_t h = hash_of(k);
    Table* t = top();
    // Fast path, small enough to inline: the home line decides most lookups.
    if (k != 0) {
      bool absent = false;
      if (const Slot* s = find_in_home_line(t, k, h, absent)) {
        const std::uint64_t v = load(s->value, std::memory_order_acquire);
        if (!is_prime(v)) return decode(v);
      } else if (absent) {
        return std::nullopt;
      }
    }
    return decode(get_impl(t, k, h));
  }

  bool contains(Key key) const { return get(key).has_value(); }

  // Returns the previous value.
  std::optional<Value> put(Key key, Value value) {
    return decode(write(key, encode(value), lock_free_internal::kNoMatchOld));
  }

  // Returns the value already present, or nullopt when this call inserted.
  std::optional<Value> put_if_absent(Key key, Value value) {
    return decode(write(key, encode(value), lock_free_internal::kTombstone));
  }

  // Writes only when the key is present; returns the previous value.
  std::optional<Value> replace(Key key, Value value) {
    return decode(write(key, encode(value), lock_free_internal::kMatchAny));
  }

  // Compare-and-set: writes `desired` only when the key holds `expected`.
  bool replace(Key key, Value expected, Value desired) {
    const std::uint64_t exp = encode(expected);
    return write(key, encode(desired), exp) == exp;
  }

  std::optional<Value> remove(Key key) {
    return decode(write(key, lock_free_internal::kTombstone, lock_free_internal::kNoMatchOld));
  }

  // Removes only when the key holds `expected`.
  bool remove(Key key, Value expected) {
    const std::uint64_t exp = encode(expected);
    return write(key, lock_free_internal::kTombstone, exp) == exp;
  }

  // Entries present (see the contract: exact when no writer runs). While writers run it is at
  // least the number of entries present for the whole call: an insert counts itself before its
  // CAS (undoing it if the CAS fails) and a remove after its CAS.
  std::size_t size() const {
    const std::int64_t s = size_.sum();
    return s > 0 ? static_cast<std::size_t>(s) : 0;
  }
  bool empty() const { return size() == 0; }

  // Removes every entry (each removal is linearizable; the clear as a whole is not atomic with
  // concurrent writers), then shrinks the table to fit what is left.
  void clear() {
    check_not_frozen();
    for_each([this](Key k, Value) { remove(k); });
    shrink();
  }

  // Calls f(key, value) for the entries. Weakly consistent: an entry present for the whole
  // call is seen exactly once, with a value it held during the call; an entry added or removed
  // meanwhile may or may not be seen. f runs with the thread pinned: it may call the map, and
  // retired tables wait for it.
  template <class F>
  void for_each(F&& f) const {
    using namespace lock_free_internal;
    EpochGuard pin;
    Table* t = settled_top();
    const std::uint64_t n = t->total_slots();
    for (std::uint64_t idx = 0; idx < n; ++idx) {
      const Slot& s = t->slots[idx];
      const std::uint64_t k = idx == t->capacity ? 0 : load(s.key, std::memory_order_acquire);
      if (k == 0 && idx != t->capacity) continue;
      std::uint64_t v = load(s.value, std::memory_order_acquire);
      if (is_prime(v)) {
        if (t->next.load(std::memory_order_seq_cst) == frozen_marker()) {
          v = unprime(v);
        } else {
          // A resize began during the walk: the slot's value now lives in a newer table.
          v = get_impl(t, k, hash_of(k));
        }
      }
      if (is_live(v)) f(from_word(k), static_cast<Value>(v & kMaxValue));
    }
  }

  // Makes the map read-only: afterwards every write method throws std::logic_error and changes
  // nothing. Linearizable; a second call does nothing.
  void freeze() {
    EpochGuard pin;
    for (;;) {
      Table* t = top();
      Table* n = t->next.load(std::memory_order_seq_cst);
      if (n == frozen_marker()) {
        help_freeze(t);
        return;
      }
      if (n != nullptr) {
        help_copy_impl(t, n, /*copy_all=*/true);
        continue;
      }
      Table* expected = nullptr;
      // Only the top table can have a null next, so the marker lands on the last table.
      if (t->next.compare_exchange_strong(expected, frozen_marker(), std::memory_order_seq_cst)) {
        help_freeze(t);
        return;
      }
    }
  }
  bool frozen() const { return frozen_.load(std::memory_order_acquire); }

  // Slots in the current top table (not counting key 0's).
  std::size_t capacity() const {
    EpochGuard pin;
    return top()->capacity;
  }

  // Resizes completed so far (tables replaced by a newer one).
  std::uint64_t resizes() const { return resizes_.load(std::memory_order_relaxed); }

  // Bytes of the tables this map holds now (a resize holds two), plus its counters.
  std::size_t memory_bytes() const {
    EpochGuard pin;
    std::size_t b = sizeof(*this) + size_.memory_bytes();
    for (Table* t = top(); t != nullptr && t != frozen_marker();
         t = t->next.load(std::memory_order_seq_cst)) {
      b += t->bytes;
    }
    return b;
  }

 private:
  // ---- encoding ------------------------------------------------------------------------
  static std::uint64_t to_word(Key key) { return std::bit_cast<std::uint64_t>(key); }
  static Key from_word(std::uint64_t w) { return std::bit_cast<Key>(w); }

  static std::uint64_t encode(Value v) {
    if (static_cast<std::uint64_t>(v) > lock_free_internal::kMaxValue) {
      throw std::invalid_argument("LockFreeHashMap: values must be below 2^62");
    }
    return static_cast<std::uint64_t>(v) | lock_free_internal::kLiveBit;
  }
  static std::optional<Value> decode(std::uint64_t w) {
    if (!lock_free_internal::is_live(w)) return std::nullopt;
    return static_cast<Value>(w & lock_free_internal::kMaxValue);
  }

  static std::size_t capacity_for(std::size_t entries) {
    // Half full at most: most probes end in their home line (docs/design.md, "Probing").
    const std::size_t want = std::max<std::size_t>(kMinCapacity, entries * 2);
    if (want > (std::size_t{1} << 40)) throw std::bad_alloc();
    return std::bit_ceil(want);
  }

  static Table* frozen_marker() {
    // Never dereferenced; distinct from every table (tables are 64-byte aligned).
    return reinterpret_cast<Table*>(std::uintptr_t{1});
  }

  std::uint64_t hash_of(std::uint64_t k) const { return hasher_(k); }

  // k's slot among the four of its home line (where every probe of k starts), or null. When
  // null, `absent` tells whether an empty slot ended the probe there: puts claim the first
  // empty slot of a probe, so k is in no later slot either. The scan branches on each key; a
  // branch-free select of the matching slot measured 17-20% slower (the lookup's loads then
  // wait on the compares; docs/benchmarks.md).
  [[gnu::always_inline]] static const Slot* find_in_home_line(const Table* t, std::uint64_t k,
                                                              std::uint64_t h, bool& absent) {
    using namespace lock_free_internal;
    const Slot* s = home_line(t, h);
#pragma GCC unroll 4
    for (std::uint64_t i = 0; i < kLineSlots; ++i) {
      const std::uint64_t found = load(s[i].key, std::memory_order_acquire);
      if (found == k) return &s[i];
      if (found == 0) {
        absent = true;
        return nullptr;
      }
    }
    absent = false;
    return nullptr;
  }

  // Where k's probe starts: the first slot of the cache line its hash picks. Probing then
  // steps by one slot, wrapping at the end of the table (Click's linear reprobe), but the first
  // four probes cost one cache line instead of up to two. One byte mask finds the line (the
  // lookup's path: one mask instead of two and a shift).
  [[gnu::always_inline]] static const Slot* home_line(const Table* t, std::uint64_t h) {
    const Slot* s = reinterpret_cast<const Slot*>(reinterpret_cast<const char*>(t->slots) +
                                                  ((h * sizeof(Slot)) & t->line_bytes_mask));
    if (s == nullptr) __builtin_unreachable();  // so callers' tests of a slot are one test
    return s;
  }
  static std::uint64_t home(const Table* t, std::uint64_t h) {
    return static_cast<std::uint64_t>(home_line(t, h) - t->slots);
  }

  // seq_cst: ordered after the epoch pin (see util/epoch.h).
  Table* top() const { return top_.load(std::memory_order_seq_cst); }

  void check_not_frozen() const {
    if (frozen()) throw_frozen();
  }
  [[noreturn]] static void throw_frozen() {
    throw std::logic_error("LockFreeHashMap: write to a frozen map");
  }

  std::uint64_t write(Key key, std::uint64_t put, std::uint64_t expect) {
    check_not_frozen();
    EpochGuard pin;
    const std::uint64_t k = to_word(key);
    return put_if_match(top(), k, hash_of(k), put, expect, /*count=*/true);
  }

  // ---- the slot of a key -----------------------------------------------------------------
  // True when `value` satisfies the expectation of a conditional write.
  static bool matches(std::uint64_t value, std::uint64_t expect) {
    using namespace lock_free_internal;
    switch (expect) {
      case kNoMatchOld:
        return true;
      case kMatchAny:
        return is_live(value);
      case kTombstone:
        return !is_live(value);
      case kNull:
        return value == kNull;
      default:
        return value == expect;
    }
  }

  // Returns the live value word of k, or kNull. Follows newer tables as needed.
  [[gnu::noinline]] std::uint64_t get_impl(Table* t, std::uint64_t k, std::uint64_t h) const {
    using namespace lock_free_internal;
    for (;;) {
      std::uint64_t idx;
      if (k == 0) {
        idx = t->capacity;
      } else {
        idx = home(t, h);
        std::uint64_t reprobes = 0;
        for (;;) {
          const std::uint64_t found = load(t->slots[idx].key, std::memory_order_acquire);
          if (found == k) break;
          if (found == 0) return kNull;  // a clear miss: puts claim the first empty slot
          if (++reprobes >= t->reprobe_limit) {
            // Puts never place a key further; if a newer table exists it may be there.
            Table* n = t->next.load(std::memory_order_seq_cst);
            if (n == nullptr || n == frozen_marker()) return kNull;
            t = const_cast<LockFreeHashMap*>(this)->help_copy(n);
            goto next_table;
          }
          idx = (idx + 1) & t->mask;
        }
      }
      {
        const std::uint64_t v = load(t->slots[idx].value, std::memory_order_acquire);
        if (!is_prime(v)) return is_live(v) ? v : kNull;
        Table* n = t->next.load(std::memory_order_seq_cst);
        if (n == frozen_marker()) return v == kTombPrime ? kNull : unprime(v);
        // Being copied: finish this slot, then read the newer table.
        t = const_cast<LockFreeHashMap*>(this)->copy_slot_and_check(t, idx, n, /*help=*/true);
      }
    next_table:;
    }
  }

  // Click's putIfMatch: writes `put` to k's slot if its value matches `expect`; returns the
  // value word found there (kNull or kTombstone when absent). `count` is false for the copy's
  // own puts (deliveries), which move entries rather than add them, and which never help copy
  // other slots (a copy inside a copy would recurse without bound).
  std::uint64_t put_if_match(Table* t, std::uint64_t k, std::uint64_t h, std::uint64_t put,
                             std::uint64_t expect, bool count) {
    using namespace lock_free_internal;
    for (;;) {
      std::uint64_t idx;
      std::uint64_t reprobes = 0;
      if (k == 0) {
        idx = t->capacity;
      } else {
        idx = home(t, h);
        for (;;) {
          Slot& s = t->slots[idx];
          std::uint64_t found = load(s.key, std::memory_order_acquire);
          if (found == 0) {
            // Never been in this table. Nothing to remove, nothing to match.
            if (put == kTombstone) return kNull;
            if (expect == kMatchAny || is_live(expect)) return kNull;
            if (cas(s.key, found, k)) {
              t->add_claimed();
              break;
            }
            // Lost the claim; `found` now holds the winner's key.
          }
          if (found == k) break;
          if (++reprobes >= t->reprobe_limit) {
            Table* n = resize(t, /*grow=*/true);
            if (count) help_copy(n);  // not from inside a copy: no recursion
            t = n;
            goto next_table;
          }
          idx = (idx + 1) & t->mask;
        }
      }
      {
        Slot& s = t->slots[idx];
        std::uint64_t v = load(s.value, std::memory_order_acquire);
        if (v == put) return v;  // already so: nothing to write
        // A copy delivers only into a slot that nothing ever reached (see prime_absent).
        const bool delivery = !count && expect == kNull;
        if (delivery && delivery_stops(v)) return v;
        Table* n = t->next.load(std::memory_order_seq_cst);
        if (n == nullptr && v == kNull && reprobes >= kFullCheckReprobes && table_full(t)) {
          n = resize(t, /*grow=*/false);
        }
        if (n != nullptr) {
          if (n == frozen_marker()) {
            // A copy's put reaching a frozen table comes late: the slot it copies was counted
            // done, so its value is here already.
            if (!count) return v;
            help_freeze(t);
            throw_frozen();
          }
          t = copy_slot_and_check(t, idx, n, /*help=*/count);
          continue;
        }
        for (;;) {
          if (!matches(v, expect)) return v;
          if (put == kTombstone && !is_live(v)) return v;  // already absent
          Traits::before_value_cas();
          const bool inserting = count && !is_live(v) && is_live(put);
          const bool removing = count && is_live(v) && !is_live(put);
          if (inserting) size_.add(1);
          if (cas(s.value, v, put)) {
            if (removing) size_.add(-1);
            return v;
          }
          if (inserting) size_.add(-1);
          if (delivery && delivery_stops(v)) return v;  // see above
          if (is_prime(v)) break;  // a copy or freeze froze the slot: go where it points
          // Lost to another write; `v` holds it. Retry against it.
        }
        n = t->next.load(std::memory_order_seq_cst);
        if (n == frozen_marker()) {
          if (!count) return v;
          help_freeze(t);
          throw_frozen();
        }
        t = copy_slot_and_check(t, idx, n, /*help=*/count);
      }
    next_table:;
    }
  }

  // A put that claims a key after this many reprobes (past its home line) checks whether
  // claimed keys (live or dead) fill 5/8 of the table. Resizing at 1/2 would shorten probes a
  // little and waste up to twice the memory for entry counts just past a power of two (10M
  // entries: 256 MiB of slots instead of 512).
  static constexpr std::uint64_t kFullCheckReprobes = 4;
  static bool table_full(const Table* t) {
    return t->claimed() >= static_cast<std::int64_t>(t->capacity / 8 * 5);
  }

  // The size of a new table: two slots per live entry, so a growing table doubles (starting
  // at most 5/16 full) and a table full of dead keys shrinks to fit the live ones.
  std::uint64_t capacity_for_live() const {
    const std::int64_t live = std::max<std::int64_t>(size_.sum(), 0);
    return std::max<std::uint64_t>(min_capacity_,
                                   std::bit_ceil(static_cast<std::uint64_t>(live) * 2 + 1));
  }

  // ---- resize --------------------------------------------------------------------------
  // Returns t's next table, creating it if none exists. Throws logic_error if t is frozen.
  // `grow`: the put probed past the reprobe limit, so a table of the same size would cluster
  // the same way (a bad hash); the new one is at least twice as large.
  Table* resize(Table* t, bool grow) {
    Table* n = t->next.load(std::memory_order_seq_cst);
    if (n != nullptr) {
      if (n == frozen_marker()) {
        help_freeze(t);
        throw_frozen();
      }
      return n;
    }
    std::uint64_t cap = capacity_for_live();
    if (grow) cap = std::max(cap, t->capacity * 2);
    // Many threads may decide at once to resize a big table; let the first allocate it.
    if (t->resizers.fetch_add(1, std::memory_order_relaxed) > 0 &&
        cap * sizeof(Slot) >= Table::kMmapBytes) {
      for (int i = 0; i < 1000; ++i) {
        n = t->next.load(std::memory_order_seq_cst);
        if (n != nullptr) return resize(t, grow);
        std::this_thread::yield();
      }
    }
    Table* fresh = Table::create(cap);
    Table* expected = nullptr;
    // seq_cst: a thread that sees the new table sees it fully built (release), and the
    // publication is ordered with the readers' seq_cst loads of next.
    if (t->next.compare_exchange_strong(expected, fresh, std::memory_order_seq_cst)) {
      return fresh;
    }
    Table::destroy(fresh);   // never published: nobody else can hold it
    return resize(t, grow);  // someone else's table, or the freeze marker
  }

  // Helps the top table's copy by one chunk, then returns `n` (the table the caller goes to).
  Table* help_copy(Table* n) {
    Table* t = top();
    Table* tn = t->next.load(std::memory_order_seq_cst);
    if (tn != nullptr && tn != frozen_marker()) help_copy_impl(t, tn, /*copy_all=*/false);
    return n;
  }

  // Copies slots of t into n in chunks (see work_through). With copy_all it returns
  // only when the whole table is copied; otherwise after one chunk.
  void help_copy_impl(Table* t, Table* n, bool copy_all) {
    if (t->copy_done.load(std::memory_order_acquire) < t->total_slots()) n->populate_some();
    work_through(
        t, copy_all, [&](std::uint64_t idx) { return copy_slot(t, idx, n); },
        [&](std::uint64_t work) { copy_check_and_promote(t, work); });
    copy_check_and_promote(t, 0);
  }

  // Shares the slots of t among the threads that call it: each claims chunks (kHelpChunk, or
  // kCopyChunk when `all`) from t's cursor and calls done_slot(idx), true when that call finished
  // the slot; count(n) records n finished slots (in t->copy_done). With all (or once the cursor has
  // gone round twice: "panic", a claimer is stalled) it goes on until every slot is done, else it
  // stops after one chunk.
  template <class DoneSlot, class Count>
  static void work_through(Table* t, bool all, DoneSlot&& done_slot, Count&& count) {
    const std::uint64_t total = t->total_slots();
    const std::uint64_t chunk = std::min<std::uint64_t>(total, all ? kCopyChunk : kHelpChunk);
    bool panic = false;
    std::uint64_t start = 0;
    while (t->copy_done.load(std::memory_order_acquire) < total) {
      if (!panic) {
        start = t->copy_idx.fetch_add(chunk, std::memory_order_relaxed);
        if (start >= 2 * total) panic = true;
      }
      std::uint64_t work = 0;
      for (std::uint64_t i = 0, idx = start % total; i < chunk; ++i) {
        if (done_slot(idx)) ++work;
        if (++idx == total) idx = 0;
      }
      if (work > 0) count(work);
      start += chunk;
      if (!all && !panic) return;
    }
  }

  Table* copy_slot_and_check(Table* t, std::uint64_t idx, Table* n, bool help) {
    if (copy_slot(t, idx, n)) copy_check_and_promote(t, 1);
    return help ? help_copy(n) : n;
  }

  // Counts `work` slots copied; the thread that completes the count swings top_ past t (and
  // past newer tables whose copies completed while t was still on top) and retires them.
  void copy_check_and_promote(Table* t, std::uint64_t work) {
    std::uint64_t done = t->copy_done.load(std::memory_order_acquire);
    if (work > 0) {
      // acq_rel: the completing thread acquires every copier's puts before it publishes.
      done = t->copy_done.fetch_add(work, std::memory_order_acq_rel) + work;
    }
    while (done == t->total_slots()) {
      Table* n = t->next.load(std::memory_order_seq_cst);
      Table* expected = t;
      if (!top_.compare_exchange_strong(expected, n, std::memory_order_seq_cst)) return;
      resizes_.fetch_add(1, std::memory_order_relaxed);
      epoch::retire(&t->retired, &Table::reclaim, /*heavy=*/t->mapped);
      t = n;
      Table* nn = t->next.load(std::memory_order_seq_cst);
      if (nn == nullptr || nn == frozen_marker()) return;
      done = t->copy_done.load(std::memory_order_acquire);
    }
  }

  // Copies slot idx of t into n; true when this call completed the slot's copy (exactly one
  // call per slot returns true). See the file comment for the order of the three steps.
  bool copy_slot(Table* t, std::uint64_t idx, Table* n) {
    using namespace lock_free_internal;
    Slot& s = t->slots[idx];
    std::uint64_t old = load(s.value, std::memory_order_acquire);
    if constexpr (Traits::kCopyOrder == CopyOrder::kTestSkipPrime) {
      // BROKEN on purpose: copies what it read without freezing it first.
      if (!is_prime(old)) {
        if (old == kNull || old == kTombstone) {
          if (cas(s.value, old, prime_absent(old))) return true;
          return copy_slot(t, idx, n);
        }
        Traits::copy_step();
        copy_into(t, idx, n, old);
        Traits::copy_step();
        while (old != kTombPrime && !cas(s.value, old, kTombPrime)) {
        }
        return old != kTombPrime;
      }
    }
    // (1) Freeze: box whatever is there. Absent values need no copy: the primed tombstone
    // says "not here, look in the next table" at once.
    while (!is_prime(old)) {
      const std::uint64_t box = is_live(old) ? (old | kPrimeBit) : prime_absent(old);
      if (cas(s.value, old, box)) {
        if (!is_live(unprime(box))) return true;
        old = box;
        break;
      }
    }
    if (!is_live(unprime(old))) return false;  // someone finished this slot
    Traits::copy_step();
    // (2) Copy into the new table unless a newer write got there first.
    copy_into(t, idx, n, unprime(old));
    Traits::copy_step();
    // (3) Kill the old slot. Only copiers write it now, all with the same value.
    while (old != kTombPrime && !cas(s.value, old, kTombPrime)) {
    }
    return old != kTombPrime;
  }

  // An absent value frozen by a copy. Null and tombstone freeze differently: a copier that
  // froze a live value may deliver it late (another copier did it meanwhile), and must not
  // deliver past a slot that ever held a value, or it would resurrect a value that later
  // writes replaced or removed. A primed null says "nothing ever reached this slot", the one
  // case where a late delivery goes on to the next table. See put_if_match.
  static std::uint64_t prime_absent(std::uint64_t v) {
    using namespace lock_free_internal;
    if constexpr (Traits::kCopyOrder == CopyOrder::kTestForwardAnyDead) return kTombPrime;
    return v == kNull ? kPrimedNull : kTombPrime;
  }
  // True when a copy's delivery finds the slot already reached by something else.
  static bool delivery_stops(std::uint64_t v) {
    using namespace lock_free_internal;
    if constexpr (Traits::kCopyOrder == CopyOrder::kTestForwardAnyDead) {
      return v != kNull && !is_prime(v);
    }
    return v != kNull && v != kPrimedNull;
  }

  void copy_into(Table* t, std::uint64_t idx, Table* n, std::uint64_t live_value) {
    using namespace lock_free_internal;
    const Slot& s = t->slots[idx];
    const std::uint64_t k = idx == t->capacity ? 0 : load(s.key, std::memory_order_acquire);
    const std::uint64_t h = k == 0 ? 0 : hash_of(k);
    const std::uint64_t expect =
        Traits::kCopyOrder == CopyOrder::kTestOverwriteNew ? kNoMatchOld : kNull;
    put_if_match(n, k, h, live_value, expect, /*count=*/false);
  }

  // ---- freeze ----------------------------------------------------------------------------
  // Primes every slot of t (whose next is the freeze marker), sharing the work through t's
  // copy cursor, then marks the map frozen.
  void help_freeze(Table* t) {
    using namespace lock_free_internal;
    work_through(
        t, /*all=*/true,
        [t](std::uint64_t idx) {
          Slot& s = t->slots[idx];
          std::uint64_t v = load(s.value, std::memory_order_acquire);
          while (!is_prime(v)) {
            if (cas(s.value, v, is_live(v) ? (v | kPrimeBit) : kTombPrime)) return true;
          }
          return false;
        },
        [t](std::uint64_t work) { t->copy_done.fetch_add(work, std::memory_order_acq_rel); });
    frozen_.store(true, std::memory_order_release);
  }

  // ---- whole-table walks ---------------------------------------------------------------
  // The top table after finishing any copy in progress. REQUIRES: pinned.
  Table* settled_top() const {
    auto* self = const_cast<LockFreeHashMap*>(this);
    for (;;) {
      Table* t = top();
      Table* n = t->next.load(std::memory_order_seq_cst);
      if (n == nullptr || n == frozen_marker()) return t;
      self->help_copy_impl(t, n, /*copy_all=*/true);
    }
  }

  // Replaces the top table by one sized for the entries left, if that is smaller.
  void shrink() {
    EpochGuard pin;
    Table* t = settled_top();
    if (t->next.load(std::memory_order_seq_cst) != nullptr) return;
    if (capacity_for_live() >= t->capacity) return;
    Table* n = resize(t, /*grow=*/false);
    help_copy_impl(t, n, /*copy_all=*/true);
  }

  // Slots a thread claims at a time when it copies a whole table, and when it only helps on
  // the way to its own operation. The helper's chunk bounds the latency a resize adds to one
  // put: early in a copy nearly every slot copied lands on a page of the new table not yet
  // touched (a page fault, ~2 us), so 1024 slots cost milliseconds (measured: 8.9 ms at 8M
  // entries) and 64 cost ~0.1 ms. The copy still outruns the inserts that fill the new
  // table: 2^n slots copied in 2^n / 64 puts, against ~0.3 * 2^(n+1) puts to fill it.
  static constexpr std::uint64_t kCopyChunk = 1024;
  static constexpr std::uint64_t kHelpChunk = 64;

  const std::size_t min_capacity_;
  std::atomic<Table*> top_;
  mutable StripedCounter size_;
  std::atomic<bool> frozen_{false};
  std::atomic<std::uint64_t> resizes_{0};
  Hasher hasher_{};
};

}  // namespace sisu
