// Includes sisu's headers exactly as code inside the repo does, through sisu::sisu alone.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "alloc/slab_allocator.h"
#include "engine/db.h"
#include "index/mapped_index.h"
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

  // The engine, as the contract names it.
  const std::string dir =
      (std::filesystem::temp_directory_path() / "sisu_install_consumer_db").string();
  std::filesystem::remove_all(dir);
  {
    std::unique_ptr<sisu::DB> db;
    if (!sisu::DB::open(sisu::Options(), dir, &db).ok()) return 1;
    sisu::WriteBatch b;
    b.put("k", "v");
    b.remove("gone");
    if (!db->write(b).ok() || !db->flush().ok() || !db->compact().ok()) return 1;
    std::string v;
    if (!db->get("k", &v).ok() || v != "v" || !db->get("gone", &v).is_not_found()) return 1;
  }
  std::filesystem::remove_all(dir);

  std::puts("consumer ok");
  return 0;
}
