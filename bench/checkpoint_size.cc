// How many bytes an incremental checkpoint writes, against a full save, after changing part
// of a map (docs/benchmarks.md, "Checkpoints"). Not a Google Benchmark: it prints a table.
//
//   checkpoint_size [KEYS] [DIR]      (default 10,000,000 keys, /tmp)
//
// Changes are made three ways: 1% of the keys whose hashes fall in 1% of the hash space (so
// 1% of the small tables change); 1% of the keys at random (so nearly every table changes);
// and 0.01% of the keys at random.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "index/extendible_hash_map.h"

int main(int argc, char** argv) {
  const std::uint64_t keys = argc > 1 ? std::stoull(argv[1]) : 10'000'000;
  const std::string dir = argc > 2 ? argv[2] : "/tmp";
  const std::string ckpt = dir + "/sisu_checkpoint_size.ckpt";
  const std::string full = dir + "/sisu_checkpoint_size.idx";
  using Map = sisu::ExtendibleHashMap<std::uint64_t, std::uint64_t>;
  const sisu::Hash<std::uint64_t> hash(1);
  Map m(0, hash);
  for (std::uint64_t k = 0; k < keys; ++k) m[k] = k;
  namespace fs = std::filesystem;
  auto timed = [](auto&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!f().ok()) std::abort();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  const double save_ms = timed([&] { return m.save(full); });
  const std::uint64_t full_bytes = fs::file_size(full);
  const double first_ms = timed([&] { return m.checkpoint(ckpt); });
  std::printf("keys %" PRIu64 ", tables %zu, full save %" PRIu64 " bytes (%.0f ms), first checkpoint %" PRIu64
              " bytes (%.0f ms)\n\n",
              keys, m.stats().tables, full_bytes, save_ms, fs::file_size(ckpt), first_ms);
  std::printf("%-44s %14s %10s %12s\n", "change", "bytes written", "of a save", "checkpoint");
  std::mt19937_64 rng(5);
  auto row = [&](const char* what, auto&& change) {
    change();
    const std::uint64_t before = fs::file_size(ckpt);
    const double ms = timed([&] { return m.checkpoint(ckpt); });
    const std::uint64_t after = fs::file_size(ckpt);
    const std::uint64_t written = after >= before ? after - before : after;  // a rewrite
    std::printf("%-44s %14" PRIu64 " %9.2f%% %9.0f ms%s\n", what, written,
                100.0 * static_cast<double>(written) / static_cast<double>(full_bytes), ms,
                after < before ? " (rewrote the file)" : "");
  };
  row("nothing", [] {});
  row("1% of keys, in 1% of the hash space", [&] {
    const std::uint64_t limit = UINT64_MAX / 100;
    for (std::uint64_t k = 0; k < keys; ++k) {
      if (hash(k) < limit) m[k] = k + 1;
    }
  });
  row("0.01% of keys, at random", [&] {
    for (std::uint64_t i = 0; i < keys / 10000; ++i) m[rng() % keys] += 1;
  });
  row("1% of keys, at random", [&] {
    for (std::uint64_t i = 0; i < keys / 100; ++i) m[rng() % keys] += 1;
  });
  Map loaded;
  if (!Map::load(ckpt, &loaded).ok() || loaded.size() != m.size()) std::abort();
  fs::remove(ckpt);
  fs::remove(full);
  return 0;
}
