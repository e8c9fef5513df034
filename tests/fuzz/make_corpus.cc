// Writes the fuzzers' seed corpus: real index files of several shapes (empty, one entry,
// thousands with erasures, deep directories, overflow chains from a constant hash), plus the
// files of older format versions that readers still read (tests/index/data).
//   make_corpus DIR [OLD_FORMATS_DIR]
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/db.h"
#include "index/extendible_hash_map.h"

namespace {

struct ConstantHash {
  std::uint64_t operator()(std::uint64_t) const noexcept { return 0x9e3779b97f4a7c15ULL; }
};

template <class Map>
bool save(const Map& m, const std::string& path) {
  const sisu::Status s = m.save(path);
  if (!s.ok()) std::fprintf(stderr, "make_corpus: %s\n", s.to_string().c_str());
  return s.ok();
}

}  // namespace

// An engine table file, MANIFEST and WAL segment, from a small database.
bool engine_files(const std::string& dir) {
  const std::string db_dir = dir + "/db.tmp";
  std::filesystem::remove_all(db_dir);
  sisu::Options options;
  options.memtable_bytes = 8 << 10;
  bool ok = true;
  {
    std::unique_ptr<sisu::DB> db;
    ok &= sisu::DB::open(options, db_dir, &db).ok();
    if (!ok) return false;
    for (int i = 0; i < 200; ++i) ok &= db->put("k" + std::to_string(i), std::string(i % 50, 'v')).ok();
    ok &= db->remove("k3").ok();
    ok &= db->flush().ok();
    sisu::WriteBatch b;
    b.put("batch", "x");
    b.remove("k4");
    ok &= db->write(b).ok();
  }
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(db_dir)) {
    const std::string ext = e.path().extension().string();
    if (ext == ".tbl" || ext == ".log" || e.path().filename() == "MANIFEST") {
      if (std::filesystem::file_size(e.path()) == 0) continue;
      std::filesystem::copy_file(e.path(), dir + "/engine" + std::to_string(n++) + ext,
                                 std::filesystem::copy_options::overwrite_existing);
    }
  }
  std::filesystem::remove_all(db_dir);
  return ok && n >= 3;
}

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: make_corpus DIR [OLD_FORMATS_DIR]\n");
    return 2;
  }
  const std::string dir = argv[1];
  if (argc == 3) {
    for (const auto& e : std::filesystem::directory_iterator(argv[2])) {
      std::filesystem::copy_file(e.path(), dir + "/" + e.path().filename().string(),
                                 std::filesystem::copy_options::overwrite_existing);
    }
  }
  using Map = sisu::ExtendibleHashMap<std::uint64_t, std::uint64_t>;
  bool ok = true;
  ok &= save(Map(0, sisu::Hash<std::uint64_t>(1)), dir + "/empty.idx");
  Map one(0, sisu::Hash<std::uint64_t>(2));
  one[7] = 8;
  ok &= save(one, dir + "/one.idx");
  for (std::uint64_t n : {300u, 3000u, 20000u}) {
    Map m(0, sisu::Hash<std::uint64_t>(n));
    for (std::uint64_t k = 0; k < n; ++k) m[k * 7] = k;
    for (std::uint64_t k = 0; k < n; k += 3) m.erase(k * 7);
    ok &= save(m, dir + "/keys" + std::to_string(n) + ".idx");
  }
  sisu::ExtendibleHashMap<std::uint64_t, std::uint64_t, ConstantHash> chained;
  for (std::uint64_t k = 0; k < 500; ++k) chained[k] = k;
  ok &= save(chained, dir + "/overflow.idx");
  sisu::ExtendibleHashMap<std::uint32_t, std::uint16_t> small(0, sisu::Hash<std::uint32_t>(5));
  for (std::uint32_t k = 0; k < 1000; ++k) small[k] = static_cast<std::uint16_t>(k);
  ok &= save(small, dir + "/u32_u16.idx");
  ok &= engine_files(dir);
  // A checkpoint file with three commits (the last two incremental).
  Map c(0, sisu::Hash<std::uint64_t>(11));
  for (int round = 0; round < 3; ++round) {
    for (std::uint64_t k = 0; k < 400; ++k) c[k * 5 + static_cast<std::uint64_t>(round)] = k;
    if (round == 2) c.erase(5);
    ok &= c.checkpoint(dir + "/three.ckpt").ok();
  }
  return ok ? 0 : 1;
}
