// Crash tests that really kill: a child process writes (puts, removes, batches, with flushes
// and compactions in between) and reports each acknowledged write through a pipe; the parent
// SIGKILLs it at a random moment, reopens the database and checks it:
//   sync = true:  the state is exactly that after the acknowledged writes, or after those and
//                 the one write in flight (which may or may not have become durable);
//   sync = false: the state is that after some prefix of the issued writes (no hole, no
//                 torn batch).
// SISU_CRASH_ROUNDS sets the rounds per mode (scripts/crashtest runs many).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/db.h"
#include "tests/crash_support.h"

namespace sisu {
namespace {

namespace fs = std::filesystem;

constexpr int kKeys = 64;

// Op i of the workload of `seed`: each op is a put, a remove, or a batch of three.
struct Op {
  std::vector<std::pair<std::string, std::optional<std::string>>> writes;
};
Op make_op(std::uint64_t seed, std::uint64_t i) {
  std::mt19937_64 rng(seed * 1000003 + i);
  Op op;
  const int kind = static_cast<int>(rng() % 10);
  const int n = kind < 2 ? 3 : 1;
  for (int j = 0; j < n; ++j) {
    std::string key = "key" + std::to_string(rng() % kKeys);
    if (kind == 2) {
      op.writes.emplace_back(std::move(key), std::nullopt);
    } else {
      op.writes.emplace_back(std::move(key), "v" + std::to_string(i) + "_" + std::to_string(j) +
                                                 std::string(rng() % 200, 'x'));
    }
  }
  return op;
}

[[noreturn]] void child(const std::string& dir, bool sync, std::uint64_t seed, int fd) {
  Options options;
  options.sync = sync;
  options.memtable_bytes = 32 << 10;
  options.compaction_trigger = 3;
  std::unique_ptr<DB> db;
  if (!DB::open(options, dir, &db).ok()) ::_exit(3);
  for (std::uint64_t i = 0;; ++i) {
    const Op op = make_op(seed, i);
    Status s;
    if (op.writes.size() == 1 && op.writes[0].second) {
      s = db->put(op.writes[0].first, *op.writes[0].second);
    } else if (op.writes.size() == 1) {
      s = db->remove(op.writes[0].first);
    } else {
      WriteBatch b;
      for (const auto& [k, v] : op.writes) {
        if (v) {
          b.put(k, *v);
        } else {
          b.remove(k);
        }
      }
      s = db->write(b);
    }
    if (!s.ok()) ::_exit(4);
    testing::ack(fd, i);
    if (i % 300 == 150) (void)db->flush();
    if (i % 1000 == 999) (void)db->compact();
  }
}

void run_rounds(bool sync) {
  const char* env = std::getenv("SISU_CRASH_ROUNDS");
  const int rounds = env != nullptr ? std::atoi(env) : 12;
  const std::string dir = (fs::temp_directory_path() / ("sisu_crash_" + std::to_string(::getpid()) +
                                                        (sync ? "_sync" : "_nosync")))
                              .string();
  fs::remove_all(dir);
  std::mt19937_64 rng(sync ? 1 : 2);
  // The model of what the database must hold, carried across rounds: each round continues
  // the same database with a new workload seed.
  std::map<std::string, std::string> state;
  for (int round = 0; round < rounds; ++round) {
    const std::uint64_t seed = rng();
    const std::uint64_t acked = testing::run_and_kill(
        [&](int fd) { child(dir, sync, seed, fd); },
        std::chrono::microseconds(30000 + rng() % 250000));
    if (::testing::Test::HasFailure()) return;

    Options options;
    std::unique_ptr<DB> db;
    Status s = DB::open(options, dir, &db);
    ASSERT_TRUE(s.ok()) << "round " << round << ": " << s.to_string();
    std::map<std::string, std::string> got;
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = "key" + std::to_string(k);
      std::string v;
      s = db->get(key, &v);
      ASSERT_TRUE(s.ok() || s.is_not_found()) << s.to_string();
      if (s.ok()) got[key] = v;
    }
    db.reset();
    // Replay the workload on the model, counting keys where model and database differ,
    // and find the prefixes that match.
    auto differs = [&](const std::string& k) {
      auto a = state.find(k);
      auto b = got.find(k);
      if (a == state.end() || b == got.end()) return (a == state.end()) != (b == got.end());
      return a->second != b->second;
    };
    std::size_t mismatches = 0;
    for (int k = 0; k < kKeys; ++k) mismatches += differs("key" + std::to_string(k));
    std::vector<std::uint64_t> matching;
    if (mismatches == 0) matching.push_back(0);
    std::map<std::string, std::string> after_acked;
    for (std::uint64_t i = 0; i <= acked; ++i) {
      for (const auto& [k, v] : make_op(seed, i).writes) {
        mismatches -= differs(k);
        if (v) {
          state[k] = *v;
        } else {
          state.erase(k);
        }
        mismatches += differs(k);
      }
      if (mismatches == 0) matching.push_back(i + 1);
      if (i + 1 == acked) after_acked = state;
    }
    ASSERT_FALSE(matching.empty()) << "round " << round << ": the database after " << acked
                                   << " acknowledged writes is no prefix of them";
    if (sync) {
      const std::uint64_t p = matching.back();
      ASSERT_TRUE(p == acked || p == acked + 1)
          << "round " << round << ": sync lost acknowledged writes: prefix " << p << " of "
          << acked;
    }
    // Carry on from what the database holds.
    state = got;
    std::printf("round %d: %llu acknowledged, prefix %llu recovered\n", round,
                static_cast<unsigned long long>(acked),
                static_cast<unsigned long long>(matching.back()));
  }
  fs::remove_all(dir);
}

TEST(DbCrash, SyncKeepsEveryAcknowledgedWrite) { run_rounds(true); }
TEST(DbCrash, NoSyncKeepsAPrefix) { run_rounds(false); }

}  // namespace
}  // namespace sisu
