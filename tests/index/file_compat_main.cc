// One side of the cross-build file test: the same program is built with the SSE2, AVX2 and
// portable group matchers; each checks the files the others wrote.
//   file_compat_<impl> write PATH   saves a map
//   file_compat_<impl> check PATH   loads it and checks every key; exit 0 when intact
#include <cstdio>
#include <cstring>
#include <string>

#include "index/extendible_hash_map.h"

using Map = sisu::ExtendibleHashMap<std::uint64_t, std::uint64_t>;
constexpr std::uint64_t kKeys = 60000;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s write|check PATH\n", argv[0]);
    return 2;
  }
  const std::string path = argv[2];
  if (std::strcmp(argv[1], "write") == 0) {
    Map m(0, sisu::Hash<std::uint64_t>(7));
    for (std::uint64_t k = 0; k < kKeys; ++k) m[k * 13] = k;
    for (std::uint64_t k = 0; k < kKeys; k += 7) m.erase(k * 13);
    const sisu::Status s = m.save(path);
    std::printf("%s wrote %s: %s\n", sisu::index_internal::kGroupImpl, path.c_str(),
                s.to_string().c_str());
    return s.ok() ? 0 : 1;
  }
  Map m;
  const sisu::Status s = Map::load(path, &m);
  if (!s.ok()) {
    std::printf("%s could not load %s: %s\n", sisu::index_internal::kGroupImpl, path.c_str(),
                s.to_string().c_str());
    return 1;
  }
  std::size_t bad = 0;
  for (std::uint64_t k = 0; k < kKeys; ++k) {
    const auto it = m.find(k * 13);
    if (k % 7 == 0) {
      bad += it != m.end();
    } else {
      bad += it == m.end() || it->second != k;
    }
  }
  bad += m.contains(1) ? 1 : 0;
  std::printf("%s read %s: %zu keys, %zu wrong\n", sisu::index_internal::kGroupImpl, path.c_str(),
              m.size(), bad);
  return bad == 0 && m.size() == kKeys - (kKeys + 6) / 7 ? 0 : 1;
}
