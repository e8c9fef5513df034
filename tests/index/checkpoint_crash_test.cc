// Checkpoints that really get killed: a child process changes a map and checkpoints it in a
// loop, reporting each completed checkpoint through a pipe; the parent SIGKILLs it at a
// random moment and loads the file, which must hold exactly the state of the last reported
// checkpoint or of the one in flight (which may have completed before it was reported).
// SISU_CRASH_ROUNDS sets the number of kills (scripts/crashtest runs many).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <unordered_map>

#include "index/extendible_hash_map.h"
#include "tests/crash_support.h"

namespace sisu {
namespace {

namespace fs = std::filesystem;
using Map = ExtendibleHashMap<std::uint64_t, std::uint64_t>;
using Model = std::unordered_map<std::uint64_t, std::uint64_t>;

// Round r's changes: inserts, overwrites and erases over a key space that grows, so tables
// split as well as change.
template <class M>
void apply_round(M& m, std::uint64_t seed, std::uint64_t round) {
  std::mt19937_64 rng(seed * 7919 + round);
  const std::uint64_t space = 2000 + round * 500;
  for (int i = 0; i < 1500; ++i) {
    const std::uint64_t k = rng() % space;
    if (rng() % 5 == 0) {
      m.erase(k);
    } else {
      m[k] = rng();
    }
  }
}

[[noreturn]] void child(const std::string& path, std::uint64_t seed, int fd) {
  Map m(0, Hash<std::uint64_t>(seed));
  for (std::uint64_t r = 0;; ++r) {
    apply_round(m, seed, r);
    if (!m.checkpoint(path).ok()) ::_exit(3);
    testing::ack(fd, r);
  }
}

TEST(CheckpointCrash, LoadGivesTheLastCompletedCheckpoint) {
  const char* env = std::getenv("SISU_CRASH_ROUNDS");
  const int rounds = env != nullptr ? std::atoi(env) : 20;
  const std::string path =
      (fs::temp_directory_path() / ("sisu_ckpt_crash_" + std::to_string(::getpid()))).string();
  std::mt19937_64 rng(99);
  int loaded_rounds = 0;
  // A round killed before the child's first checkpoint completed tests nothing. On a loaded
  // machine (ctest -j2, a sanitizer) that first checkpoint may take longer than the kill
  // delays, so rounds go on, up to 5x, until more than half of them loaded a file.
  for (int round = 0; round < rounds || (loaded_rounds <= rounds / 2 && round < 5 * rounds);
       ++round) {
    fs::remove(path);
    const std::uint64_t seed = rng();
    // The last reported checkpoint, -1 for none.
    const std::int64_t acked =
        static_cast<std::int64_t>(testing::run_and_kill(
            [&](int fd) { child(path, seed, fd); },
            std::chrono::microseconds(5000 + rng() % 150000))) -
        1;
    if (::testing::Test::HasFailure()) return;

    Map loaded;
    const Status s = Map::load(path, &loaded);
    if (acked < 0 && !s.ok()) continue;  // killed before the first checkpoint completed
    ASSERT_TRUE(s.ok()) << "round " << round << " after " << acked << ": " << s.to_string();
    // Which state is it? The acknowledged one, or the next.
    Model model;
    for (std::int64_t r = 0; r <= acked; ++r) apply_round(model, seed, static_cast<std::uint64_t>(r));
    auto equal = [&](const Model& m) {
      if (m.size() != loaded.size()) return false;
      for (const auto& [k, v] : m) {
        auto it = loaded.find(k);
        if (it == loaded.end() || it->second != v) return false;
      }
      return true;
    };
    bool ok = acked >= 0 && equal(model);
    if (!ok) {
      apply_round(model, seed, static_cast<std::uint64_t>(acked + 1));
      ok = equal(model);
    }
    ASSERT_TRUE(ok) << "round " << round << ": the file holds neither checkpoint " << acked
                    << " nor the next";
    ++loaded_rounds;
  }
  fs::remove(path);
  EXPECT_GT(loaded_rounds, rounds / 2);
}

}  // namespace
}  // namespace sisu
