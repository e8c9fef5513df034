// Includes sisu's headers exactly as code inside the repo does, through sisu::sisu alone.
#include <cstdio>
#include <string>
#include <string_view>

#include "alloc/slab_allocator.h"
#include "index/extendible_hash_map.h"
#include "index/lock_free_hash_map.h"
#include "util/hash.h"
#include "util/status.h"

int main() {
  const sisu::Status s = sisu::Status::corruption("table 3");
  if (!s.is_corruption() || s.to_string() != "Corruption: table 3") return 1;

  const sisu::Hash<std::string> h(7);
  if (h(std::string("key")) != h(std::string_view("key"))) return 1;

  void* p = sisu::SlabAllocator::global().allocate(1000);
  if (reinterpret_cast<std::uintptr_t>(p) % sisu::SlabAllocator::kAlignment != 0) return 1;
  sisu::SlabAllocator::global().deallocate(p, 1000);

  sisu::ExtendibleHashMap<std::uint64_t, std::uint64_t> ehm;
  ehm[1] = 2;
  if (ehm.at(1) != 2) return 1;

  sisu::LockFreeHashMap<> lf;
  lf.put(0, 5);
  if (lf.get(0) != 5u || lf.size() != 1) return 1;

  std::puts("consumer ok");
  return 0;
}
