// The engine against a model (std::map), across flushes, compactions and reopens; damaged
// files; a full disk (FaultEnv); colliding keys.
#include "engine/db.h"

#include <gtest/gtest.h>

#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "engine/manifest.h"
#include "tests/engine/fault_env.h"
#include "tests/temp_path.h"

namespace sisu {
namespace {

namespace fs = std::filesystem;

class DbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::test_temp_path("sisu_db_test");
    fs::remove_all(dir_);
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }

  Status open() {
    db_.reset();
    return DB::open(options_, dir_, &db_);
  }
  void reopen() { ASSERT_TRUE(open().ok()); }

  std::optional<std::string> get(std::string_view key) {
    std::string v;
    Status s = db_->get(key, &v);
    EXPECT_TRUE(s.ok() || s.is_not_found()) << s.to_string();
    if (!s.ok()) return std::nullopt;
    return v;
  }

  std::vector<std::string> files(const char* ext) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().extension() == ext) out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  void expect_model(const std::map<std::string, std::string>& model,
                    const std::vector<std::string>& keys) {
    for (const std::string& k : keys) {
      auto it = model.find(k);
      auto got = get(k);
      if (it == model.end()) {
        EXPECT_FALSE(got.has_value()) << "key " << k;
      } else {
        ASSERT_TRUE(got.has_value()) << "key " << k;
        EXPECT_EQ(*got, it->second) << "key " << k;
      }
    }
  }

  std::string dir_;
  Options options_;
  std::unique_ptr<DB> db_;
};

TEST_F(DbTest, PutGetRemove) {
  reopen();
  std::string v;
  EXPECT_TRUE(db_->get("a", &v).is_not_found());
  ASSERT_TRUE(db_->put("a", "1").ok());
  ASSERT_TRUE(db_->put("", "empty key").ok());
  ASSERT_TRUE(db_->put("empty value", "").ok());
  EXPECT_EQ(get("a"), "1");
  EXPECT_EQ(get(""), "empty key");
  EXPECT_EQ(get("empty value"), "");
  ASSERT_TRUE(db_->put("a", "2").ok());
  EXPECT_EQ(get("a"), "2");
  ASSERT_TRUE(db_->remove("a").ok());
  EXPECT_FALSE(get("a").has_value());
  ASSERT_TRUE(db_->remove("never there").ok());
  // Binary keys and values.
  const std::string bin("\0\xff\x01", 3);
  ASSERT_TRUE(db_->put(bin, bin + bin).ok());
  EXPECT_EQ(get(bin), bin + bin);
}

TEST_F(DbTest, LimitsAreInvalidArguments) {
  reopen();
  const std::string big_key(DB::kMaxKeyBytes + 1, 'k');
  EXPECT_TRUE(db_->put(big_key, "v").is_invalid_argument());
  EXPECT_TRUE(db_->remove(big_key).is_invalid_argument());
  WriteBatch b;
  b.put("ok", "v");
  b.put(big_key, "v");
  EXPECT_TRUE(db_->write(b).is_invalid_argument());
  EXPECT_FALSE(get("ok").has_value()) << "a rejected batch changes nothing";
  EXPECT_TRUE(db_->get("ok", nullptr).is_invalid_argument());
  const std::string max_key(DB::kMaxKeyBytes, 'k');
  const std::string big_value(4 << 20, 'v');
  ASSERT_TRUE(db_->put(max_key, big_value).ok());
  ASSERT_TRUE(db_->flush().ok());
  EXPECT_EQ(get(max_key), big_value);
}

TEST_F(DbTest, RecoversFromTheLogAndFromTables) {
  reopen();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(db_->put("k" + std::to_string(i), "v" + std::to_string(i)).ok());
  ASSERT_TRUE(db_->flush().ok());
  for (int i = 0; i < 100; i += 2) ASSERT_TRUE(db_->remove("k" + std::to_string(i)).ok());
  ASSERT_TRUE(db_->put("k1", "new").ok());
  reopen();  // tables plus the WAL
  EXPECT_EQ(get("k1"), "new");
  EXPECT_FALSE(get("k0").has_value());
  EXPECT_EQ(get("k99"), "v99");
  EXPECT_EQ(db_->stats().table_files, 1u);
  reopen();  // twice: replay is idempotent
  EXPECT_EQ(get("k1"), "new");
  EXPECT_FALSE(get("k2").has_value());
}

TEST_F(DbTest, BatchesAreAllOrNothingAndOrdered) {
  reopen();
  WriteBatch b;
  b.put("x", "1");
  b.put("x", "2");  // later ops of a batch win
  b.remove("y");
  b.put("z", "3");
  EXPECT_EQ(b.count(), 4u);
  ASSERT_TRUE(db_->put("y", "old").ok());
  ASSERT_TRUE(db_->write(b).ok());
  EXPECT_EQ(get("x"), "2");
  EXPECT_FALSE(get("y").has_value());
  EXPECT_EQ(get("z"), "3");
  b.clear();
  EXPECT_EQ(b.count(), 0u);
  ASSERT_TRUE(db_->write(b).ok());
  reopen();
  EXPECT_EQ(get("x"), "2");
  EXPECT_FALSE(get("y").has_value());
}

// Random operations against std::map, with a small memtable so that flushes and
// compactions happen, and reopens in between.
TEST_F(DbTest, ModelTest) {
  options_.memtable_bytes = 8 << 10;
  options_.compaction_trigger = 3;
  reopen();
  std::mt19937_64 rng(7);
  std::map<std::string, std::string> model;
  std::uint64_t flushes = 0, compactions = 0;
  std::vector<std::string> keys;
  for (int i = 0; i < 400; ++i) keys.push_back("key" + std::to_string(i * 7919 % 1000));
  for (int step = 0; step < 6000; ++step) {
    const std::string& k = keys[rng() % keys.size()];
    const int op = static_cast<int>(rng() % 100);
    if (op < 55) {
      const std::string v = std::string(rng() % 40, 'a' + static_cast<char>(rng() % 26));
      ASSERT_TRUE(db_->put(k, v).ok());
      model[k] = v;
    } else if (op < 75) {
      ASSERT_TRUE(db_->remove(k).ok());
      model.erase(k);
    } else if (op < 85) {
      WriteBatch b;
      for (int j = 0; j < 5; ++j) {
        const std::string& bk = keys[rng() % keys.size()];
        if (rng() % 3 == 0) {
          b.remove(bk);
          model.erase(bk);
        } else {
          b.put(bk, "batch" + std::to_string(step));
          model[bk] = "batch" + std::to_string(step);
        }
      }
      ASSERT_TRUE(db_->write(b).ok());
    } else if (op < 99) {
      auto it = model.find(k);
      auto got = get(k);
      ASSERT_EQ(got.has_value(), it != model.end()) << k << " at step " << step;
      if (got) {
        ASSERT_EQ(*got, it->second) << k;
      }
    } else if (step % 3 == 0) {
      ASSERT_TRUE(db_->compact().ok());
    } else {
      flushes += db_->stats().flushes;
      compactions += db_->stats().compactions;
      reopen();
    }
  }
  expect_model(model, keys);
  // Compaction runs on its own thread and may still be merging what the last flushes made:
  // the table count is checked once it has caught up (an upper bound on the wait, not a
  // timing), not at whatever moment the writes stopped.
  DBStats st = db_->stats();
  for (int waited_ms = 0; st.table_files > 3 && waited_ms < 20000; ++waited_ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    st = db_->stats();
  }
  EXPECT_GT(flushes + st.flushes, 10u);
  EXPECT_GT(compactions + st.compactions, 3u);
  EXPECT_LE(st.table_files, 3u) << "compaction brings the table count under the trigger";
  ASSERT_TRUE(db_->compact().ok());
  EXPECT_LE(db_->stats().table_files, 1u);
  reopen();
  expect_model(model, keys);
}

std::uint64_t constant_hash(std::string_view) { return 42; }

TEST_F(DbTest, KeysWithCollidingHashesStayApart) {
  options_.key_hash_for_testing = constant_hash;
  options_.memtable_bytes = 4 << 10;
  reopen();
  std::map<std::string, std::string> model;
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) {
    keys.push_back("c" + std::to_string(i));
    ASSERT_TRUE(db_->put(keys.back(), std::to_string(i)).ok());
    model[keys.back()] = std::to_string(i);
  }
  for (int i = 0; i < 300; i += 3) {
    ASSERT_TRUE(db_->remove(keys[i]).ok());
    model.erase(keys[i]);
  }
  expect_model(model, keys);
  ASSERT_TRUE(db_->compact().ok());
  expect_model(model, keys);
  reopen();
  expect_model(model, keys);
}

TEST_F(DbTest, TornLogTailIsDropped) {
  options_.sync = true;
  reopen();
  ASSERT_TRUE(db_->put("a", "1").ok());
  ASSERT_TRUE(db_->put("b", "2").ok());
  db_.reset();
  const auto logs = files(".log");
  ASSERT_FALSE(logs.empty());
  const std::string last = logs.back();
  const auto size = fs::file_size(last);
  // A record cut in the middle, as a crash during its write leaves it.
  fs::resize_file(last, size - 3);
  reopen();
  EXPECT_EQ(get("a"), "1");
  EXPECT_FALSE(get("b").has_value());
  ASSERT_TRUE(db_->put("c", "3").ok());
  reopen();
  EXPECT_EQ(get("a"), "1");
  EXPECT_EQ(get("c"), "3");
  // A crash between creating a new segment and writing to it leaves it empty behind the
  // torn one: still a torn tail, not corruption.
  db_.reset();
  {
    std::string newest;
    for (const std::string& f : files(".log")) {
      if (fs::file_size(f) > 0) newest = f;
    }
    ASSERT_FALSE(newest.empty());
    fs::resize_file(newest, fs::file_size(newest) - 2);
    std::uint64_t n = 0;
    std::from_chars(newest.data() + newest.rfind('/') + 1, newest.data() + newest.size(), n);
    for (const std::string& f : files(".log")) {
      if (f > newest) fs::remove(f);
    }
    std::ofstream(log_file_name(dir_, n + 1));  // empty
  }
  reopen();
  EXPECT_EQ(get("a"), "1");
  EXPECT_FALSE(get("c").has_value()) << "its record was torn";
  ASSERT_TRUE(db_->put("c", "3").ok());
  // Garbage after the last record is a torn tail too.
  db_.reset();
  {
    std::ofstream f(files(".log").back(), std::ios::app | std::ios::binary);
    f << std::string(100, '\x5a');
  }
  reopen();
  EXPECT_EQ(get("c"), "3");
}

TEST_F(DbTest, DamagedTableIsCorruptionNamingTheFile) {
  reopen();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(db_->put("k" + std::to_string(i), std::string(30, 'v')).ok());
  ASSERT_TRUE(db_->flush().ok());
  db_.reset();
  const auto tables = files(".tbl");
  ASSERT_EQ(tables.size(), 1u);
  {
    // Flip a byte inside the first record's value.
    std::fstream f(tables[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(30);
    f.put('X');
  }
  reopen();
  int corrupt = 0;
  for (int i = 0; i < 50; ++i) {
    std::string v;
    Status s = db_->get("k" + std::to_string(i), &v);
    if (s.is_corruption()) {
      ++corrupt;
      EXPECT_NE(s.to_string().find(tables[0]), std::string::npos) << s.to_string();
    } else {
      ASSERT_TRUE(s.ok()) << s.to_string();
      EXPECT_EQ(v, std::string(30, 'v'));
    }
  }
  EXPECT_GE(corrupt, 1);
  db_.reset();
  // A damaged footer fails the open.
  const auto size = fs::file_size(tables[0]);
  {
    std::fstream f(tables[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size - 10));
    f.put('X');
  }
  Status s = open();
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.to_string().find(tables[0]), std::string::npos) << s.to_string();
  // Truncated.
  fs::resize_file(tables[0], size / 2);
  s = open();
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
}

TEST_F(DbTest, DamagedManifestIsCorruption) {
  reopen();
  ASSERT_TRUE(db_->put("a", "1").ok());
  ASSERT_TRUE(db_->flush().ok());
  db_.reset();
  const std::string manifest = dir_ + "/MANIFEST";
  {
    std::fstream f(manifest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x7f');
  }
  Status s = open();
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.to_string().find("MANIFEST"), std::string::npos);
  fs::remove(manifest);
  s = open();
  EXPECT_TRUE(s.is_corruption()) << "tables without a manifest: " << s.to_string();
}

TEST_F(DbTest, OpenOptionsAndLock) {
  options_.create_if_missing = false;
  EXPECT_TRUE(open().is_invalid_argument());
  options_.create_if_missing = true;
  reopen();
  std::unique_ptr<DB> second;
  EXPECT_TRUE(DB::open(options_, dir_, &second).is_io_error()) << "the LOCK is held";
  db_.reset();
  options_.error_if_exists = true;
  EXPECT_TRUE(open().is_invalid_argument());
}

// A full disk at every point of a workload: each failing write is an io_error, later writes
// fail too, reads go on, and a reopen on a healthy disk has every acknowledged write.
TEST_F(DbTest, FullDiskLosesNothingAcknowledged) {
  testing::FaultEnv env;
  std::mt19937_64 rng(11);
  for (int round = 0; round < 30; ++round) {
    db_.reset();
    fs::remove_all(dir_);
    env.clear_faults();
    options_.env = &env;
    options_.memtable_bytes = 2 << 10;
    options_.compaction_trigger = 2;
    options_.sync = round % 2 == 0;
    reopen();
    env.set_write_budget(static_cast<std::int64_t>(rng() % 40000));
    std::map<std::string, std::string> model;
    std::vector<std::string> keys;
    for (int i = 0; i < 60; ++i) keys.push_back("k" + std::to_string(i));
    Status failed;
    std::optional<std::pair<std::string, std::string>> in_doubt;
    for (int i = 0; i < 2000 && failed.ok(); ++i) {
      const std::string& k = keys[rng() % keys.size()];
      const std::string v(rng() % 64, static_cast<char>('a' + i % 26));
      Status s = db_->put(k, v);
      if (s.ok()) {
        model[k] = v;
      } else {
        ASSERT_TRUE(s.is_io_error()) << s.to_string();
        failed = std::move(s);
        in_doubt = {k, v};
      }
      if (i % 97 == 0 && failed.ok()) {
        Status f = db_->flush();
        if (!f.ok()) {
          ASSERT_TRUE(f.is_io_error()) << f.to_string();
          failed = std::move(f);
        }
      }
    }
    if (failed.ok()) continue;  // the budget outlasted the workload
    EXPECT_TRUE(db_->put("after", "x").is_io_error()) << "errors are sticky";
    // Reads still work.
    for (const auto& [k, v] : model) {
      if (in_doubt && in_doubt->first == k) continue;
      ASSERT_EQ(get(k), v);
    }
    db_.reset();
    env.clear_faults();
    reopen();
    for (const std::string& k : keys) {
      auto it = model.find(k);
      auto got = get(k);
      if (in_doubt && in_doubt->first == k && got == in_doubt->second) continue;  // may be durable
      ASSERT_EQ(got.has_value(), it != model.end()) << "round " << round << " key " << k;
      if (got) {
        ASSERT_EQ(*got, it->second) << "round " << round << " key " << k;
      }
    }
    EXPECT_FALSE(get("after").has_value());
    ASSERT_TRUE(db_->put("after", "y").ok()) << "healthy again after the reopen";
  }
  db_.reset();  // before `env`, which its background thread uses
  EXPECT_GT(env.faults(), 10u);
}

TEST_F(DbTest, FailingSyncIsAnIoError) {
  testing::FaultEnv env;
  options_.env = &env;
  options_.sync = true;
  reopen();
  ASSERT_TRUE(db_->put("a", "1").ok());
  env.set_fail_sync(true);
  EXPECT_TRUE(db_->put("b", "2").is_io_error());
  EXPECT_TRUE(db_->put("c", "3").is_io_error());
  EXPECT_EQ(get("a"), "1");
  db_.reset();
  env.clear_faults();
  reopen();
  EXPECT_EQ(get("a"), "1");
  EXPECT_FALSE(get("c").has_value());
  db_.reset();  // before `env`, which its background thread uses
}

// A new database's directory entry is synced into its parent: without it a power loss could
// take the whole directory, synced writes and all.
TEST_F(DbTest, CreatingADatabaseSyncsItsParentDirectory) {
  testing::FaultEnv env;
  options_.env = &env;
  const std::string parent = fs::path(dir_).parent_path().string();
  for (const std::string& name : {dir_, dir_ + "/"}) {
    db_.reset();
    fs::remove_all(dir_);
    const int before = env.dir_syncs(parent);
    ASSERT_TRUE(DB::open(options_, name, &db_).ok()) << name;
    EXPECT_EQ(env.dir_syncs(parent), before + 1) << name;
    ASSERT_TRUE(db_->put("k", "v").ok());
  }
  // Opening an existing database leaves its parent alone.
  db_.reset();
  const int before = env.dir_syncs(parent);
  ASSERT_TRUE(DB::open(options_, dir_, &db_).ok());
  EXPECT_EQ(env.dir_syncs(parent), before);
  db_.reset();  // before `env`, which its background threads use
  // A path that exists but is no directory is a clear error.
  fs::remove_all(dir_);
  { std::ofstream(dir_) << "x"; }
  const Status s = DB::open(options_, dir_, &db_);
  EXPECT_TRUE(s.is_invalid_argument()) << s.to_string();
  EXPECT_NE(s.to_string().find("not a directory"), std::string::npos) << s.to_string();
  fs::remove(dir_);
}

// A MANIFEST that was renamed into place but whose directory sync failed may be the one a
// reopen reads: the files it names must still exist.
TEST_F(DbTest, FailedManifestSyncKeepsWhatTheManifestNames) {
  testing::FaultEnv env;
  options_.env = &env;
  // Compactions only when asked: a background one could merge the two tables below before
  // the fault is set, and compact() would then have nothing to install (seen once, with
  // ctest running two tests at once).
  options_.compaction_trigger = 100;
  reopen();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(db_->put("a" + std::to_string(i), "1").ok());
  env.set_fail_manifest_dir_sync(true);
  EXPECT_TRUE(db_->flush().is_io_error());  // the flush's install
  db_.reset();
  env.clear_faults();
  reopen();
  for (int i = 0; i < 100; ++i) ASSERT_EQ(get("a" + std::to_string(i)), "1") << i;
  // The same for a compaction's install.
  ASSERT_TRUE(db_->flush().ok());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(db_->put("b" + std::to_string(i), "2").ok());
  ASSERT_TRUE(db_->flush().ok());
  ASSERT_EQ(db_->stats().table_files, 2u);
  env.set_fail_manifest_dir_sync(true);
  EXPECT_TRUE(db_->compact().is_io_error());
  db_.reset();
  env.clear_faults();
  reopen();
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(get("a" + std::to_string(i)), "1") << i;
    ASSERT_EQ(get("b" + std::to_string(i)), "2") << i;
  }
  db_.reset();  // before `env`, which its background threads use
}

TEST_F(DbTest, ObsoleteFilesAreDeleted) {
  options_.memtable_bytes = 1 << 10;
  options_.compaction_trigger = 2;
  reopen();
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(db_->put("k" + std::to_string(i % 100), std::to_string(i)).ok());
  ASSERT_TRUE(db_->compact().ok());
  EXPECT_EQ(files(".tbl").size(), 1u);
  EXPECT_EQ(files(".log").size(), 1u) << "flushed segments are deleted";
  reopen();
  EXPECT_EQ(get("k42"), "2942");
}

// A database opened for one write at a time (as `sisu put` does) must not pile up WAL
// segments: empty ones go at open, and an open that replays many flushes them.
TEST_F(DbTest, ReopeningForSmallWritesDoesNotPileUpSegments) {
  for (int i = 0; i < 20; ++i) {
    reopen();
    ASSERT_TRUE(db_->put("k" + std::to_string(i), std::to_string(i)).ok());
    if (i % 3 == 0) reopen();  // and some opens with no write at all
    EXPECT_LE(files(".log").size(), 7u) << "open " << i;
  }
  ASSERT_TRUE(db_->flush().ok());
  reopen();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(get("k" + std::to_string(i)), std::to_string(i));
}

}  // namespace
}  // namespace sisu
