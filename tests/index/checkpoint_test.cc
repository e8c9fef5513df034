// ExtendibleHashMap::checkpoint: incremental saves that load as the map was at the last
// completed checkpoint, through growth, erasure, shrinking and overflow chains; a torn tail at
// every length gives the last commit before it; damage before a later commit is corruption.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "index/checkpoint_format.h"
#include "index/extendible_hash_map.h"
#include "tests/temp_path.h"
#include "util/crc32c.h"

namespace sisu {
namespace {

namespace fs = std::filesystem;
using Map = ExtendibleHashMap<std::uint64_t, std::uint64_t>;
using Model = std::unordered_map<std::uint64_t, std::uint64_t>;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing_support::test_temp_path("sisu_ckpt");
    fs::remove(path_);
  }
  void TearDown() override { fs::remove(path_); }

  template <class M, class Mod>
  static void expect_equal(const M& loaded, const Mod& model) {
    ASSERT_EQ(loaded.size(), model.size());
    for (const auto& [k, v] : model) {
      auto it = loaded.find(k);
      ASSERT_NE(it, loaded.end()) << k;
      ASSERT_EQ(it->second, v) << k;
    }
  }
  Map load() {
    Map m;
    const Status s = Map::load(path_, &m);
    EXPECT_TRUE(s.ok()) << s.to_string();
    return m;
  }
  std::string read_file() const {
    std::ifstream in(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void write_file(const std::string& bytes) const {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << bytes;
  }

  std::string path_;
};

TEST_F(CheckpointTest, EachCheckpointLoadsAsTheMapWas) {
  Map m(0, Hash<std::uint64_t>(9));
  Model model;
  std::mt19937_64 rng(1);
  std::uint64_t last_size = 0;
  int rewrites = 0;
  for (int round = 0; round < 12; ++round) {
    // Rounds grow the map, churn it, then shrink it.
    const int ops = round < 6 ? 20000 : 3000;
    for (int i = 0; i < ops; ++i) {
      const std::uint64_t k = rng() % (round < 9 ? 200000 : 2000);
      if (round >= 9 || rng() % 4 == 0) {
        m.erase(k);
        model.erase(k);
      } else {
        m[k] = i;
        model[k] = i;
      }
    }
    if (round == 10) m.shrink_to_fit();
    ASSERT_TRUE(m.checkpoint(path_).ok());
    expect_equal(load(), model);
    // Dead pages are bounded: the file is rewritten once they outweigh the live ones.
    ASSERT_TRUE(m.save(path_ + ".full").ok());
    const std::uint64_t full = fs::file_size(path_ + ".full");
    fs::remove(path_ + ".full");
    EXPECT_LE(fs::file_size(path_), 3 * full + (1u << 20)) << "round " << round;
    rewrites += fs::file_size(path_) < last_size;
    last_size = fs::file_size(path_);
  }
  EXPECT_GE(rewrites, 1) << "churn made the file rewrite itself";
  m.clear();
  model.clear();
  ASSERT_TRUE(m.checkpoint(path_).ok());
  expect_equal(load(), model);
}

TEST_F(CheckpointTest, WritesOnlyChangedTables) {
  Map m(0, Hash<std::uint64_t>(3));
  for (std::uint64_t k = 0; k < 500000; ++k) m[k] = k;
  ASSERT_TRUE(m.checkpoint(path_).ok());
  const std::uint64_t full = fs::file_size(path_);
  // Nothing changed: a commit record only.
  ASSERT_TRUE(m.checkpoint(path_).ok());
  const std::uint64_t after_noop = fs::file_size(path_);
  EXPECT_LT(after_noop - full, full / 100);
  // Keys of one small table change: about one table is written.
  const Hash<std::uint64_t> hash(3);
  std::uint64_t changed = 0;
  for (std::uint64_t k = 0; k < 500000 && changed < 50; ++k) {
    if ((hash(k) >> 52) == 0x123) {  // one 1/4096 slice of the hash space
      m[k] = k + 1;
      ++changed;
    }
  }
  ASSERT_GT(changed, 0u);
  ASSERT_TRUE(m.checkpoint(path_).ok());
  const std::uint64_t appended = fs::file_size(path_) - after_noop;
  EXPECT_LT(appended, full / 50) << "appended " << appended << " of a full " << full;
  Map loaded = load();
  for (std::uint64_t k = 0; k < 500000; k += 997) EXPECT_EQ(loaded.at(k), m.at(k));
}

TEST_F(CheckpointTest, OverflowChainsFromAConstantHash) {
  struct ConstantHash {
    std::uint64_t operator()(std::uint64_t) const { return 77; }
  };
  ExtendibleHashMap<std::uint64_t, std::uint64_t, ConstantHash> m;
  Model model;
  for (std::uint64_t k = 0; k < 3000; ++k) m[k] = model[k] = k;
  ASSERT_TRUE(m.checkpoint(path_).ok());
  for (std::uint64_t k = 0; k < 3000; k += 2) {
    m.erase(k);
    model.erase(k);
  }
  ASSERT_TRUE(m.checkpoint(path_).ok());
  decltype(m) loaded;
  ASSERT_TRUE(decltype(m)::load(path_, &loaded).ok());
  expect_equal(loaded, model);
}

// Truncating the file anywhere (a crash during an append) loads the last commit that fits.
TEST_F(CheckpointTest, TornTailLoadsTheLastCompleteCheckpoint) {
  Map m(0, Hash<std::uint64_t>(4));
  std::vector<Model> states;
  std::vector<std::uint64_t> ends;
  Model model;
  std::mt19937_64 rng(2);
  for (int c = 0; c < 4; ++c) {
    for (int i = 0; i < 3000; ++i) {
      const std::uint64_t k = rng() % 20000;
      m[k] = model[k] = rng() % 1000;
    }
    ASSERT_TRUE(m.checkpoint(path_).ok());
    states.push_back(model);
    ends.push_back(fs::file_size(path_));
  }
  const std::string whole = read_file();
  for (std::uint64_t cut = 0; cut <= whole.size(); cut += 1 + rng() % 1500) {
    write_file(whole.substr(0, cut));
    int expect = -1;
    for (std::size_t c = 0; c < ends.size(); ++c) {
      if (ends[c] <= cut) expect = static_cast<int>(c);
    }
    Map loaded;
    const Status s = Map::load(path_, &loaded);
    if (expect < 0) {
      EXPECT_TRUE(s.is_corruption()) << "cut " << cut << ": " << s.to_string();
    } else {
      ASSERT_TRUE(s.ok()) << "cut " << cut << ": " << s.to_string();
      expect_equal(loaded, states[static_cast<std::size_t>(expect)]);
    }
  }
  // Zeros or garbage appended after the last commit are a torn tail too.
  write_file(whole + std::string(5000, '\0'));
  expect_equal(load(), states.back());
  // A flipped byte before the last commit is damage, not a tail.
  std::mt19937_64 flips(3);
  int corrupt = 0;
  for (int i = 0; i < 40; ++i) {
    std::string bad = whole;
    const std::size_t at = 64 + flips() % (ends[2] - 64);
    bad[at] = static_cast<char>(bad[at] ^ 0x10);
    write_file(bad);
    Map loaded;
    const Status s = Map::load(path_, &loaded);
    ASSERT_FALSE(s.ok()) << "a flip at " << at << " went unnoticed";
    EXPECT_TRUE(s.is_corruption()) << s.to_string();
    ++corrupt;
  }
  EXPECT_EQ(corrupt, 40);
}

// A page torn by a crash holds user values, and a value may hold the bytes of a whole commit
// frame. The search for a later commit after a bad frame must not look inside the torn page:
// every cut inside it loads the checkpoint before.
TEST_F(CheckpointTest, ACommitFrameInsideATornPageIsNotACommit) {
  namespace c = checkpoint_file;
  using Value = std::array<char, 64>;
  using BigMap = ExtendibleHashMap<std::uint64_t, Value>;
  Value fake{};
  c::CommitBody body{7, 0, 0, 0};
  c::FrameHeader fh{c::kFrameMagic, c::kCommitFrame, sizeof(body), 0, 0};
  fh.body_crc = crc32c::value(&body, sizeof(body));
  fh.crc = crc32c::value(&fh, offsetof(c::FrameHeader, crc));
  std::memcpy(fake.data(), &fh, sizeof(fh));
  std::memcpy(fake.data() + sizeof(fh), &body, sizeof(body));

  BigMap m;
  for (std::uint64_t k = 0; k < 2000; ++k) m[k] = Value{};
  ASSERT_TRUE(m.checkpoint(path_).ok());
  const std::uint64_t first_end = fs::file_size(path_);
  for (std::uint64_t k = 0; k < 2000; ++k) m[k] = fake;
  ASSERT_TRUE(m.checkpoint(path_).ok());
  const std::string whole = read_file();
  // The second checkpoint is page frames, then a commit of 24 + 24 + 8 per table bytes.
  const std::uint64_t pages_end =
      whole.size() - sizeof(c::FrameHeader) - sizeof(c::CommitBody) - 8 * m.stats().tables;
  ASSERT_LT(first_end + 4096, pages_end);
  int cuts = 0;
  for (std::uint64_t cut = pages_end - 4000; cut < pages_end; cut += 97, ++cuts) {
    write_file(whole.substr(0, cut));
    BigMap loaded;
    const Status s = BigMap::load(path_, &loaded);
    ASSERT_TRUE(s.ok()) << "cut " << cut << ": " << s.to_string();
    ASSERT_EQ(loaded.size(), 2000u);
    EXPECT_EQ(loaded.at(1999), Value{}) << "cut " << cut;
  }
  EXPECT_GT(cuts, 30);
  // A hole instead of a cut (a power loss may keep later blocks and lose an earlier one):
  // the first new page is damaged, the pages after it are whole, their values hold commit
  // frames, and the real commit is missing. Still a torn tail: the search steps over the
  // bodies of frames whose headers are intact.
  std::string holed = whole.substr(0, pages_end);
  std::fill_n(holed.begin() + static_cast<std::ptrdiff_t>(first_end + 200), 512, '\0');
  write_file(holed);
  BigMap loaded;
  const Status s = BigMap::load(path_, &loaded);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(loaded.at(1999), Value{});
  // The same hole with the commit in place is damage before a later commit.
  holed = whole;
  std::fill_n(holed.begin() + static_cast<std::ptrdiff_t>(first_end + 200), 512, '\0');
  write_file(holed);
  EXPECT_TRUE(BigMap::load(path_, &loaded).is_corruption());
}

TEST_F(CheckpointTest, AnotherWriterForcesAFullRewrite) {
  Map a(0, Hash<std::uint64_t>(5)), b(0, Hash<std::uint64_t>(5));
  for (std::uint64_t k = 0; k < 1000; ++k) a[k] = 1;
  for (std::uint64_t k = 0; k < 1000; ++k) b[k] = 2;
  ASSERT_TRUE(a.checkpoint(path_).ok());
  ASSERT_TRUE(b.checkpoint(path_).ok());  // b did not write the file: it rewrites it
  a[5] = 7;
  ASSERT_TRUE(a.checkpoint(path_).ok());  // the file is not as a left it: rewritten too
  Map loaded = load();
  EXPECT_EQ(loaded.at(5), 7u);
  EXPECT_EQ(loaded.at(6), 1u);
  // Another writer replacing the file with one of the very same size (the same shape, other
  // values) is noticed too: it is another file, not this map's.
  Map a2(0, Hash<std::uint64_t>(5)), c(0, Hash<std::uint64_t>(5));
  for (std::uint64_t k = 0; k < 1000; ++k) a2[k] = 1;
  for (std::uint64_t k = 0; k < 1000; ++k) c[k] = 3;
  ASSERT_TRUE(a2.checkpoint(path_).ok());
  const auto a_size = fs::file_size(path_);
  ASSERT_TRUE(c.checkpoint(path_).ok());
  ASSERT_EQ(fs::file_size(path_), a_size) << "the test needs equal sizes";
  a2[7] = 8;
  ASSERT_TRUE(a2.checkpoint(path_).ok());
  loaded = load();
  EXPECT_EQ(loaded.at(7), 8u);
  EXPECT_EQ(loaded.at(8), 1u) << "a2's tables, not a mix with c's";
  // A copy starts without the link, a move keeps it.
  Map copy = a;
  copy[6] = 9;
  ASSERT_TRUE(copy.checkpoint(path_).ok());
  EXPECT_EQ(load().at(6), 9u);
  Map moved = std::move(a);
  moved[6] = 10;
  ASSERT_TRUE(moved.checkpoint(path_).ok());
  EXPECT_EQ(load().at(6), 10u);
  // A file removed since the last checkpoint is written anew, not an I/O error.
  fs::remove(path_);
  moved[6] = 11;
  const Status s = moved.checkpoint(path_);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(load().at(6), 11u);
}

TEST_F(CheckpointTest, WrongTypesAreRefused) {
  Map m(0, Hash<std::uint64_t>(6));
  m[1] = 2;
  ASSERT_TRUE(m.checkpoint(path_).ok());
  ExtendibleHashMap<std::uint32_t, std::uint64_t> other;
  EXPECT_TRUE(decltype(other)::load(path_, &other).is_corruption());
}

}  // namespace
}  // namespace sisu
