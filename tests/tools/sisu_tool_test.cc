// The `sisu` tool on real index files: inspect (golden text and JSON, and JSON equal to the
// map's stats()), verify, dump, and a damage sweep in which every damaged file is reported
// (verify exits 1 naming the fault, inspect exits non-zero with a message) and none crashes
// the tool. The tool binary's path comes from CMake (SISU_TOOL).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "engine/db.h"
#include "index/extendible_hash_map.h"
#include "index/index_file.h"
#include "tests/index/format_fixtures.h"
#include "tests/temp_path.h"

namespace sisu {
namespace {

namespace fs = std::filesystem;
using Map = ExtendibleHashMap<std::uint64_t, std::uint64_t>;

struct ToolRun {
  int rc = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

class ToolTest : public ::testing::Test {
 public:
  void SetUp() override {
    dir_ = testing_support::test_temp_path("sisu_tool_test");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Runs the tool with `args`; captures exit code, stdout and stderr.
  ToolRun sisu(const std::string& args) const {
    const std::string out = path("stdout"), err = path("stderr");
    const std::string cmd = std::string(SISU_TOOL) + " " + args + " >" + out + " 2>" + err;
    const int status = std::system(cmd.c_str());
    ToolRun r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  // A deterministic map: the same file whatever the process (fixed seed).
  static Map sample(std::uint64_t keys) {
    Map m(0, Hash<std::uint64_t>(7));
    for (std::uint64_t k = 0; k < keys; ++k) m[k * 13] = k;
    for (std::uint64_t k = 0; k < keys; k += 5) m.erase(k * 13);
    return m;
  }

  fs::path dir_;
};

// Golden files live in tests/tools/golden; SISU_UPDATE_GOLDEN=1 rewrites them.
void expect_golden(const std::string& name, std::string actual, const std::string& file_path) {
  const std::string golden = std::string(SISU_GOLDEN_DIR) + "/" + name;
  std::string shown;
  for (std::size_t from = 0;;) {
    const std::size_t at = actual.find(file_path, from);
    shown += actual.substr(from, at == std::string::npos ? std::string::npos : at - from);
    if (at == std::string::npos) break;
    shown += "INDEX";
    from = at + file_path.size();
  }
  actual = shown;
  if (std::getenv("SISU_UPDATE_GOLDEN") != nullptr) {
    spit(golden, actual);
    GTEST_SKIP() << "rewrote " << golden;
  }
  EXPECT_EQ(actual, slurp(golden))
      << "differs from " << golden << " (SISU_UPDATE_GOLDEN=1 rewrites it)";
}

TEST_F(ToolTest, InspectGoldenText) {
  const std::string file = path("sample.idx");
  ASSERT_TRUE(sample(20000).save(file).ok());
  const ToolRun r = sisu("inspect " + file);
  ASSERT_EQ(r.rc, 0) << r.err;
  expect_golden("inspect_sample.txt", r.out, file);
}

TEST_F(ToolTest, InspectGoldenJson) {
  const std::string file = path("sample.idx");
  ASSERT_TRUE(sample(20000).save(file).ok());
  const ToolRun r = sisu("--json inspect " + file + "");  // wrong order: --json is inspect's
  EXPECT_EQ(r.rc, 2) << "an option of a subcommand before the subcommand is a usage error";
  const ToolRun j = sisu("inspect " + file + " --json");
  ASSERT_EQ(j.rc, 0) << j.err;
  expect_golden("inspect_sample.json", j.out, file);
}

TEST_F(ToolTest, InspectJsonEqualsStats) {
  for (std::uint64_t keys : {0u, 1u, 100u, 50000u}) {
    const std::string file = path(std::to_string(keys) + "_keys.idx");
    const Map m = sample(keys);
    ASSERT_TRUE(m.save(file).ok());
    // Options may stand before or after PATH.
    const ToolRun r = sisu("inspect --json " + file);
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const IndexStats s = m.stats();
    EXPECT_EQ(j["entries"].get<std::size_t>(), s.size);
    EXPECT_EQ(j["capacity"].get<std::size_t>(), s.capacity);
    EXPECT_DOUBLE_EQ(j["load_factor"].get<double>(), s.load_factor);
    EXPECT_EQ(j["global_depth"].get<unsigned>(), s.global_depth);
    EXPECT_EQ(j["tables"].get<std::size_t>(), s.tables);
    EXPECT_EQ(j["local_depth_histogram"].get<std::vector<std::size_t>>(), s.local_depth_histogram);
    EXPECT_EQ(j["file_bytes"].get<std::uint64_t>(), fs::file_size(file));
    EXPECT_EQ(j["tombstones"].get<std::size_t>(), s.tombstones);
    // The file and the map compute what a miss scans, each from its own copy of the layout.
    EXPECT_DOUBLE_EQ(j["mean_miss_probe_groups"].get<double>(), s.mean_miss_probe_groups);
    if (keys > 0) {
      EXPECT_GE(s.mean_miss_probe_groups, 1.0);
    }
  }
}

TEST_F(ToolTest, VerifyAndDumpAnIntactFile) {
  const std::string file = path("sample.idx");
  const Map m = sample(3000);
  ASSERT_TRUE(m.save(file).ok());
  const std::string before = slurp(file);
  const ToolRun v = sisu("verify " + file);
  EXPECT_EQ(v.rc, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("intact"), std::string::npos) << v.out;
  EXPECT_EQ(v.err, "") << "no progress text into a file or a pipe";

  const ToolRun d = sisu("dump " + file);
  ASSERT_EQ(d.rc, 0) << d.err;
  std::istringstream lines(d.out);
  std::set<std::uint64_t> keys;
  for (std::string line; std::getline(lines, line);) {
    std::uint64_t k = 0, val = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "%lu\t%lu", &k, &val), 2) << line;
    ASSERT_EQ(m.at(k), val);
    ASSERT_TRUE(keys.insert(k).second) << "key dumped twice";
  }
  EXPECT_EQ(keys.size(), m.size());

  const ToolRun limited = sisu("dump " + file + " --limit 7 --json");
  ASSERT_EQ(limited.rc, 0) << limited.err;
  std::istringstream jl(limited.out);
  int n = 0;
  for (std::string line; std::getline(jl, line); ++n) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(m.at(j["key"].get<std::uint64_t>()), j["value"].get<std::uint64_t>());
  }
  EXPECT_EQ(n, 7);
  EXPECT_EQ(slurp(file), before) << "the tool wrote to what it read";
}

// Every damaged file: verify exits 1 with a line naming the file; inspect and dump exit
// non-zero or (dump) print only entries of intact tables; nothing crashes; and the typed
// loader agrees that the file is damaged.
void expect_rejected(const ToolTest& t, const std::string& file, const std::string& what,
                     bool loader_too = true) {
  SCOPED_TRACE(what);
  const ToolRun v = t.sisu("verify " + file);
  ASSERT_EQ(v.rc, 1) << "verify of a damaged file: " << v.out << v.err;
  const std::string report = v.out + v.err;
  ASSERT_NE(report.find(file), std::string::npos) << "the fault names the file: " << report;
  const ToolRun i = t.sisu("inspect " + file);
  ASSERT_NE(i.rc, 0);
  ASSERT_LT(i.rc, 128) << "inspect crashed";
  ASSERT_FALSE((i.out + i.err).empty());
  const ToolRun d = t.sisu("dump " + file);
  ASSERT_LT(d.rc, 128) << "dump crashed";
  if (loader_too) {
    Map m;
    const Status s = Map::load(file, &m);
    ASSERT_FALSE(s.ok()) << "the loader accepted it";
    ASSERT_TRUE(s.is_corruption() || s.is_io_error()) << s.to_string();
  }
}

TEST_F(ToolTest, DamageSweep) {
  const std::string good = path("good.idx");
  ASSERT_TRUE(sample(400).save(good).ok());
  const std::string bytes = slurp(good);
  const std::string bad = path("bad.idx");
  // Bit flips: every byte of the header and footer, and every 11th byte between.
  for (std::size_t at = 0; at < bytes.size(); at += (at < 64 || at + 32 >= bytes.size()) ? 1 : 11) {
    std::string b = bytes;
    b[at] = static_cast<char>(b[at] ^ (1 << (at % 8)));
    spit(bad, b);
    expect_rejected(*this, bad, "bit flip at " + std::to_string(at));
    if (HasFatalFailure()) return;
  }
  // Truncations and extensions.
  for (std::size_t len :
       {std::size_t{0}, std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{95},
        std::size_t{96}, bytes.size() / 2, bytes.size() - 33, bytes.size() - 1}) {
    spit(bad, bytes.substr(0, len));
    expect_rejected(*this, bad, "truncated to " + std::to_string(len));
    if (HasFatalFailure()) return;
  }
  spit(bad, bytes + "x");
  expect_rejected(*this, bad, "one byte appended");
  spit(bad, bytes + bytes);
  expect_rejected(*this, bad, "file appended to itself");
  // Garbage, another format, a directory.
  std::string garbage(5000, '\0');
  for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 131 + 7);
  spit(bad, garbage);
  expect_rejected(*this, bad, "garbage");
  spit(bad, "\x89PNG\r\n\x1a\n" + std::string(200, 'p'));
  expect_rejected(*this, bad, "a PNG");
  expect_rejected(*this, dir_.string(), "a directory");
  expect_rejected(*this, path("missing.idx"), "a missing file");
}

// Format version 1 files still inspect, verify and dump; a version 2 file whose checksums are
// good but whose overflow filter hides an entry fails verify, naming the group.
TEST_F(ToolTest, FormatVersion1AndFilterFaults) {
  const std::string v1 = testing_support::v1_fixture("format_v1.idx");
  const ToolRun i = sisu("inspect " + v1 + " --json");
  ASSERT_EQ(i.rc, 0) << i.err;
  const auto j = nlohmann::json::parse(i.out);
  EXPECT_EQ(j["format_version"].get<unsigned>(), 1u);
  EXPECT_EQ(j["entries"].get<std::size_t>(), testing_support::v1_fixture_entries().size());
  EXPECT_EQ(j["capacity"].get<std::size_t>() % 16, 0u) << "16 slots per group";
  EXPECT_GE(j["mean_miss_probe_groups"].get<double>(), 1.0);
  const ToolRun v = sisu("verify " + v1);
  EXPECT_EQ(v.rc, 0) << v.out << v.err;
  const ToolRun d = sisu("dump " + v1);
  ASSERT_EQ(d.rc, 0) << d.err;
  EXPECT_EQ(static_cast<std::size_t>(std::count(d.out.begin(), d.out.end(), '\n')),
            testing_support::v1_fixture_entries().size());

  const std::string file = path("cut.idx");
  ASSERT_TRUE(sample(20000).save(file).ok());
  std::string b = slurp(file);
  ASSERT_TRUE(testing_support::cut_off_an_entry(&b));
  spit(file, b);
  const ToolRun bad = sisu("verify " + file);
  EXPECT_EQ(bad.rc, 1) << bad.out;
  EXPECT_NE(bad.out.find("overflow filter cuts off entries"), std::string::npos) << bad.out;
  ASSERT_TRUE(sample(20000).save(file).ok());
  b = slurp(file);
  ASSERT_TRUE(testing_support::gap_before_an_entry(&b));
  spit(file, b);
  const ToolRun gap = sisu("verify " + file);
  EXPECT_EQ(gap.rc, 1) << gap.out;
  EXPECT_NE(gap.out.find("beyond a group with an empty slot"), std::string::npos) << gap.out;
}

TEST_F(ToolTest, VerifyListsEveryFaultWithItsOffset) {
  const std::string file = path("two.idx");
  ASSERT_TRUE(sample(5000).save(file).ok());
  IndexFile view;
  ASSERT_TRUE(IndexFile::open(file, &view).ok());
  const std::vector<IndexFileTable> tables = view.tables();
  ASSERT_GE(tables.size(), 3u);
  // Damage the payload of two tables: both reported, each at its table's offset.
  std::string b = slurp(file);
  b[tables[1].offset + 40] ^= 1;
  b[tables[2].offset + 100] ^= 4;
  spit(file, b);
  const ToolRun v = sisu("verify " + file);
  EXPECT_EQ(v.rc, 1);
  for (int t : {1, 2}) {
    const std::string line = "at offset " + std::to_string(tables[t].offset);
    EXPECT_NE(v.out.find(line), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("table " + std::to_string(t) + ": checksum mismatch"), std::string::npos)
        << v.out;
  }
}

TEST_F(ToolTest, VerifyReportsProgressUpToTheFooter) {
  const std::string file = path("progress.idx");
  ASSERT_TRUE(sample(50000).save(file).ok());
  IndexFile view;
  ASSERT_TRUE(IndexFile::open(file, &view).ok());
  std::vector<std::uint64_t> seen;
  const auto faults = view.verify([&](std::uint64_t done, std::uint64_t total) {
    EXPECT_EQ(total, view.file_bytes());
    seen.push_back(done);
  });
  EXPECT_TRUE(faults.empty());
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen.back(), view.file_bytes() - sizeof(index_file::Footer));
}

}  // namespace
}  // namespace sisu

// --- database directories and table files ----------------------------------------------------

namespace sisu {
namespace {

class DbToolTest : public ToolTest {
 public:
  // A database with several table files and writes still in the WAL.
  std::string make_db() {
    const std::string db_dir = path("db");
    Options options;
    options.memtable_bytes = 16 << 10;
    options.compaction_trigger = 100;  // keep every flushed table
    std::unique_ptr<DB> db;
    EXPECT_TRUE(DB::open(options, db_dir, &db).ok());
    for (int i = 0; i < 1500; ++i) {
      EXPECT_TRUE(db->put("key" + std::to_string(i), "value" + std::to_string(i)).ok());
    }
    EXPECT_TRUE(db->remove("key7").ok());
    EXPECT_TRUE(db->flush().ok());
    EXPECT_TRUE(db->put("in-the-wal", std::string("\x01\x02", 2)).ok());
    tables_ = db->stats().table_files;
    return db_dir;
  }
  std::vector<std::string> table_paths(const std::string& db_dir) const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(db_dir)) {
      if (e.path().extension() == ".tbl") out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  // Every file's bytes: the read-only commands must leave them as they were.
  std::map<std::string, std::string> snapshot(const std::string& db_dir) const {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(db_dir)) out[e.path().string()] = slurp(e.path());
    return out;
  }
  std::uint64_t tables_ = 0;
};

TEST_F(DbToolTest, InspectJsonListsEveryTableFile) {
  const std::string db = make_db();
  ASSERT_GE(tables_, 3u);
  const auto before = snapshot(db);
  const ToolRun r = sisu("inspect " + db + " --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["table_files"].size(), tables_);
  std::uint64_t records = 0, bytes = 0;
  for (const auto& t : j["table_files"]) {
    for (const char* key : {"entries", "capacity", "load_factor", "global_depth", "tables",
                            "local_depth_histogram", "file_bytes"}) {
      EXPECT_TRUE(t.contains(key)) << key;
    }
    EXPECT_GT(t["load_factor"].get<double>(), 0.3);
    EXPECT_EQ(t["file_bytes"].get<std::uint64_t>(), fs::file_size(t["path"].get<std::string>()));
    records += t["records"].get<std::uint64_t>();
    bytes += t["file_bytes"].get<std::uint64_t>();
  }
  EXPECT_EQ(j["entries"].get<std::uint64_t>(), records);
  EXPECT_EQ(j["file_bytes"].get<std::uint64_t>(), bytes);
  EXPECT_EQ(records, 1501u) << "1500 puts and one tombstone, one record per key";
  EXPECT_EQ(j["memtable_ops"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(j["totals"]["table_files"].get<std::uint64_t>(), tables_);
  EXPECT_EQ(j["totals"]["entries"].get<std::uint64_t>(), records);
  EXPECT_GT(j["totals"]["index_load_factor"].get<double>(), 0.3);
  EXPECT_EQ(j["faults"].get<std::uint64_t>(), 0u);
  // Human form, and a table file on its own.
  const ToolRun text = sisu("inspect " + db);
  EXPECT_EQ(text.rc, 0);
  EXPECT_NE(text.out.find("index load"), std::string::npos) << text.out;
  const ToolRun one = sisu("inspect --json " + table_paths(db)[0]);
  ASSERT_EQ(one.rc, 0) << one.err;
  EXPECT_EQ(nlohmann::json::parse(one.out)["kind"], "table file");
  EXPECT_EQ(snapshot(db), before) << "inspect wrote to the database";
}

TEST_F(DbToolTest, GetPutRemoveAndDump) {
  const std::string db = make_db();
  ToolRun r = sisu("get " + db + " key42");
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out, "value42\n");
  r = sisu("get " + db + " key7");
  EXPECT_EQ(r.rc, 1) << "removed";
  EXPECT_NE(r.err.find("not found"), std::string::npos);
  EXPECT_EQ(sisu("put " + db + " fresh 'new value'").rc, 0);
  EXPECT_EQ(sisu("get " + db + " fresh").out, "new value\n");
  EXPECT_EQ(sisu("remove " + db + " key42").rc, 0);
  EXPECT_EQ(sisu("get " + db + " key42").rc, 1);
  r = sisu("dump " + db);
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("in-the-wal\t0x0102\n"), std::string::npos) << "binary values in hex";
  EXPECT_NE(r.out.find("fresh\tnew value\n"), std::string::npos);
  EXPECT_EQ(r.out.find("key42\t"), std::string::npos);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1500 - 2 + 2);
  r = sisu("dump " + db + " --limit 5 --json");
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 5);
  EXPECT_EQ(sisu("get " + db).rc, 2) << "a missing argument is a usage error";
  EXPECT_EQ(sisu("get " + path("nothing-here") + " k").rc, 1);
}

TEST_F(DbToolTest, VerifyFindsDamageWithFileAndOffset) {
  const std::string db = make_db();
  ToolRun r = sisu("verify " + db);
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  const std::string table = table_paths(db)[0];
  const std::string intact = slurp(table);
  // A flipped byte in a record, in the index section, and in the footer.
  for (std::size_t at : {std::size_t{40}, intact.size() - 2000, intact.size() - 20}) {
    std::string bytes = intact;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x20);
    spit(table, bytes);
    r = sisu("verify " + db);
    EXPECT_EQ(r.rc, 1) << "flip at " << at << ": " << r.out;
    EXPECT_NE(r.out.find(table), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("offset"), std::string::npos) << r.out;
    EXPECT_EQ(sisu("verify " + table).rc, 1);
    EXPECT_NE(sisu("inspect " + db).rc, 0);
  }
  spit(table, intact.substr(0, intact.size() / 2));
  EXPECT_EQ(sisu("verify " + db).rc, 1);
  spit(table, intact);
  EXPECT_EQ(sisu("verify " + db).rc, 0);
  // A torn WAL tail is normal after a crash: a note, not a fault.
  std::string wal;
  for (const auto& e : fs::directory_iterator(db)) {
    if (e.path().extension() == ".log" && fs::file_size(e.path()) > 0) wal = e.path().string();
  }
  ASSERT_FALSE(wal.empty());
  fs::resize_file(wal, fs::file_size(wal) - 1);
  r = sisu("verify " + db);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("torn tail"), std::string::npos) << r.out;
  // A damaged manifest.
  std::string manifest = slurp(db + "/MANIFEST");
  manifest[30] ^= 1;
  spit(db + "/MANIFEST", manifest);
  r = sisu("verify " + db);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("MANIFEST"), std::string::npos) << r.out;
  EXPECT_NE(sisu("inspect " + db).rc, 0);
  // Not a database.
  fs::create_directories(path("empty"));
  EXPECT_EQ(sisu("verify " + path("empty")).rc, 1);
}

}  // namespace
}  // namespace sisu

namespace sisu {
namespace {

TEST_F(ToolTest, CheckpointFilesAreInspectedAsTheirLastCommit) {
  Map m = sample(3000);
  const std::string ckpt = path("map.ckpt");
  ASSERT_TRUE(m.checkpoint(ckpt).ok());
  m[999999] = 1;
  ASSERT_TRUE(m.checkpoint(ckpt).ok());
  ToolRun r = sisu("inspect --json " + ckpt);
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["entries"].get<std::size_t>(), m.size());
  EXPECT_EQ(j["checkpoint_sequence"].get<std::uint64_t>(), 2u);
  EXPECT_EQ(j["file_bytes"].get<std::uint64_t>(), fs::file_size(ckpt));
  EXPECT_EQ(sisu("verify " + ckpt).rc, 0);
  r = sisu("dump " + ckpt);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), static_cast<long>(m.size()));
  // Damage before the last commit: every command refuses it.
  std::string bytes = slurp(ckpt);
  bytes[200] ^= 4;
  spit(ckpt, bytes);
  EXPECT_EQ(sisu("verify " + ckpt).rc, 1);
  EXPECT_NE(sisu("inspect " + ckpt).rc, 0);
}

}  // namespace
}  // namespace sisu
