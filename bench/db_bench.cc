// db_bench: sisu's engine and RocksDB on the same workloads, in one process, one after the
// other (docs/benchmarks.md has the results and the command).
//
//   fillrandom        N puts of random 16-byte keys, 100-byte values, WAL on, no sync
//   readrandom        N gets of those keys, in another random order, after a reopen
//   readmissing       N gets of keys never written: each table file that may hold a key
//                     (all of sisu's; RocksDB's level 0 and one per level) is asked and misses
//   overwrite         N puts over the same keys
//   fillsync          puts with sync = true, by 1 thread and by 4 (group commit)
//   fill2threads      N puts split over 2 threads
//   readwhilewriting  1 thread reads while 1 thread writes; reads/s
//
// RocksDB runs with its defaults except create_if_missing and write_buffer_size = sisu's
// memtable size. Write amplification = bytes the process passed to write() (/proc/self/io
// wchar, background threads included) / user bytes; space amplification = directory bytes /
// user bytes after the fill (both engines with their memtables flushed).
//
// Usage: db_bench [--num N] [--sync-num N] [--reps R] [--dir D] [--engines sisu,rocksdb]
//                 [--memtable-mb M]   (both engines' memtable size; default 64)
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/db.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::size_t memtable_bytes = 64 << 20;  // --memtable-mb
constexpr std::size_t kValueBytes = 100;

// The engines behind one small interface.
class Engine {
 public:
  virtual ~Engine() = default;
  virtual const char* name() const = 0;
  virtual bool open(const std::string& dir, bool sync) = 0;
  virtual void close() = 0;
  virtual bool put(const std::string& k, const std::string& v) = 0;
  virtual bool get(const std::string& k, std::string* v) = 0;
  virtual void flush() = 0;
};

class SisuEngine final : public Engine {
 public:
  const char* name() const override { return "sisu"; }
  bool open(const std::string& dir, bool sync) override {
    sisu::Options o;
    o.memtable_bytes = memtable_bytes;
    o.sync = sync;
    return sisu::DB::open(o, dir, &db_).ok();
  }
  void close() override { db_.reset(); }
  bool put(const std::string& k, const std::string& v) override { return db_->put(k, v).ok(); }
  bool get(const std::string& k, std::string* v) override { return db_->get(k, v).ok(); }
  void flush() override { (void)db_->flush(); }

 private:
  std::unique_ptr<sisu::DB> db_;
};

class RocksEngine final : public Engine {
 public:
  const char* name() const override { return "rocksdb"; }
  bool open(const std::string& dir, bool sync) override {
    rocksdb::Options o;
    o.create_if_missing = true;
    o.write_buffer_size = memtable_bytes;
    wo_.sync = sync;
    rocksdb::DB* db = nullptr;
    if (!rocksdb::DB::Open(o, dir, &db).ok()) return false;
    db_.reset(db);
    return true;
  }
  void close() override { db_.reset(); }
  bool put(const std::string& k, const std::string& v) override {
    return db_->Put(wo_, k, v).ok();
  }
  bool get(const std::string& k, std::string* v) override {
    return db_->Get(rocksdb::ReadOptions(), k, v).ok();
  }
  void flush() override { (void)db_->Flush(rocksdb::FlushOptions()); }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions wo_;
};

std::string key_of(std::uint64_t i) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx",
                static_cast<unsigned long long>(i * 0x9e3779b97f4a7c15ULL));
  return std::string(buf, 16);
}

std::uint64_t write_chars() {
  std::ifstream io("/proc/self/io");
  std::string k;
  std::uint64_t v;
  while (io >> k >> v) {
    if (k == "wchar:") return v;
  }
  return 0;
}

std::uint64_t dir_bytes(const std::string& dir) {
  std::uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Runs `ops` operations split over `threads` threads; returns ops/s.
double run_threads(int threads, std::uint64_t ops,
                   const std::function<void(int thread, std::uint64_t i)>& op) {
  const auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (std::uint64_t i = static_cast<std::uint64_t>(t); i < ops;
           i += static_cast<std::uint64_t>(threads)) {
        op(t, i);
      }
    });
  }
  for (auto& t : ts) t.join();
  return static_cast<double>(ops) / seconds_since(t0);
}

struct Results {
  std::map<std::string, std::vector<double>> values;
  void add(const std::string& k, double v) { values[k].push_back(v); }
  double median(const std::string& k) const {
    auto it = values.find(k);
    if (it == values.end() || it->second.empty()) return 0;
    std::vector<double> v = it->second;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
};

void run_engine(Engine& e, const std::string& base, std::uint64_t num, std::uint64_t sync_num,
                Results* r) {
  const std::string dir = base + "/" + e.name();
  // Values are random bytes, so that neither engine gains from compression (RocksDB
  // compresses table files with Snappy by default; sisu does not compress).
  std::string random_bytes(1 << 20, '\0');
  std::mt19937_64 vrng(7);
  for (char& c : random_bytes) c = static_cast<char>(vrng());
  auto value_of = [&](std::uint64_t i) {
    return random_bytes.substr((i * 997) % (random_bytes.size() - kValueBytes), kValueBytes);
  };
  const double user_bytes = static_cast<double>(num) * (16 + kValueBytes);
  std::vector<std::uint64_t> order(num);
  for (std::uint64_t i = 0; i < num; ++i) order[i] = i;
  std::mt19937_64 rng(42);
  std::shuffle(order.begin(), order.end(), rng);

  // fillrandom
  fs::remove_all(dir);
  if (!e.open(dir, false)) {
    std::fprintf(stderr, "%s: open failed\n", e.name());
    return;
  }
  std::uint64_t w0 = write_chars();
  double ops = run_threads(1, num, [&](int, std::uint64_t i) { e.put(key_of(order[i]), value_of(i)); });
  r->add("fillrandom", ops);
  e.flush();
  r->add("write_amp_fill", static_cast<double>(write_chars() - w0) / user_bytes);
  r->add("space_amp", static_cast<double>(dir_bytes(dir)) / user_bytes);

  // readrandom, after a reopen
  e.close();
  if (!e.open(dir, false)) return;
  std::shuffle(order.begin(), order.end(), rng);
  std::atomic<std::uint64_t> found{0};
  ops = run_threads(1, num, [&](int, std::uint64_t i) {
    std::string v;
    found += e.get(key_of(order[i]), &v);
  });
  if (found != num) std::fprintf(stderr, "%s: readrandom found %" PRIu64 " of %" PRIu64 "\n",
                                 e.name(), found.load(), num);
  r->add("readrandom", ops);

  // readmissing: the negative lookups an LSM makes in every table that lacks a key.
  std::atomic<std::uint64_t> phantom{0};
  ops = run_threads(1, num, [&](int, std::uint64_t i) {
    std::string v;
    phantom += e.get(key_of(num + order[i]), &v);
  });
  if (phantom != 0)
    std::fprintf(stderr, "%s: readmissing found %" PRIu64 " keys never written\n", e.name(),
                 phantom.load());
  r->add("readmissing", ops);

  // overwrite
  w0 = write_chars();
  ops = run_threads(1, num, [&](int, std::uint64_t i) { e.put(key_of(order[i]), value_of(i)); });
  r->add("overwrite", ops);
  e.flush();
  r->add("write_amp_overwrite", static_cast<double>(write_chars() - w0) / user_bytes);

  // readwhilewriting: one reader, one writer, for as long as the reader's num/2 gets take.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      e.put(key_of(order[i % num]), value_of(i));
    }
  });
  ops = run_threads(1, num / 2, [&](int, std::uint64_t i) {
    std::string v;
    e.get(key_of(order[(i * 7) % num]), &v);
  });
  stop = true;
  writer.join();
  r->add("readwhilewriting", ops);
  e.close();

  // fill2threads
  fs::remove_all(dir);
  if (!e.open(dir, false)) return;
  ops = run_threads(2, num, [&](int, std::uint64_t i) { e.put(key_of(order[i]), value_of(i)); });
  r->add("fill2threads", ops);
  e.close();

  // fillsync, 1 and 4 threads
  for (int threads : {1, 4}) {
    fs::remove_all(dir);
    if (!e.open(dir, true)) return;
    ops = run_threads(threads, sync_num,
                      [&](int, std::uint64_t i) { e.put(key_of(order[i % num]), value_of(i)); });
    r->add("fillsync_" + std::to_string(threads), ops);
    e.close();
  }
  fs::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t num = 1000000, sync_num = 20000;
  int reps = 3;
  std::string dir = "/tmp/sisu_db_bench", engines = "sisu,rocksdb";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--num") num = std::stoull(v);
    else if (a == "--sync-num") sync_num = std::stoull(v);
    else if (a == "--reps") reps = std::stoi(v);
    else if (a == "--dir") dir = v;
    else if (a == "--engines") engines = v;
    else if (a == "--memtable-mb") memtable_bytes = std::stoull(v) << 20;
  }
  fs::create_directories(dir);
  std::vector<std::unique_ptr<Engine>> es;
  if (engines.find("sisu") != std::string::npos) es.push_back(std::make_unique<SisuEngine>());
  if (engines.find("rocksdb") != std::string::npos) es.push_back(std::make_unique<RocksEngine>());
  std::map<std::string, Results> results;
  for (int rep = 0; rep < reps; ++rep) {
    for (auto& e : es) {  // alternate engines within a repetition: drift hits both
      run_engine(*e, dir, num, sync_num, &results[e->name()]);
      std::fprintf(stderr, "rep %d %s done\n", rep + 1, e->name());
    }
  }
  const char* rows[] = {"fillrandom",     "readrandom",          "readmissing", "overwrite",
                        "fill2threads",   "readwhilewriting",    "fillsync_1",  "fillsync_4",
                        "write_amp_fill", "write_amp_overwrite", "space_amp"};
  std::printf("db_bench: num=%" PRIu64 " sync_num=%" PRIu64 " reps=%d memtable=%zu MiB (median)\n",
              num, sync_num, reps, memtable_bytes >> 20);
  std::printf("%-20s", "benchmark");
  for (auto& e : es) std::printf(" %14s", e->name());
  if (es.size() == 2) std::printf(" %10s", "ratio");
  std::printf("\n");
  for (const char* row : rows) {
    std::printf("%-20s", row);
    for (auto& e : es) {
      const double v = results[e->name()].median(row);
      if (std::strstr(row, "amp") != nullptr) {
        std::printf(" %14.2f", v);
      } else {
        std::printf(" %14.0f", v);
      }
    }
    if (es.size() == 2) {
      const double b = results[es[1]->name()].median(row);
      std::printf(" %9.2fx", b > 0 ? results[es[0]->name()].median(row) / b : 0.0);
    }
    std::printf("\n");
  }
  fs::remove_all(dir);
  return 0;
}
