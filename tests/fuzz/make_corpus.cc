// Writes the fuzzers' seed corpus: real index files of several shapes (empty, one entry,
// thousands with erasures, deep directories, overflow chains from a constant hash).
//   make_corpus DIR
#include <cstdio>
#include <string>

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

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
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
  return ok ? 0 : 1;
}
