// The engine under concurrent writers, readers, flushes and compactions (run under TSan):
// reads see each key's values in the order they were written, batches appear whole, and
// the end state is the last write of every key.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "engine/db.h"

namespace sisu {
namespace {

namespace fs = std::filesystem;

std::string dir_for(const char* name) {
  const std::string d =
      (fs::temp_directory_path() / ("sisu_dbc_" + std::to_string(::getpid()) + "_" + name)).string();
  fs::remove_all(d);
  return d;
}

std::uint64_t parse(const std::string& v) { return std::stoull(v.substr(0, v.find('.'))); }

TEST(DbConcurrent, ReadersSeeOrderedValuesAndWholeBatches) {
  const std::string dir = dir_for("ordered");
  Options options;
  options.memtable_bytes = 16 << 10;
  options.compaction_trigger = 3;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::open(options, dir, &db).ok());

  constexpr int kWriters = 2, kKeys = 40, kRounds = 1500;
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 1; i <= kRounds; ++i) {
        const std::string key = "w" + std::to_string(w) + "_" + std::to_string(i % kKeys);
        // The value's number grows with every write to the key; the padding makes flushes.
        if (!db->put(key, std::to_string(i) + "." + std::string(40, 'p')).ok()) ++failures;
        // y then x in one batch: a reader that sees y's new value then reads x must see
        // at least that value, since the batch became visible whole.
        WriteBatch b;
        b.put("y" + std::to_string(w), std::to_string(i));
        b.put("x" + std::to_string(w), std::to_string(i));
        if (!db->write(b).ok()) ++failures;
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::vector<std::uint64_t> last(kWriters * kKeys, 0);
      std::uint64_t n = 0;
      while (!stop.load()) {
        const int w = static_cast<int>(n % kWriters), k = static_cast<int>((n * 7 + r) % kKeys);
        ++n;
        std::string v;
        Status s = db->get("w" + std::to_string(w) + "_" + std::to_string(k), &v);
        if (s.ok()) {
          const std::uint64_t got = parse(v);
          if (got < last[w * kKeys + k]) ++failures;  // went back in time
          last[w * kKeys + k] = got;
        } else if (!s.is_not_found()) {
          ++failures;
        }
        std::string y, x;
        if (db->get("y" + std::to_string(w), &y).ok()) {
          if (!db->get("x" + std::to_string(w), &x).ok() || parse(x) < parse(y)) ++failures;
        }
      }
    });
  }
  threads.emplace_back([&] {  // flushes and compactions racing with everything else
    while (!stop.load()) {
      if (!db->flush().ok()) ++failures;
      if (!db->compact().ok()) ++failures;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  stop.store(true);
  for (std::size_t i = kWriters; i < threads.size(); ++i) threads[i].join();
  EXPECT_EQ(failures.load(), 0);

  // The end state: each key holds its last write, before and after a reopen.
  auto check = [&] {
    for (int w = 0; w < kWriters; ++w) {
      for (int k = 0; k < kKeys; ++k) {
        int last = kRounds - ((kRounds - k) % kKeys + kKeys) % kKeys;
        std::string v;
        ASSERT_TRUE(db->get("w" + std::to_string(w) + "_" + std::to_string(k), &v).ok());
        EXPECT_EQ(parse(v), static_cast<std::uint64_t>(last)) << w << " " << k;
      }
      std::string x;
      ASSERT_TRUE(db->get("x" + std::to_string(w), &x).ok());
      EXPECT_EQ(x, std::to_string(kRounds));
    }
  };
  check();
  const DBStats st = db->stats();
  EXPECT_GT(st.flushes, 0u);
  EXPECT_LE(st.write_groups, st.writes);
  db.reset();
  ASSERT_TRUE(DB::open(options, dir, &db).ok());
  check();
  db.reset();
  fs::remove_all(dir);
}

// Concurrent synced writers share fdatasyncs: every write returns only when durable, and
// the group count shows the sharing.
TEST(DbConcurrent, GroupCommitSharesSyncs) {
  const std::string dir = dir_for("groups");
  Options options;
  options.sync = true;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::open(options, dir, &db).ok());
  constexpr int kThreads = 4, kWrites = 100;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        if (!db->put("t" + std::to_string(t) + "_" + std::to_string(i), "v").ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const DBStats st = db->stats();
  EXPECT_EQ(st.writes, static_cast<std::uint64_t>(kThreads * kWrites));
  EXPECT_LE(st.write_groups, st.writes);
  std::printf("%llu writes in %llu commit groups\n", static_cast<unsigned long long>(st.writes),
              static_cast<unsigned long long>(st.write_groups));
  db.reset();
  ASSERT_TRUE(DB::open(options, dir, &db).ok());
  std::string v;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kWrites; ++i) {
      ASSERT_TRUE(db->get("t" + std::to_string(t) + "_" + std::to_string(i), &v).ok());
    }
  }
  db.reset();
  fs::remove_all(dir);
}

// Writers of one commit group add their batches to the memtable at once. When they write the
// same key, its newest version must still be the one with the highest sequence number: what
// reads see before a reopen must equal what the log replays after it. Each round, every
// thread hammers one key, so the round's last groups hold several writes of it.
TEST(DbConcurrent, SameKeysFromManyWritersMatchTheLog) {
  const std::string dir = dir_for("samekeys");
  Options options;
  options.memtable_bytes = 4 << 20;  // no flush: everything is decided by memtable chains
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::open(options, dir, &db).ok());
  constexpr int kThreads = 4, kRounds = 40, kWrites = 150;
  std::atomic<int> failures{0};
  std::vector<std::string> live;
  for (int round = 0; round < kRounds; ++round) {
    const std::string key = "hot" + std::to_string(round);
    std::vector<std::thread> threads;
    std::atomic<int> ready{0};  // the round's writers start together, so that they overlap
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        for (int i = 0; i < kWrites; ++i) {
          const std::string v = std::to_string(t) + ":" + std::to_string(i);
          Status s;
          if (i % 4 == 0) {
            WriteBatch b;
            b.put("other", v);
            b.put(key, v);
            s = db->write(b);
          } else {
            s = db->put(key, v);
          }
          if (!s.ok()) ++failures;
        }
      });
    }
    for (auto& t : threads) t.join();
    std::string v;
    ASSERT_TRUE(db->get(key, &v).ok());
    live.push_back(v);
  }
  ASSERT_EQ(failures.load(), 0);
  const DBStats st = db->stats();
  EXPECT_LT(st.write_groups, st.writes) << "some groups had several writers";
  EXPECT_EQ(st.flushes, 0u);
  db.reset();
  ASSERT_TRUE(DB::open(options, dir, &db).ok());
  for (int round = 0; round < kRounds; ++round) {
    std::string v;
    ASSERT_TRUE(db->get("hot" + std::to_string(round), &v).ok());
    EXPECT_EQ(v, live[static_cast<std::size_t>(round)]) << "round " << round;
  }
  db.reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sisu
