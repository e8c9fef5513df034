#include "alloc/slab_allocator.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#define SISU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SISU_ASAN 1
#endif
#endif

#ifdef SISU_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace sisu {
namespace {

#ifdef SISU_ASAN
void poison(const void* p, std::size_t n) { ASAN_POISON_MEMORY_REGION(p, n); }
void unpoison(const void* p, std::size_t n) { ASAN_UNPOISON_MEMORY_REGION(p, n); }
bool is_poisoned(const void* p) { return __asan_address_is_poisoned(p) != 0; }
#else
void poison(const void*, std::size_t) {}
void unpoison(const void*, std::size_t) {}
bool is_poisoned(const void*) { return false; }
#endif

constexpr std::uint64_t kSlabMagic = 0x534c41425f534953ULL;  // "SIS_BALS"

// A thread's cache holds up to kCacheBytesPerClass (and at most kMaxCacheBlocks blocks) of each
// class, and kThreadCacheBytes in all. The sizes are what a thread's working set of maps needs
// for its blocks to stay on its core: when a cache is too small to hold a map's tables, they
// pass through the shared transfer array to other threads and every first touch becomes a
// cross-core miss (bench/slab_allocator_bench, BM_MapLifecycle: with 64 KiB per class, two
// threads together did 0.5x the work of one; with these sizes they do 1.9x).
constexpr std::size_t kCacheBytesPerClass = std::size_t{1} << 20;
constexpr std::uint32_t kMaxCacheBlocks = 128;
constexpr std::size_t kThreadCacheBytes = std::size_t{4} << 20;
// Each class also keeps a transfer array of up to this many bytes of free blocks (at least two
// full thread caches' worth) that thread caches flush into and refill from: a pointer copy
// under the class lock, touching no block, so threads that trade blocks barely contend.
constexpr std::size_t kTransferBytesPerClass = std::size_t{1} << 20;

constexpr std::size_t class_index_unchecked(std::size_t bytes) {
  if (bytes <= 512) return (bytes + 63) / 64 - 1;
  const std::size_t lg = std::bit_width(bytes - 1) - 1;  // floor(log2(bytes - 1)) >= 9
  return 8 + (lg - 9) * 4 + ((bytes - 1) >> (lg - 2)) - 4;
}

constexpr std::size_t block_bytes_unchecked(std::size_t c) {
  if (c < 8) return (c + 1) * 64;
  const std::size_t group = (c - 8) / 4;
  const std::size_t step = (c - 8) % 4 + 1;
  return (std::size_t{512} << group) + step * (std::size_t{128} << group);
}

static_assert(block_bytes_unchecked(SlabAllocator::kNumClasses - 1) ==
                  SlabAllocator::kMaxBlockBytes,
              "the last class is the largest block served");
static_assert(class_index_unchecked(SlabAllocator::kMaxBlockBytes) ==
              SlabAllocator::kNumClasses - 1);
static_assert(class_index_unchecked(513) == 8 && block_bytes_unchecked(8) == 640);
static_assert(block_bytes_unchecked(8) % SlabAllocator::kAlignment == 0,
              "the smallest step above 512 B (128 B) keeps blocks cache-line aligned");

std::uint32_t cache_capacity(std::size_t c) {
  const std::size_t n = kCacheBytesPerClass / block_bytes_unchecked(c);
  return static_cast<std::uint32_t>(std::clamp<std::size_t>(n, 1, kMaxCacheBlocks));
}

std::size_t transfer_capacity(std::size_t c) {
  return std::max<std::size_t>(kTransferBytesPerClass / block_bytes_unchecked(c),
                               2 * cache_capacity(c));
}

[[noreturn]] void die(const char* what, const void* p, std::size_t bytes) {
  std::fprintf(stderr, "sisu::SlabAllocator: %s (block %p, %zu bytes)\n", what, p, bytes);
  std::abort();
}

}  // namespace

// The first kSlabHeaderBytes of every slab.
struct SlabAllocator::Slab {
  std::uint64_t magic;
  const SlabAllocator* owner;
  Slab* prev;  // in its class's list of slabs that have a free block
  Slab* next;
  void* free_list;  // freed blocks, linked through their first 8 bytes
  std::uint32_t class_index;
  std::uint32_t capacity;  // blocks in this slab
  std::uint32_t carved;    // blocks [0, carved) have been handed out at least once
  std::uint32_t in_use;    // blocks out of the slab: with callers or in thread caches
  bool listed;             // in the class's list (in_use < capacity)
};

struct alignas(64) SlabAllocator::ClassState {
  std::mutex mu;  // held to copy a batch of pointers, or rarely across mmap/munmap
  // Slabs with at least one free block: partly used ones first, wholly empty ones at the back,
  // so allocation fills used slabs and empty ones stay empty long enough to be released.
  Slab* head = nullptr;
  Slab* tail = nullptr;
  std::unordered_set<const Slab*> slabs;  // all of this class's slabs, to validate frees
  std::size_t empty_slabs = 0;
  std::size_t blocks_out = 0;         // sum of in_use (blocks in the transfer array count as out)
  std::size_t capacity = 0;           // sum of capacity
  std::unique_ptr<void*[]> transfer;  // allocated on first use
  std::size_t transfer_count = 0;

  void push_front(Slab* s) {
    s->prev = nullptr;
    s->next = head;
    (head ? head->prev : tail) = s;
    head = s;
    s->listed = true;
  }
  void push_back(Slab* s) {
    s->next = nullptr;
    s->prev = tail;
    (tail ? tail->next : head) = s;
    tail = s;
    s->listed = true;
  }
  void remove(Slab* s) {
    (s->prev ? s->prev->next : head) = s->next;
    (s->next ? s->next->prev : tail) = s->prev;
    s->prev = s->next = nullptr;
    s->listed = false;
  }
};

// One thread's cache for one allocator. Only the owning thread touches items; count is atomic
// so that stats() on another thread may read it.
struct SlabAllocator::ThreadCache {
  struct Bin {
    void** items = nullptr;
    std::atomic<std::uint32_t> count{0};
    std::uint32_t capacity = 0;
  };
  Bin bins[kNumClasses];
  std::unique_ptr<void*[]> storage;
  std::size_t cached_bytes = 0;  // sum over bins of count * block size

  ThreadCache() {
    std::size_t total = 0;
    for (std::size_t c = 0; c < kNumClasses; ++c) total += cache_capacity(c);
    storage = std::make_unique<void*[]>(total);
    void** next = storage.get();
    for (std::size_t c = 0; c < kNumClasses; ++c) {
      bins[c].items = next;
      bins[c].capacity = cache_capacity(c);
      next += bins[c].capacity;
    }
  }
};

// Wholly empty slabs that left their class, kept mapped for any class with the same slab
// size. A map that grows drains some size classes while it fills others; recycling the slabs
// between them avoids an munmap (a TLB shootdown on every CPU) and an mmap per slab
// (measured: growing a map to 10M keys unmapped 97 slabs and ~100 inserts took over 100 us).
struct SlabAllocator::SlabPool {
  std::mutex mu;
  std::vector<std::pair<std::size_t, void*>> slabs;  // (size, region)
  std::size_t bytes = 0;
};

struct SlabAllocator::CacheList {
  std::mutex mu;
  std::unordered_set<ThreadCache*> caches;
};

// --- per-thread state ----------------------------------------------------------------------
//
// Fast path: a trivially constructed thread_local pair (owner id, cache) remembers the cache
// used last. Allocator ids are never reused, so an entry for a destroyed allocator can never
// match a new one. The slow path keeps every cache of this thread in ThreadCacheList, whose
// destructor (at thread exit) hands the caches back to the allocators that are still alive.

namespace {
thread_local std::uint64_t tls_owner = 0;
thread_local void* tls_cache = nullptr;
thread_local bool tls_exited = false;  // set once this thread's caches were released
}  // namespace

struct ThreadCacheRegistry {
  std::mutex mu;
  std::unordered_map<std::uint64_t, SlabAllocator*> live;
  std::uint64_t next_id = 1;

  static ThreadCacheRegistry& get() {
    static auto* registry = new ThreadCacheRegistry;  // leaked: outlives every thread exit
    return *registry;
  }

  std::uint64_t add(SlabAllocator* a) {
    std::lock_guard lock(mu);
    const std::uint64_t id = next_id++;
    live.emplace(id, a);
    return id;
  }
  void remove(std::uint64_t id) {
    std::lock_guard lock(mu);
    live.erase(id);
  }

  using Entries = std::vector<std::pair<std::uint64_t, SlabAllocator::ThreadCache*>>;

  // At thread exit. Holding mu keeps each allocator alive while its cache goes back to it.
  void release(Entries& entries) {
    std::lock_guard lock(mu);
    for (auto& [id, tc] : entries) {
      if (auto it = live.find(id); it != live.end()) it->second->release_thread_cache(tc);
    }
    entries.clear();
  }
  // Drops entries whose allocator is gone (their caches went with it).
  void prune(Entries& entries) {
    std::lock_guard lock(mu);
    std::erase_if(entries, [&](const auto& e) { return !live.contains(e.first); });
  }
};

namespace {
struct ThreadCacheList {
  ThreadCacheRegistry::Entries entries;
  ~ThreadCacheList() {
    tls_exited = true;  // a later thread_local destructor that frees goes to the slabs directly
    tls_owner = 0;
    tls_cache = nullptr;
    ThreadCacheRegistry::get().release(entries);
  }
};
thread_local ThreadCacheList tls_list;
}  // namespace

// --- sizes ---------------------------------------------------------------------------------

std::size_t SlabAllocator::class_index(std::size_t bytes) {
  if (bytes == 0 || bytes > kMaxBlockBytes) {
    throw std::invalid_argument("sisu::SlabAllocator: block size " + std::to_string(bytes) +
                                " is not served (sizes 1.." + std::to_string(kMaxBlockBytes) +
                                " are)");
  }
  return class_index_unchecked(bytes);
}

std::size_t SlabAllocator::class_block_bytes(std::size_t class_index) {
  if (class_index >= kNumClasses) {
    throw std::invalid_argument("sisu::SlabAllocator: no size class " +
                                std::to_string(class_index));
  }
  return block_bytes_unchecked(class_index);
}

std::size_t SlabAllocator::slab_bytes(std::size_t c) const noexcept {
  return std::max(options_.slab_bytes, std::bit_ceil(16 * block_bytes_unchecked(c)));
}

// --- lifetime ------------------------------------------------------------------------------

namespace {
const SlabAllocator::Options& validated(const SlabAllocator::Options& o) {
  if (!std::has_single_bit(o.slab_bytes) || o.slab_bytes < (std::size_t{64} << 10) ||
      o.slab_bytes > (std::size_t{1} << 30)) {
    throw std::invalid_argument(
        "sisu::SlabAllocator: slab_bytes must be a power of two in [64 KiB, 1 GiB]");
  }
  return o;
}
}  // namespace

SlabAllocator::SlabAllocator(const Options& options)
    : options_(validated(options)),
      classes_(std::make_unique<ClassState[]>(kNumClasses)),
      caches_(std::make_unique<CacheList>()),
      pool_(std::make_unique<SlabPool>()),
      id_(ThreadCacheRegistry::get().add(this)) {}

SlabAllocator::~SlabAllocator() {
  // After this no exiting thread can reach us; a thread in release() finished before it.
  ThreadCacheRegistry::get().remove(id_);
  for (ThreadCache* tc : caches_->caches) delete tc;
  for (std::size_t c = 0; c < kNumClasses; ++c) {
    for (const Slab* s : classes_[c].slabs) unmap_slab(const_cast<Slab*>(s));
  }
  drain_pool(0);
}

SlabAllocator& SlabAllocator::global() {
  static auto* global = [] {
    Options o;
    const char* env = std::getenv("SISU_HUGE_PAGES");
    o.huge_pages = env != nullptr && std::string(env) == "1";
    return new SlabAllocator(o);  // never destroyed: see the header
  }();
  return *global;
}

// --- slabs ---------------------------------------------------------------------------------

SlabAllocator::Slab* SlabAllocator::map_slab(std::size_t c) {
  static_assert(sizeof(Slab) <= kSlabHeaderBytes, "the header fits before the first block");
  const std::size_t size = slab_bytes(c);
  void* region = take_pooled(size);
  const bool pooled = region != nullptr;
  if (!pooled) region = map_region(size);  // throws std::bad_alloc with nothing changed
  try {
    classes_[c].slabs.insert(static_cast<const Slab*>(region));
  } catch (...) {
    if (pooled) {
      std::lock_guard lock(pool_->mu);
      pool_->slabs.emplace_back(size, region);  // cannot reallocate: it was just taken out
      pool_->bytes += size;
    } else {
      munmap(region, size);
      bytes_reserved_.fetch_sub(size, std::memory_order_relaxed);
    }
    throw;
  }
  return init_slab(c, region);
}

// Maps a region of `size` bytes aligned to its size and counts it reserved.
void* SlabAllocator::map_region(std::size_t size) {
  std::size_t reserved = bytes_reserved_.load(std::memory_order_relaxed);
  do {
    if (size > options_.max_reserved_bytes - std::min(reserved, options_.max_reserved_bytes)) {
      throw std::bad_alloc();
    }
  } while (
      !bytes_reserved_.compare_exchange_weak(reserved, reserved + size, std::memory_order_relaxed));
  // Map twice the size and cut it down to an aligned slab, so that a block finds its slab by
  // masking its address.
  void* raw = mmap(nullptr, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    bytes_reserved_.fetch_sub(size, std::memory_order_relaxed);
    throw std::bad_alloc();
  }
  const auto begin = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (begin + size - 1) & ~(std::uintptr_t{size} - 1);
  if (aligned > begin) munmap(raw, aligned - begin);
  if (const std::uintptr_t end = begin + 2 * size; end > aligned + size) {
    munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
  }
  void* region = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
  // A hint (see Options::huge_pages); a kernel that refuses it changes nothing.
  if (options_.huge_pages && size % (std::size_t{2} << 20) == 0) {
    madvise(region, size, MADV_HUGEPAGE);
  }
#endif
  slabs_mapped_total_.fetch_add(1, std::memory_order_relaxed);
  return region;
}

// Turns a region of slab_bytes(c), already in the class's slab set, into an empty slab.
// REQUIRES: class c's lock.
SlabAllocator::Slab* SlabAllocator::init_slab(std::size_t c, void* region) noexcept {
  const std::size_t size = slab_bytes(c);
  auto* s = static_cast<Slab*>(region);
  const std::size_t block = block_bytes_unchecked(c);
  *s = Slab{kSlabMagic,
            this,
            nullptr,
            nullptr,
            nullptr,
            static_cast<std::uint32_t>(c),
            static_cast<std::uint32_t>((size - kSlabHeaderBytes) / block),
            0,
            0,
            false};
  ClassState& cs = classes_[c];
  poison(reinterpret_cast<char*>(s) + kSlabHeaderBytes, size - kSlabHeaderBytes);
  cs.push_back(s);
  cs.empty_slabs++;
  cs.capacity += s->capacity;
  return s;
}

void* SlabAllocator::take_pooled(std::size_t size) noexcept {
  std::lock_guard lock(pool_->mu);
  for (std::size_t i = pool_->slabs.size(); i-- > 0;) {
    if (pool_->slabs[i].first == size) {
      void* region = pool_->slabs[i].second;
      pool_->slabs[i] = pool_->slabs.back();
      pool_->slabs.pop_back();
      pool_->bytes -= size;
      return region;
    }
  }
  return nullptr;
}

// An empty slab leaves its class: into the pool while the pool holds at most an eighth of the
// memory in use (and at least 4 minimum-size slabs), else back to the OS.
void SlabAllocator::retire_slab(Slab* s) noexcept {
  const std::size_t size = slab_bytes(s->class_index);
  {
    std::lock_guard lock(pool_->mu);
    const std::size_t in_use = bytes_reserved_.load(std::memory_order_relaxed) - pool_->bytes;
    const std::size_t limit = std::max(4 * options_.slab_bytes, in_use / 8);
    if (pool_->bytes + size <= limit) {
      try {
        pool_->slabs.emplace_back(size, s);
        pool_->bytes += size;
        return;
      } catch (...) {
        // no room to remember it: unmap it below
      }
    }
  }
  unmap_slab(s);
}

std::size_t SlabAllocator::drain_pool(std::size_t keep_bytes) noexcept {
  std::vector<std::pair<std::size_t, void*>> victims;
  {
    std::lock_guard lock(pool_->mu);
    while (pool_->bytes > keep_bytes && !pool_->slabs.empty()) {
      victims.push_back(pool_->slabs.back());  // capacity exists: it was in slabs
      pool_->bytes -= pool_->slabs.back().first;
      pool_->slabs.pop_back();
    }
  }
  std::size_t released = 0;
  for (auto [size, region] : victims) {
    unpoison(region, size);
    munmap(region, size);
    bytes_reserved_.fetch_sub(size, std::memory_order_relaxed);
    slabs_released_total_.fetch_add(1, std::memory_order_relaxed);
    released += size;
  }
  return released;
}

void SlabAllocator::unmap_slab(Slab* s) noexcept {
  const std::size_t size = slab_bytes(s->class_index);
  unpoison(s, size);  // the address range may later be mapped for something else
  munmap(s, size);
  bytes_reserved_.fetch_sub(size, std::memory_order_relaxed);
  slabs_released_total_.fetch_add(1, std::memory_order_relaxed);
}

std::size_t SlabAllocator::take_blocks(std::size_t c, void** out, std::size_t n) {
  ClassState& cs = classes_[c];
  const std::size_t block = block_bytes_unchecked(c);
  std::lock_guard lock(cs.mu);
  if (cs.transfer_count > 0) {
    const std::size_t k = std::min(n, cs.transfer_count);
    cs.transfer_count -= k;
    std::copy_n(cs.transfer.get() + cs.transfer_count, k, out);
    return k;
  }
  std::size_t got = 0;
  while (got < n) {
    Slab* s = cs.head;
    if (s == nullptr) {
      if (got > 0) break;  // enough to go on with; map a slab only when nothing is left
      s = map_slab(c);     // throws with nothing changed
    }
    if (s->in_use == 0) cs.empty_slabs--;
    while (got < n && s->in_use < s->capacity) {
      void* p;
      if (s->free_list != nullptr) {
        p = s->free_list;
        unpoison(p, sizeof(void*));
        s->free_list = *static_cast<void**>(p);
        poison(p, sizeof(void*));
      } else {
        p = reinterpret_cast<char*>(s) + kSlabHeaderBytes + std::size_t{s->carved++} * block;
      }
      s->in_use++;
      out[got++] = p;
    }
    if (s->in_use == s->capacity) cs.remove(s);
  }
  cs.blocks_out += got;
  return got;
}

void SlabAllocator::check_owned(std::size_t c, const void* p) const noexcept {
  const std::size_t block = block_bytes_unchecked(c);
  const auto* s = reinterpret_cast<const Slab*>(reinterpret_cast<std::uintptr_t>(p) &
                                                ~(std::uintptr_t{slab_bytes(c)} - 1));
  const auto offset =
      static_cast<std::size_t>(static_cast<const char*>(p) - reinterpret_cast<const char*>(s));
  if (s->magic != kSlabMagic || s->owner != this || s->class_index != c ||
      offset < kSlabHeaderBytes || (offset - kSlabHeaderBytes) % block != 0 ||
      (offset - kSlabHeaderBytes) / block >= s->capacity) {
    die("deallocate of a block this allocator did not hand out in this size class", p, block);
  }
}

void SlabAllocator::return_blocks(std::size_t c, void* const* blocks, std::size_t n,
                                  bool to_slabs) noexcept {
  for (std::size_t i = 0; i < n; ++i) check_owned(c, blocks[i]);
  ClassState& cs = classes_[c];
  std::lock_guard lock(cs.mu);
  if (!to_slabs) {
    if (cs.transfer == nullptr) {
      cs.transfer.reset(new (std::nothrow) void*[transfer_capacity(c)]);
    }
    if (cs.transfer != nullptr) {
      const std::size_t k = std::min(n, transfer_capacity(c) - cs.transfer_count);
      std::copy_n(blocks, k, cs.transfer.get() + cs.transfer_count);
      cs.transfer_count += k;
      blocks += k;
      n -= k;
    }
  }
  return_to_slabs(c, blocks, n);
}

void SlabAllocator::return_to_slabs(std::size_t c, void* const* blocks, std::size_t n) noexcept {
  ClassState& cs = classes_[c];
  const std::size_t block = block_bytes_unchecked(c);
  const std::uintptr_t slab_mask = ~(std::uintptr_t{slab_bytes(c)} - 1);
  for (std::size_t i = 0; i < n; ++i) {
    void* p = blocks[i];
    auto* s = reinterpret_cast<Slab*>(reinterpret_cast<std::uintptr_t>(p) & slab_mask);
    const auto index = static_cast<std::size_t>(static_cast<char*>(p) - reinterpret_cast<char*>(s) -
                                                kSlabHeaderBytes) /
                       block;
    if (index >= s->carved || s->in_use == 0) {
      die("deallocate of a block that is already free", p, block);
    }
    unpoison(p, sizeof(void*));
    *static_cast<void**>(p) = s->free_list;
    poison(p, sizeof(void*));
    s->free_list = p;
    if (!s->listed) cs.push_front(s);
    if (--s->in_use == 0) {
      cs.remove(s);
      cs.push_back(s);
      cs.empty_slabs++;
      // Keep empty slabs up to a quarter of the slabs in use (at least empty_slabs_kept):
      // a map that grows frees whole slabs of its old table sizes and soon maps new ones,
      // and an munmap costs a TLB shootdown on every CPU (measured: ~100 inserts over 100 us
      // growing a map to 10M keys without this, from 97 unmaps). When the class drains, the
      // allowance drains with it and the memory goes back.
      const std::size_t in_use_slabs = cs.slabs.size() - cs.empty_slabs;
      release_empty_slabs(cs, std::max(options_.empty_slabs_kept, in_use_slabs / 4));
    }
  }
  cs.blocks_out -= n;
}

void SlabAllocator::release_empty_slabs(ClassState& cs, std::size_t keep) noexcept {
  // Empty slabs sit at the tail of the class's list.
  while (cs.empty_slabs > keep && cs.tail != nullptr && cs.tail->in_use == 0) {
    Slab* victim = cs.tail;
    cs.remove(victim);
    cs.slabs.erase(victim);
    cs.empty_slabs--;
    cs.capacity -= victim->capacity;
    retire_slab(victim);
  }
}

// --- thread caches -------------------------------------------------------------------------

SlabAllocator::ThreadCache* SlabAllocator::thread_cache() noexcept {
  if (tls_owner == id_) return static_cast<ThreadCache*>(tls_cache);
  return attach_thread_cache();
}

SlabAllocator::ThreadCache* SlabAllocator::attach_thread_cache() noexcept {
  if (tls_exited) return nullptr;
  ThreadCache* tc = nullptr;
  for (auto& [id, cache] : tls_list.entries) {
    if (id == id_) tc = cache;
  }
  if (tc == nullptr) {
    try {
      if (tls_list.entries.size() >= 8) ThreadCacheRegistry::get().prune(tls_list.entries);
      auto owned = std::make_unique<ThreadCache>();
      tls_list.entries.reserve(tls_list.entries.size() + 1);
      {
        std::lock_guard lock(caches_->mu);
        caches_->caches.insert(owned.get());
      }
      tc = owned.release();
      tls_list.entries.emplace_back(id_, tc);  // cannot throw: reserved above
    } catch (...) {
      return nullptr;  // out of memory for a cache: go to the slabs directly
    }
  }
  tls_owner = id_;
  tls_cache = tc;
  return tc;
}

void SlabAllocator::release_thread_cache(ThreadCache* tc) noexcept {
  for (std::size_t c = 0; c < kNumClasses; ++c) flush(tc, c, tc->bins[c].count.load(), true);
  std::lock_guard lock(caches_->mu);
  caches_->caches.erase(tc);
  delete tc;
}

void SlabAllocator::flush(ThreadCache* tc, std::size_t c, std::size_t n, bool to_slabs) noexcept {
  ThreadCache::Bin& bin = tc->bins[c];
  const std::uint32_t count = bin.count.load(std::memory_order_relaxed);
  n = std::min<std::size_t>(n, count);
  if (n == 0) return;
  // Return the oldest blocks (the bottom of the stack) and keep the recently freed, cache-warm
  // ones for the next allocation.
  return_blocks(c, bin.items, n, to_slabs);
  std::copy(bin.items + n, bin.items + count, bin.items);
  bin.count.store(static_cast<std::uint32_t>(count - n), std::memory_order_relaxed);
  tc->cached_bytes -= n * block_bytes_unchecked(c);
}

void SlabAllocator::flush_thread_cache() noexcept {
  if (ThreadCache* tc = thread_cache()) {
    for (std::size_t c = 0; c < kNumClasses; ++c) flush(tc, c, kMaxCacheBlocks, true);
  }
}

// --- allocate / deallocate -----------------------------------------------------------------

void* SlabAllocator::allocate(std::size_t bytes) {
  const std::size_t c = class_index(bytes);
  const std::size_t block = block_bytes_unchecked(c);
  void* p;
  ThreadCache* tc = thread_cache();
  if (tc == nullptr) {
    take_blocks(c, &p, 1);
  } else {
    ThreadCache::Bin& bin = tc->bins[c];
    std::uint32_t count = bin.count.load(std::memory_order_relaxed);
    if (count == 0) {
      count = static_cast<std::uint32_t>(take_blocks(c, bin.items, (bin.capacity + 1) / 2));
      tc->cached_bytes += count * block;
    }
    p = bin.items[--count];
    bin.count.store(count, std::memory_order_relaxed);
    tc->cached_bytes -= block;
  }
  unpoison(p, block);
  return p;
}

void SlabAllocator::deallocate(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  if (bytes == 0 || bytes > kMaxBlockBytes) die("deallocate with a size never served", p, bytes);
  const std::size_t c = class_index_unchecked(bytes);
  const std::size_t block = block_bytes_unchecked(c);
  if (is_poisoned(p)) die("double free (the block is already free)", p, bytes);
  poison(p, block);
  ThreadCache* tc = thread_cache();
  if (tc == nullptr) {
    return_blocks(c, &p, 1, true);
    return;
  }
  ThreadCache::Bin& bin = tc->bins[c];
  if (bin.count.load(std::memory_order_relaxed) == bin.capacity) {
    flush(tc, c, (bin.capacity + 1) / 2, false);
  }
  const std::uint32_t count = bin.count.load(std::memory_order_relaxed);
  bin.items[count] = p;
  bin.count.store(count + 1, std::memory_order_relaxed);
  tc->cached_bytes += block;
  if (tc->cached_bytes > kThreadCacheBytes) {
    // Over the thread's budget: halve every bin, so that this happens rarely.
    for (std::size_t k = 0; k < kNumClasses; ++k) {
      flush(tc, k, (tc->bins[k].count.load(std::memory_order_relaxed) + 1) / 2, false);
    }
  }
}

std::size_t SlabAllocator::trim() noexcept {
  const std::size_t before = bytes_reserved_.load(std::memory_order_relaxed);
  flush_thread_cache();
  for (std::size_t c = 0; c < kNumClasses; ++c) {
    ClassState& cs = classes_[c];
    std::lock_guard lock(cs.mu);
    return_to_slabs(c, cs.transfer.get(), cs.transfer_count);
    cs.transfer_count = 0;
    release_empty_slabs(cs, 0);
  }
  drain_pool(0);
  const std::size_t after = bytes_reserved_.load(std::memory_order_relaxed);
  return before > after ? before - after : 0;
}

// --- stats ---------------------------------------------------------------------------------

SlabStats SlabAllocator::stats() const {
  std::size_t cached[kNumClasses] = {};
  SlabStats out;
  {
    std::lock_guard lock(caches_->mu);
    out.thread_caches = caches_->caches.size();
    for (const ThreadCache* tc : caches_->caches) {
      for (std::size_t c = 0; c < kNumClasses; ++c) {
        cached[c] += tc->bins[c].count.load(std::memory_order_relaxed);
      }
    }
  }
  for (std::size_t c = 0; c < kNumClasses; ++c) {
    ClassState& cs = classes_[c];
    SlabClassStats cls;
    {
      std::lock_guard lock(cs.mu);
      if (cs.slabs.empty()) continue;
      cls.slabs = cs.slabs.size();
      cls.empty_slabs = cs.empty_slabs;
      cls.blocks_free = cs.capacity - cs.blocks_out;
      // A block moves between a cache and a slab under both counts' feet: clamp, not wrap.
      cls.blocks_cached = std::min(cached[c] + cs.transfer_count, cs.blocks_out);
      cls.blocks_in_use = cs.blocks_out - cls.blocks_cached;
    }
    cls.block_bytes = block_bytes_unchecked(c);
    cls.slab_bytes = slab_bytes(c);
    out.bytes_in_use += cls.blocks_in_use * cls.block_bytes;
    out.bytes_cached += cls.blocks_cached * cls.block_bytes;
    out.bytes_free += cls.blocks_free * cls.block_bytes;
    out.slabs += cls.slabs;
    out.classes.push_back(cls);
  }
  {
    std::lock_guard lock(pool_->mu);
    out.bytes_pooled = pool_->bytes;
  }
  out.bytes_reserved = bytes_reserved_.load(std::memory_order_relaxed);
  out.slabs_mapped_total = slabs_mapped_total_.load(std::memory_order_relaxed);
  out.slabs_released_total = slabs_released_total_.load(std::memory_order_relaxed);
  return out;
}

}  // namespace sisu
