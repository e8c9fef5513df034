// sisu-demo: what sisu does today, in words a newcomer understands. scripts/demo runs it.
// It grows as parts land, and shows only what exists.
#include <cinttypes>
#include <cstdio>
#include <thread>
#include <vector>

#include "alloc/slab_allocator.h"
#include "util/hash.h"

namespace {

double mib(std::size_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

void print_stats(const char* when, const sisu::SlabAllocator& slabs) {
  const sisu::SlabStats s = slabs.stats();
  std::printf("  %-34s reserved %7.2f MiB   in use %7.2f MiB   free %7.2f MiB   slabs %zu\n", when,
              mib(s.bytes_reserved), mib(s.bytes_in_use), mib(s.bytes_free + s.bytes_cached),
              s.slabs);
}

void show_hash() {
  std::printf(
      "1. The default hash, sisu::Hash. An extendible hash map picks a small table by the TOP\n"
      "   bits of a key's hash, so sequential keys must not share them. Keys 0..7, top 8 bits:\n "
      " ");
  const sisu::Hash<std::uint64_t> hash(42);  // a fixed seed, so this output is reproducible
  for (std::uint64_t k = 0; k < 8; ++k) std::printf(" %3" PRIu64, hash(k) >> 56);
  std::printf("\n   (the identity hash, std::hash on libstdc++, would give 0 for all eight)\n\n");
}

void show_reuse() {
  std::printf(
      "2. The slab allocator. A map is many small fixed-size tables; when one map dies, its\n"
      "   tables are exactly the size the next map needs. Build and destroy 1000 'maps' of 64\n"
      "   tables of 9 KiB each (576 MiB allocated in all), one after another:\n");
  sisu::SlabAllocator slabs;
  constexpr std::size_t kTableBytes = 9 * 1024;
  std::vector<void*> tables(64);
  for (int map = 0; map < 1000; ++map) {
    for (void*& t : tables) t = slabs.allocate(kTableBytes);
    if (map == 0) print_stats("while the first map lives:", slabs);
    if (map == 999) print_stats("while the 1000th map lives:", slabs);
    for (void* t : tables) slabs.deallocate(t, kTableBytes);
  }
  std::printf("   Memory reserved stayed flat: every map reused the blocks of the one before.\n\n");

  std::printf(
      "3. Across threads. A table allocated on one thread and freed on another is reused:\n");
  void* before[16];
  for (void*& p : before) p = slabs.allocate(kTableBytes);
  std::thread([&] {
    for (void* p : before) slabs.deallocate(p, kTableBytes);
  }).join();  // the thread's cache goes back to the slabs when it exits
  int reused = 0;
  std::vector<void*> after;
  for (int i = 0; i < 16; ++i) {
    after.push_back(slabs.allocate(kTableBytes));
    for (void* p : before) reused += (p == after.back());
  }
  std::printf("   %d of 16 blocks freed by the other thread came back to this one.\n\n", reused);
  for (void* p : after) slabs.deallocate(p, kTableBytes);

  std::printf("4. Giving memory back. Now nothing is in use; trim() unmaps every empty slab:\n");
  print_stats("before trim():", slabs);
  const std::size_t released = slabs.trim();
  print_stats("after trim():", slabs);
  std::printf("   %.2f MiB went back to the operating system.\n\n", mib(released));
}

}  // namespace

int main() {
  std::printf(
      "sisu is an embedded index for storage engines. Its parts land one by one; this demo\n"
      "shows the ones that exist today: the default hash and the slab allocator that will\n"
      "hold the extendible hash map's small tables.\n\n");
  show_hash();
  show_reuse();
  std::printf(
      "Still to come: the ExtendibleHashMap, the LockFreeHashMap, index files and the\n"
      "`sisu` tool's inspect/verify/dump, and the LSM engine (see docs/design.md).\n");
  return 0;
}
