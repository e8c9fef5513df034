// SlabAllocator: fixed-size, 64-byte aligned blocks in a set of size classes, carved from large
// slabs mapped from the OS. It serves the ExtendibleHashMap's small tables: a map grows by
// many equal-sized blocks and frees them as it shrinks or dies, so a block freed by one map is
// exactly what the next map (on any thread) asks for.
//
//   thread A                 thread B             (one cache per thread per allocator)
//   +-------------------+    +-------------------+
//   | bin[c]: p p p p   |    | bin[c]: p p       |  allocate/deallocate: push/pop, no lock
//   +---------+---------+    +---------+---------+
//             | refill / flush half a bin (takes the class lock)
//   +---------v-------------------------v---------+
//   | class c: mutex, list of slabs with free blocks (fullest first, empty slabs last)  |
//   +---------+-----------------------------------+
//             |
//   slab (slab_bytes(c), aligned to its own size, so a block finds its slab by masking):
//   +--------+-------+-------+-------+-----  ------+------------------+
//   | header | block | block | block |   ...      | never carved yet |
//   +--------+-------+-------+-------+-----  ------+------------------+
//    64 B     free blocks of a slab form a list threaded through their first 8 bytes
//
// Size classes: every multiple of 64 up to 512 B, then four classes per power of two up to
// kMaxBlockBytes (640, 768, 896, 1024, 1280, ...): at most 25% of a block is rounding waste,
// and sizes stay multiples of 64 so every block is cache-line aligned.
//
// Caches: a thread keeps up to 1 MiB (at most 128 blocks) of free blocks per class and 4 MiB in
// all, enough for its maps' tables to stay on its core; each class also keeps a transfer array
// (about 1 MiB of block pointers) that caches flush into and refill from under a short lock.
//
// Memory goes back: a class keeps empty slabs up to a quarter of its slabs in use (at least
// Options::empty_slabs_kept); the rest go to a pool that any class with the same slab size
// reuses, holding at most an eighth of the memory in use (at least 4 slabs); beyond that they
// are unmapped. trim() unmaps every empty slab and empties the pool now. Blocks sitting in caches keep their slab alive: flush_thread_cache() returns
// the calling thread's to their slabs, trim() also empties the transfer arrays, and a thread's
// cache goes back to the slabs when the thread exits.
//
// Under AddressSanitizer every free block (in a thread cache or a slab) is poisoned, so a
// use-after-free into a recycled block is reported, as it would be with malloc.
//
// Thread-safety: allocate, deallocate, stats, trim and flush_thread_cache may be called from
// any number of threads at once. A block may be freed on a thread other than the one that
// allocated it. The destructor REQUIRES that no other thread is using the allocator.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace sisu {

struct SlabClassStats {
  std::size_t block_bytes = 0;    // the class's block size
  std::size_t slab_bytes = 0;     // the size of each of its slabs
  std::size_t slabs = 0;          // slabs mapped now
  std::size_t empty_slabs = 0;    // of which every block is free (kept for reuse)
  std::size_t blocks_in_use = 0;  // handed to callers and not yet freed
  std::size_t blocks_cached = 0;  // free, in some thread's cache
  std::size_t blocks_free = 0;    // free, in a slab (carved or not)
};

// Exact when no other thread is allocating; otherwise each count is some recent value.
struct SlabStats {
  std::size_t bytes_reserved = 0;  // mapped from the OS now (slabs, headers included)
  std::size_t bytes_in_use = 0;    // blocks handed to callers, at their class size
  std::size_t bytes_cached = 0;    // free blocks in thread caches
  std::size_t bytes_free = 0;      // free blocks in slabs
  std::size_t bytes_pooled = 0;    // wholly empty slabs kept for any class (in bytes_reserved)
  std::size_t slabs = 0;
  std::size_t slabs_mapped_total = 0;    // since construction
  std::size_t slabs_released_total = 0;  // unmapped again since construction
  std::size_t thread_caches = 0;         // live per-thread caches
  std::vector<SlabClassStats> classes;   // one per class that has ever mapped a slab
};

class SlabAllocator {
 public:
  static constexpr std::size_t kAlignment = 64;  // a cache line: no two blocks share one
  static constexpr std::size_t kMaxBlockBytes = std::size_t{256} << 10;
  static constexpr std::size_t kNumClasses = 8 + 4 * 9;  // 64..512 by 64, then 4 per doubling
  static constexpr std::size_t kSlabHeaderBytes = 64;

  struct Options {
    // Smallest slab. Classes whose blocks are large use a larger slab (a power of two holding
    // at least 15 blocks), so the header and the tail waste stay under 1/16 of a slab.
    // 2 MiB: the size of a transparent huge page.
    std::size_t slab_bytes = std::size_t{2} << 20;
    // Ask the kernel to back slabs of 2 MiB multiples with transparent huge pages
    // (madvise(MADV_HUGEPAGE)). Fewer TLB misses in big maps (4M-key hits: 46 vs 57 ns in
    // one run, noisy), but the first touch of a huge page may stall for milliseconds while
    // the kernel compacts memory (the slowest insert growing to 10M keys: ~5-9 ms instead of
    // under 1 ms), and memory is touched in 2 MiB steps. Off by default: sisu promises no long
    // pauses. The global allocator turns it on when the environment has SISU_HUGE_PAGES=1.
    bool huge_pages = false;
    // Empty slabs each class keeps mapped for reuse once it has drained; while a class has
    // slabs in use it may keep up to a quarter of that many empty ones.
    std::size_t empty_slabs_kept = 1;
    // A cap on bytes_reserved; mapping a slab beyond it throws std::bad_alloc.
    std::size_t max_reserved_bytes = SIZE_MAX;
  };

  SlabAllocator() : SlabAllocator(Options{}) {}
  // Throws std::invalid_argument if slab_bytes is not a power of two in [64 KiB, 1 GiB].
  explicit SlabAllocator(const Options& options);
  // Unmaps every slab, including blocks still in use.
  ~SlabAllocator();

  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  // The process-wide allocator that sisu's maps use unless given another. Never destroyed, so
  // maps with static storage duration may free into it during exit. Default options, except
  // huge_pages when the environment has SISU_HUGE_PAGES=1.
  static SlabAllocator& global();

  // The class that serves `bytes` and its block size.
  // Throw std::invalid_argument when bytes is 0 or above kMaxBlockBytes.
  static std::size_t class_index(std::size_t bytes);
  static std::size_t class_block_bytes(std::size_t class_index);
  static std::size_t block_bytes_for(std::size_t bytes) {
    return class_block_bytes(class_index(bytes));
  }

  // A block of at least `bytes` bytes, aligned to kAlignment, contents unspecified.
  // Throws std::invalid_argument for a size not served (see class_index) and std::bad_alloc
  // when the OS (or max_reserved_bytes) refuses a slab; the allocator is unchanged then.
  void* allocate(std::size_t bytes);

  // REQUIRES: p came from allocate(bytes') of this allocator with bytes' in the same class as
  // `bytes` (block_bytes_for(bytes') == block_bytes_for(bytes)), and was not freed since.
  // A null p is ignored. A block of another SlabAllocator or of another class is detected
  // when the thread cache hands it back (the slab header is checked) and aborts with a
  // message rather than corrupting the allocator; a pointer that never came from any slab may
  // crash instead. A double free is reported under AddressSanitizer.
  void deallocate(void* p, std::size_t bytes) noexcept;

  // Returns the calling thread's cached blocks to their slabs.
  void flush_thread_cache() noexcept;
  // Unmaps every empty slab (after flushing the calling thread's cache). Returns bytes unmapped.
  std::size_t trim() noexcept;

  SlabStats stats() const;
  const Options& options() const noexcept { return options_; }

 private:
  struct Slab;
  struct ClassState;
  struct ThreadCache;
  friend struct ThreadCacheRegistry;

  ThreadCache* thread_cache() noexcept;  // the calling thread's; null if it cannot have one
  ThreadCache* attach_thread_cache() noexcept;
  // Moves up to n blocks of class c out of the slabs into out; returns how many (>= 1).
  // Throws std::bad_alloc, with nothing changed, when no block is free and no slab can be mapped.
  std::size_t take_blocks(std::size_t c, void** out, std::size_t n);
  // Returns blocks to class c: into its transfer array while there is room, unless to_slabs,
  // and the rest to their slabs. Aborts on a block this allocator does not own in class c.
  void return_blocks(std::size_t c, void* const* blocks, std::size_t n, bool to_slabs) noexcept;
  // REQUIRES: class c's lock is held.
  void return_to_slabs(std::size_t c, void* const* blocks, std::size_t n) noexcept;
  void check_owned(std::size_t c, const void* p) const noexcept;
  void flush(ThreadCache* tc, std::size_t c, std::size_t n, bool to_slabs) noexcept;
  void release_thread_cache(ThreadCache* tc) noexcept;  // at thread exit
  Slab* map_slab(std::size_t c);
  void* map_region(std::size_t size);
  Slab* init_slab(std::size_t c, void* region) noexcept;
  void unmap_slab(Slab* slab) noexcept;
  // REQUIRES: cs's lock. Retires the class's empty slabs beyond `keep`.
  void release_empty_slabs(ClassState& cs, std::size_t keep) noexcept;
  void* take_pooled(std::size_t size) noexcept;
  void retire_slab(Slab* slab) noexcept;
  std::size_t drain_pool(std::size_t keep_bytes) noexcept;
  std::size_t slab_bytes(std::size_t c) const noexcept;

  const Options options_;
  std::unique_ptr<ClassState[]> classes_;
  std::atomic<std::size_t> bytes_reserved_{0};
  std::atomic<std::size_t> slabs_mapped_total_{0};
  std::atomic<std::size_t> slabs_released_total_{0};
  struct CacheList;
  std::unique_ptr<CacheList> caches_;  // every live ThreadCache of this allocator
  struct SlabPool;
  std::unique_ptr<SlabPool> pool_;
  // Unique for the process's lifetime, never reused. Declared last: the allocator registers
  // itself only once everything that can throw has been built.
  const std::uint64_t id_;
};

}  // namespace sisu
