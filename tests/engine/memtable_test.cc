// MemTable: chains stay in descending sequence order whatever order records are linked in
// (writers of one commit group add their batches at once), so a read at any snapshot finds
// the newest version at or below it. Run under TSan too.
#include "engine/memtable.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace sisu {
namespace {

std::string value_of(std::uint64_t seq) { return "v" + std::to_string(seq); }

void expect_every_snapshot(const MemTable& m, std::uint64_t max_seq) {
  for (std::uint64_t snap = 1; snap <= max_seq; ++snap) {
    std::string v;
    ASSERT_EQ(m.get("key", 7, snap, &v), MemTable::Lookup::kFound) << snap;
    ASSERT_EQ(v, value_of(snap)) << "snapshot " << snap;
  }
  std::string v;
  EXPECT_EQ(m.get("key", 7, 0, &v), MemTable::Lookup::kAbsent);
}

TEST(MemTable, OutOfOrderLinksKeepChainsSorted) {
  MemTable m(4096, 1);
  // Sequence numbers added in a scrambled order, all for one key (one hash).
  const std::vector<std::uint64_t> order = {5, 3, 9, 1, 2, 8, 4, 7, 6, 10};
  for (std::uint64_t seq : order) {
    m.add(seq, RecordType::kPut, "key", value_of(seq), 7);
  }
  expect_every_snapshot(m, 10);
  // Another key with the same hash and a tombstone in the middle of its versions.
  m.add(12, RecordType::kPut, "other", "b", 7);
  m.add(11, RecordType::kDelete, "other", "", 7);
  std::string v;
  EXPECT_EQ(m.get("other", 7, 11, &v), MemTable::Lookup::kDeleted);
  EXPECT_EQ(m.get("other", 7, 12, &v), MemTable::Lookup::kFound);
  EXPECT_EQ(v, "b");
  EXPECT_EQ(m.get("key", 7, 12, &v), MemTable::Lookup::kFound);
  EXPECT_EQ(v, value_of(10));
  int newest = 0;
  m.freeze();
  m.for_each_newest([&](const MemRecord& r) {
    ++newest;
    EXPECT_EQ(r.seq, r.key() == "key" ? 10u : 12u);
  });
  EXPECT_EQ(newest, 2);
}

TEST(MemTable, ConcurrentAddsToOneChain) {
  constexpr int kThreads = 4;
  constexpr std::uint64_t kPerThread = 3000, kTotal = kThreads * kPerThread;
  MemTable m(1 << 20, 1);
  // Space is reserved by one thread, as the commit leader does; the adds then race.
  std::vector<char*> region(kTotal + 1);
  for (std::uint64_t seq = 1; seq <= kTotal; ++seq) {
    region[seq] = m.reserve(MemTable::reservation_bytes(3 + value_of(seq).size() + 9, 1));
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Thread t adds seqs t+1, t+1+kThreads, ...: the threads interleave on one chain.
      for (std::uint64_t seq = static_cast<std::uint64_t>(t) + 1; seq <= kTotal; seq += kThreads) {
        m.add_at(region[seq], seq, RecordType::kPut, "key", value_of(seq), 7);
      }
    });
  }
  for (auto& t : threads) t.join();
  expect_every_snapshot(m, kTotal);
}

}  // namespace
}  // namespace sisu
