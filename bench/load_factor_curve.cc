// Prints the ExtendibleHashMap's load factor, memory and shape as it grows from 1 to N keys
// (default 10M): one line at each size ~5% apart, then the minimum and mean over sizes
// >= 1000. Usage: load_factor_curve [N] [--csv]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "index/extendible_hash_map.h"

int main(int argc, char** argv) {
  std::size_t n = 10'000'000;
  bool csv = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--csv") == 0) {
      csv = true;
    } else {
      n = std::strtoull(argv[i], nullptr, 10);
    }
  }
  sisu::ExtendibleHashMap<std::uint64_t, std::uint64_t> m(0, sisu::Hash<std::uint64_t>(1));
  std::printf(csv ? "size,load_factor,bytes_per_entry,tables,global_depth\n"
                  : "%10s %8s %10s %8s %6s\n",
              "size", "load", "B/entry", "tables", "depth");
  double min_lf = 1, sum_lf = 0;
  std::size_t samples = 0, min_at = 0;
  std::size_t next = 1;
  for (std::uint64_t k = 1; k <= n; ++k) {
    m[k] = k;
    if (k != next && k != n) continue;
    next = std::max<std::size_t>(next + 1, next * 21 / 20);
    const sisu::IndexStats s = m.stats();
    const double bpe = static_cast<double>(s.memory_bytes) / static_cast<double>(k);
    std::printf(csv ? "%zu,%.4f,%.2f,%zu,%u\n" : "%10zu %8.3f %10.1f %8zu %6u\n",
                static_cast<std::size_t>(k), s.load_factor, bpe, s.tables, s.global_depth);
    if (k >= 1000) {
      if (s.load_factor < min_lf) {
        min_lf = s.load_factor;
        min_at = k;
      }
      sum_lf += s.load_factor;
      ++samples;
    }
  }
  if (samples > 0) {
    std::printf("# sizes >= 1000: min load factor %.3f (at %zu), mean %.3f\n", min_lf, min_at,
                sum_lf / static_cast<double>(samples));
  }
  return 0;
}
