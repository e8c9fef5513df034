// Linearizability of LockFreeHashMap under resizes: threads hammer a few hot keys (0 and
// UINT64_MAX among them) while a churn thread keeps the table resizing; every call and return
// is stamped from one atomic clock, and each key's history is checked by a Wing-Gong search.
// The same harness must catch the broken copy orders (CopyOrder::kTest*), which shows it can
// fail.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "tests/index/linearizability.h"
#include "tests/index/lock_free_test_support.h"

namespace sisu::testing {
namespace {

constexpr std::uint64_t kHotKeys[] = {0, std::numeric_limits<std::uint64_t>::max(), 12345};
constexpr int kHot = 3;

struct Round {
  bool linearizable = true;
  std::uint64_t resizes = 0;
  std::string report;
};

// One round: `threads` workers do `ops` operations each on the hot keys. Returns whether
// every key's history is linearizable.
template <CopyOrder kOrder, bool kStall = false>
Round run_round(int threads, int ops, std::uint64_t seed) {
  TestMap<kOrder, kStall> m;
  std::atomic<std::uint64_t> clock{1};
  std::atomic<bool> stop{false};
  std::vector<std::vector<Op>> histories(threads * kHot);
  std::thread churner([&] { churn(m, 1000000, stop); });
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 131 + t);
      std::uint64_t seq = 0;
      for (int i = 0; i < ops; ++i) {
        const int key_index = static_cast<int>(rng() % kHot);
        const std::uint64_t key = kHotKeys[key_index];
        // Unique values make histories unambiguous, so the search stays small.
        const std::uint64_t value = (static_cast<std::uint64_t>(t + 1) << 32) | ++seq;
        Op op;
        op.a = value;
        // kStall rounds hunt a removed value coming back: mostly removes and reads.
        static constexpr int kRemoveHeavy[10] = {0, 0, 0, 0, 3, 3, 9, 9, 9, 9};
        int pick = static_cast<int>(rng() % 10);
        if (kStall) pick = kRemoveHeavy[pick];
        op.call = clock.fetch_add(1);
        switch (pick) {
          case 0:
          case 1:
          case 2:
            op.kind = OpKind::kGet;
            op.a = 0;
            op.result = m.get(key);
            break;
          case 3:
          case 4:
            op.kind = OpKind::kPut;
            op.result = m.put(key, value);
            break;
          case 5:
            op.kind = OpKind::kPutIfAbsent;
            op.result = m.put_if_absent(key, value);
            break;
          case 6:
            op.kind = OpKind::kReplace;
            op.result = m.replace(key, value);
            break;
          case 7: {
            // Expect the value seen a moment ago: often right, sometimes stale.
            const auto seen = m.get(key);
            op.call = clock.fetch_add(1);
            op.kind = OpKind::kCompareAndSet;
            op.a = seen.value_or(7);
            op.b = value;
            op.ok = m.replace(key, op.a, op.b);
            break;
          }
          case 8: {
            const auto seen = m.get(key);
            op.call = clock.fetch_add(1);
            op.kind = OpKind::kRemoveIf;
            op.a = seen.value_or(7);
            op.ok = m.remove(key, op.a);
            break;
          }
          default:
            op.kind = OpKind::kRemove;
            op.a = 0;
            op.result = m.remove(key);
            break;
        }
        op.ret = clock.fetch_add(1);
        histories[t * kHot + key_index].push_back(op);
        // Dead keys of its own, so that resizes keep pace with the operations however the
        // threads are scheduled (the churn thread alone may be starved).
        if (i % 32 == 0) {
          const std::uint64_t fresh = (std::uint64_t{1} << 48) + (std::uint64_t(t) << 32) + i;
          m.put(fresh, 1);
          m.remove(fresh);
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  stop.store(true);
  churner.join();

  Round r;
  r.resizes = m.resizes();
  for (int k = 0; k < kHot; ++k) {
    std::vector<Op> h;
    for (int t = 0; t < threads; ++t) {
      const auto& part = histories[t * kHot + k];
      h.insert(h.end(), part.begin(), part.end());
    }
    if (!linearizable(h)) {
      r.linearizable = false;
      std::sort(h.begin(), h.end(), [](const Op& x, const Op& y) { return x.call < y.call; });
      r.report += "key " + std::to_string(kHotKeys[k]) + " is not linearizable; first ops:\n";
      const std::size_t shown = std::getenv("SISU_LIN_DUMP") ? h.size() : 12;
      for (std::size_t i = 0; i < h.size() && i < shown; ++i) {
        r.report += "  " + describe(h[i]) + "\n";
      }
    }
  }
  return r;
}

TEST(Linearizability, CheckerAcceptsLegalHistories) {
  // Sequential: put 1, get 1, remove 1, get none.
  std::vector<Op> h = {{OpKind::kPut, 1, 0, std::nullopt, false, 1, 2},
                       {OpKind::kGet, 0, 0, 1, false, 3, 4},
                       {OpKind::kRemove, 0, 0, 1, false, 5, 6},
                       {OpKind::kGet, 0, 0, std::nullopt, false, 7, 8}};
  EXPECT_TRUE(linearizable(h));
  // Overlapping: a get concurrent with a put may see either state.
  h = {{OpKind::kPut, 1, 0, std::nullopt, false, 1, 4},
       {OpKind::kGet, 0, 0, std::nullopt, false, 2, 3},
       {OpKind::kGet, 0, 0, 1, false, 2, 5}};
  EXPECT_TRUE(linearizable(h));
  // Two overlapping put_if_absent, one wins; cas from the winner's value.
  h = {{OpKind::kPutIfAbsent, 1, 0, 2, false, 1, 4},
       {OpKind::kPutIfAbsent, 2, 0, std::nullopt, false, 2, 3},
       {OpKind::kCompareAndSet, 2, 3, std::nullopt, true, 5, 6},
       {OpKind::kGet, 0, 0, 3, false, 7, 8}};
  EXPECT_TRUE(linearizable(h));
}

TEST(Linearizability, CheckerRejectsIllegalHistories) {
  // A lost update: put 2 completed, then a get returns the older 1.
  std::vector<Op> h = {{OpKind::kPut, 1, 0, std::nullopt, false, 1, 2},
                       {OpKind::kPut, 2, 0, 1, false, 3, 4},
                       {OpKind::kGet, 0, 0, 1, false, 5, 6}};
  EXPECT_FALSE(linearizable(h));
  // Two put_if_absent both claim to have inserted.
  h = {{OpKind::kPutIfAbsent, 1, 0, std::nullopt, false, 1, 4},
       {OpKind::kPutIfAbsent, 2, 0, std::nullopt, false, 2, 3}};
  EXPECT_FALSE(linearizable(h));
  // Both return the same previous value for overlapping puts: one must see the other's.
  h = {{OpKind::kPut, 1, 0, std::nullopt, false, 1, 4},
       {OpKind::kPut, 2, 0, std::nullopt, false, 2, 3},
       {OpKind::kGet, 0, 0, 2, false, 5, 6}};
  EXPECT_FALSE(linearizable(h));
  // A removed key read back.
  h = {{OpKind::kPut, 1, 0, std::nullopt, false, 1, 2},
       {OpKind::kRemove, 0, 0, 1, false, 3, 4},
       {OpKind::kGet, 0, 0, 1, false, 5, 6}};
  EXPECT_FALSE(linearizable(h));
}

TEST(Linearizability, HotKeysDuringResizes) {
  std::uint64_t resizes = 0;
  for (int round = 0; round < 12; ++round) {
    const Round r = run_round<CopyOrder::kFreezeOldFirst>(4, 2000, round + 1);
    ASSERT_TRUE(r.linearizable) << r.report;
    resizes += r.resizes;
  }
  std::printf("%llu resizes in 12 rounds\n", static_cast<unsigned long long>(resizes));
  EXPECT_GT(resizes, 200u) << "the rounds must resize, or they test nothing";
}

// Copiers that sleep mid-copy: tables are resized again while a copy into them is still
// being delivered (the case the primed null exists for).
TEST(Linearizability, HotKeysWithStalledCopiers) {
  for (int round = 0; round < 30; ++round) {
    const Round r = run_round<CopyOrder::kFreezeOldFirst, /*kStall=*/true>(4, 400, round + 77);
    ASSERT_TRUE(r.linearizable) << r.report;
  }
}

// A broken copy order must be caught within a bounded number of rounds. The yields in the
// test traits widen the windows; a round resizes hundreds of times. A broken order may also
// livelock (its copy never completes), so the rounds run in a child process with a watchdog:
// a round that takes 20 s counts as caught (hung), and the parent kills a child that
// outlives its budget.
template <CopyOrder kOrder, bool kStall = false>
void expect_caught() {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::atomic<std::int64_t> round_started{0};
    auto now_s = [] {
      return std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
    std::thread([&] {
      for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        const std::int64_t started = round_started.load();
        if (started != 0 && now_s() - started > 20) {
          std::printf("broken order caught: a round hung\n");
          std::fflush(stdout);
          std::_Exit(0);
        }
      }
    }).detach();
    // Release builds catch each broken order within ~35 rounds (~2 s); the budget leaves
    // room for TSan (10-20x slower) on a loaded machine, inside ctest's 600 s.
    const std::int64_t deadline = now_s() + 400;
    for (int round = 0; round < 2000 && now_s() < deadline; ++round) {
      round_started.store(now_s());
      if (!run_round<kOrder, kStall>(4, 400, 1000 + round).linearizable) {
        std::printf("broken order caught after %d round(s)\n", round + 1);
        std::fflush(stdout);
        std::_Exit(0);
      }
    }
    std::printf("a broken copy order passed every round\n");
    std::fflush(stdout);
    std::_Exit(1);
  }
  int status = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(450);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > give_up) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      std::printf("broken order caught: the child hung past its budget\n");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(WIFEXITED(status)) << "the child died: status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "a broken copy order was not caught";
}

TEST(Linearizability, CatchesCopyWithoutPrime) { expect_caught<CopyOrder::kTestSkipPrime>(); }

TEST(Linearizability, CatchesCopyOverwritingNewerWrites) {
  expect_caught<CopyOrder::kTestOverwriteNew>();
}

TEST(Linearizability, CatchesLateDeliveryPastARemovedValue) {
  expect_caught<CopyOrder::kTestForwardAnyDead, /*kStall=*/true>();
}

}  // namespace
}  // namespace sisu::testing
