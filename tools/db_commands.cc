#include "tools/db_commands.h"

#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <optional>

#include "engine/db.h"
#include "engine/env.h"
#include "engine/manifest.h"
#include "engine/table.h"
#include "engine/wal.h"
#include "engine/write_batch.h"
#include "util/hash.h"

namespace sisu_tool {
namespace {

using sisu::Status;

std::string fault_line(const std::string& path, std::uint64_t offset, const std::string& what) {
  char at[64];
  std::snprintf(at, sizeof(at), " at offset %" PRIu64 " (0x%" PRIx64 "): ", offset, offset);
  return path + at + what;
}

// A Status message already names its file; prefix the path only when it does not.
std::string status_line(const std::string& path, const Status& s) {
  std::string msg(s.message());
  return msg.find(path) != std::string::npos ? msg : path + ": " + msg;
}

std::string file_name(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A table file opened once for every command: the engine's reader (footer and index checked
// as the engine checks them) and an IndexFile view of its index section.
struct OpenedTable {
  std::shared_ptr<sisu::TableReader> table;
  sisu::IndexFile index;
  Status index_status;  // of opening `index`
  std::uint64_t index_bytes() const {
    return table->file_bytes() - table->data_bytes() - sizeof(sisu::TableFooter);
  }
};

Status open_table(const std::string& path, OpenedTable* o) {
  if (Status s = sisu::TableReader::open(sisu::Env::posix(), path, 0, &o->table); !s.ok()) {
    return s;
  }
  o->index_status =
      sisu::IndexFile::open_section(path, o->table->data_bytes(), o->index_bytes(), &o->index);
  return Status::OK();
}

// Every fault of an opened table file: the index section (as `sisu verify` checks an index
// file), every record's checksum and order, and the index's pointers to the records.
std::vector<std::string> table_faults(const std::string& path, const OpenedTable& o) {
  std::vector<std::string> faults;
  const std::shared_ptr<sisu::TableReader>& t = o.table;
  if (!o.index_status.ok()) {
    faults.push_back(status_line(path, o.index_status));
  } else {
    for (const sisu::IndexFileFault& f : o.index.verify()) {
      faults.push_back(fault_line(path, t->data_bytes() + f.offset, "index: " + f.what));
    }
  }
  std::uint64_t offset = 0, records = 0, tombstones = 0;
  std::uint64_t last_hash = 0;
  std::string last_key;
  while (offset < t->data_bytes()) {
    sisu::TableRecord r;
    std::uint64_t next;
    if (Status s = t->read_record(offset, &r, &next); !s.ok()) {
      faults.push_back(status_line(path, s));
      return faults;  // the records after a bad header cannot be found
    }
    if (records > 0 && (r.hash < last_hash || (r.hash == last_hash && r.key <= last_key))) {
      faults.push_back(fault_line(path, offset, "record out of (hash, key) order"));
    }
    if (records == 0 || r.hash != last_hash) {
      std::uint64_t indexed = 0;
      Status s = t->index().find(r.hash, &indexed);
      if (s.ok() && indexed != offset) {
        faults.push_back(fault_line(path, offset, "the index points elsewhere for this hash"));
      } else if (s.is_not_found()) {
        faults.push_back(fault_line(path, offset, "record missing from the index"));
      }
    }
    ++records;
    tombstones += r.type == sisu::RecordType::kDelete;
    last_hash = r.hash;
    last_key.assign(r.key);
    offset = next;
  }
  if (records != t->entries() || tombstones != t->tombstones()) {
    faults.push_back(fault_line(path, t->file_bytes() - sizeof(sisu::TableFooter),
                                "footer counts " + std::to_string(t->entries()) +
                                    " records, the data holds " + std::to_string(records)));
  }
  return faults;
}

// The same, opening the file first (the footer's faults included).
std::vector<std::string> table_faults(const std::string& path) {
  OpenedTable o;
  if (Status s = open_table(path, &o); !s.ok()) return {status_line(path, s)};
  return table_faults(path, o);
}

struct Segment {
  std::uint64_t number = 0;
  std::uint64_t bytes = 0;
  std::uint64_t records = 0;  // batches
  std::uint64_t ops = 0;
  std::uint64_t torn_bytes = 0;  // after the last intact record
  bool malformed = false;        // an intact record holding a malformed batch
};

// The database's files as the manifest and the directory describe them.
struct DbFiles {
  sisu::Manifest manifest;
  std::vector<std::uint64_t> logs;  // to replay, oldest first
};

Status read_db(const std::string& dir, DbFiles* out) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::invalid_argument(dir + ": not a directory");
  }
  sisu::Env* env = sisu::Env::posix();
  if (!env->file_exists(sisu::manifest_file_name(dir))) {
    return Status::corruption(dir + ": not a sisu database (no MANIFEST)");
  }
  if (Status s = sisu::read_manifest(env, dir, &out->manifest); !s.ok()) return s;
  std::vector<std::string> names;
  if (Status s = env->list_dir(dir, &names); !s.ok()) return s;
  for (const std::string& n : names) {
    std::uint64_t num;
    if (sisu::parse_file_name(n, &num) == sisu::FileKind::kLog &&
        num >= out->manifest.log_number) {
      out->logs.push_back(num);
    }
  }
  std::sort(out->logs.begin(), out->logs.end());
  return Status::OK();
}

// Replays one WAL segment: f(type, key, value) per op of each intact record.
template <class F>
Status scan_segment(const std::string& dir, std::uint64_t number, Segment* seg, F&& f) {
  std::string data;
  if (Status s = sisu::Env::posix()->read_file(sisu::log_file_name(dir, number), &data); !s.ok()) {
    return s;
  }
  seg->number = number;
  seg->bytes = data.size();
  const std::uint64_t good = sisu::wal::read_records(data, [&](std::string_view p, std::uint64_t) {
    const bool ok = sisu::for_each_op(
        p, [&](std::uint64_t, sisu::RecordType t, std::string_view k, std::string_view v) {
          ++seg->ops;
          f(t, k, v);
        });
    seg->malformed |= !ok;
    seg->records += ok;
    return ok;
  });
  seg->torn_bytes = data.size() - good;
  return Status::OK();
}

}  // namespace

PathKind classify(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return PathKind::kIndexFile;  // its open reports why
  if (S_ISDIR(st.st_mode)) return PathKind::kDatabase;
  if (!S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(sizeof(sisu::TableFooter))) {
    return PathKind::kIndexFile;
  }
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return PathKind::kIndexFile;
  char magic[8] = {};
  const bool read = std::fseek(f, -static_cast<long>(sizeof(sisu::TableFooter)), SEEK_END) == 0 &&
                    std::fread(magic, 1, 8, f) == 8;
  std::fclose(f);
  return read && std::memcmp(magic, sisu::kTableMagic, 8) == 0 ? PathKind::kTableFile
                                                               : PathKind::kIndexFile;
}

std::string printable(std::string_view bytes) {
  bool plain = true;
  for (unsigned char c : bytes) plain &= c >= 0x20 && c < 0x7f;
  if (plain && !bytes.starts_with("0x")) return std::string(bytes);
  static const char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

namespace {

// One table file's JSON object (its index's shape plus the table's own counts) and faults.
Status table_json(const std::string& path, const OpenedTable& o, Json* out,
                  std::size_t* faults) {
  if (!o.index_status.ok()) return o.index_status;
  *faults = table_faults(path, o).size();
  Json j = index_json(o.index, *faults);
  j["path"] = path;
  j["kind"] = "table file";
  j["file_bytes"] = o.table->file_bytes();
  j["records"] = o.table->entries();
  j["record_tombstones"] = o.table->tombstones();
  j["data_bytes"] = o.table->data_bytes();
  j["index_bytes"] = o.index_bytes();
  *out = std::move(j);
  return Status::OK();
}

// Opens the table file, then as above.
Status table_json(const std::string& path, Json* out, std::size_t* faults) {
  OpenedTable o;
  if (Status s = open_table(path, &o); !s.ok()) return s;
  return table_json(path, o, out, faults);
}

void print_table_block(const std::string& path, const Json& j, const char* indent) {
  std::printf("%s%s: %" PRIu64 " records (%" PRIu64 " tombstones), data %" PRIu64
              " bytes, index %" PRIu64 " bytes\n",
              indent, path.c_str(), j["records"].get<std::uint64_t>(),
              j["record_tombstones"].get<std::uint64_t>(), j["data_bytes"].get<std::uint64_t>(),
              j["index_bytes"].get<std::uint64_t>());
}

}  // namespace

int inspect_table(const std::string& path, bool json) {
  OpenedTable o;
  Json j;
  std::size_t faults = 0;
  Status s = open_table(path, &o);
  if (s.ok()) s = table_json(path, o, &j, &faults);
  if (!s.ok()) return fail(path, s);
  if (json) {
    std::printf("%s\n", j.dump(2).c_str());
    return faults == 0 ? 0 : 1;
  }
  std::printf("sisu table file ");
  print_table_block(path, j, "");
  std::printf("\n  index (key hash -> record offset)\n");
  print_index_block(o.index, faults, "  ");
  return faults == 0 ? 0 : 1;
}

int inspect_db(const std::string& dir, bool json) {
  DbFiles db;
  if (Status s = read_db(dir, &db); !s.ok()) return fail(dir, s);
  Json tables = Json::array();
  std::uint64_t records = 0, file_bytes = 0, tombstones = 0;
  std::size_t faults = 0;
  std::vector<std::string> problems;
  for (std::uint64_t n : db.manifest.tables) {
    const std::string path = sisu::table_file_name(dir, n);
    Json j;
    std::size_t f = 0;
    if (Status s = table_json(path, &j, &f); !s.ok()) {
      problems.push_back(status_line(path, s));
      ++faults;
      continue;
    }
    faults += f;
    records += j["records"].get<std::uint64_t>();
    tombstones += j["record_tombstones"].get<std::uint64_t>();
    file_bytes += j["file_bytes"].get<std::uint64_t>();
    tables.push_back(std::move(j));
  }
  Json segments = Json::array();
  std::uint64_t wal_bytes = 0, wal_ops = 0, torn = 0;
  for (std::uint64_t n : db.logs) {
    Segment seg;
    if (Status s = scan_segment(dir, n, &seg, [](auto, auto, auto) {}); !s.ok()) return fail(dir, s);
    wal_bytes += seg.bytes;
    wal_ops += seg.ops;
    torn += seg.torn_bytes;
    Json j;
    j["file"] = file_name(sisu::log_file_name(dir, n));
    j["bytes"] = seg.bytes;
    j["records"] = seg.records;
    j["ops"] = seg.ops;
    j["torn_tail_bytes"] = seg.torn_bytes;
    segments.push_back(std::move(j));
  }
  if (json) {
    Json j;
    j["path"] = dir;
    j["kind"] = "database";
    j["table_files"] = tables;
    j["table_file_count"] = tables.size();
    j["entries"] = records;
    j["tombstones"] = tombstones;
    j["file_bytes"] = file_bytes;
    j["wal_segments"] = segments;
    j["wal_bytes"] = wal_bytes;
    j["memtable_ops"] = wal_ops;  // what a reopen replays into the memtable
    std::uint64_t capacity = 0, small_tables = 0;
    for (const Json& t : tables) {
      capacity += t["capacity"].get<std::uint64_t>();
      small_tables += t["tables"].get<std::uint64_t>();
    }
    Json totals;
    totals["table_files"] = tables.size();
    totals["entries"] = records;
    totals["tombstones"] = tombstones;
    totals["file_bytes"] = file_bytes + wal_bytes;
    totals["index_capacity"] = capacity;
    totals["index_tables"] = small_tables;
    totals["index_load_factor"] =
        capacity == 0 ? 0.0 : static_cast<double>(records) / static_cast<double>(capacity);
    totals["wal_bytes"] = wal_bytes;
    j["totals"] = totals;
    j["log_number"] = db.manifest.log_number;
    j["next_file"] = db.manifest.next_file;
    j["last_sequence"] = db.manifest.last_sequence;
    j["faults"] = faults;
    std::printf("%s\n", j.dump(2).c_str());
    return faults == 0 ? 0 : 1;
  }
  std::printf("sisu database %s\n", dir.c_str());
  std::printf("  %-15s %zu files, %" PRIu64 " records (%" PRIu64 " tombstones), %" PRIu64
              " bytes\n",
              "tables", tables.size(), records, tombstones, file_bytes);
  std::printf("  %-15s %zu segments from %06" PRIu64 ", %" PRIu64 " bytes, %" PRIu64
              " ops to replay%s\n",
              "memtable (WAL)", db.logs.size(), db.manifest.log_number, wal_bytes, wal_ops,
              torn > 0 ? (", torn tail of " + std::to_string(torn) + " bytes").c_str() : "");
  std::printf("  %-15s %" PRIu64 "\n", "last sequence", db.manifest.last_sequence);
  std::printf("  %-15s %s\n", "faults",
              faults == 0 ? "none" : (std::to_string(faults) + " (sisu verify)").c_str());
  for (const std::string& p : problems) std::printf("  %s\n", p.c_str());
  for (const Json& j : tables) {
    const std::string path = j["path"].get<std::string>();
    std::printf("\n  table file ");
    print_table_block(file_name(path), j, "");
    std::printf("    %-15s %.3f, global depth %u, %zu small tables\n", "index load",
                j["load_factor"].get<double>(), j["global_depth"].get<unsigned>(),
                j["tables"].get<std::size_t>());
  }
  return faults == 0 ? 0 : 1;
}

int verify_table(const std::string& path) {
  const std::vector<std::string> faults = table_faults(path);
  for (const std::string& f : faults) std::printf("%s\n", f.c_str());
  if (!faults.empty()) return 1;
  std::printf("%s: intact\n", path.c_str());
  return 0;
}

int verify_db(const std::string& dir) {
  DbFiles db;
  if (Status s = read_db(dir, &db); !s.ok()) {
    std::printf("%s\n", status_line(dir, s).c_str());
    return 1;
  }
  std::size_t faults = 0;
  for (std::uint64_t n : db.manifest.tables) {
    const std::string path = sisu::table_file_name(dir, n);
    for (const std::string& f : table_faults(path)) {
      std::printf("%s\n", f.c_str());
      ++faults;
    }
  }
  for (std::size_t i = 0; i < db.logs.size(); ++i) {
    Segment seg;
    const std::string path = sisu::log_file_name(dir, db.logs[i]);
    if (Status s = scan_segment(dir, db.logs[i], &seg, [](auto, auto, auto) {}); !s.ok()) {
      std::printf("%s\n", status_line(path, s).c_str());
      ++faults;
      continue;
    }
    const std::uint64_t at = seg.bytes - seg.torn_bytes;
    if (seg.malformed) {
      std::printf("%s\n", fault_line(path, at, "malformed batch in an intact record").c_str());
      ++faults;
    } else if (seg.torn_bytes > 0 && i + 1 < db.logs.size()) {
      std::printf("%s\n", fault_line(path, at, "damaged record before the end of the log").c_str());
      ++faults;
    } else if (seg.torn_bytes > 0) {
      // Normal after a crash: the next open drops it. Not a fault.
      std::printf("%s: note: torn tail of %" PRIu64 " bytes at offset %" PRIu64
                  " (a write cut by a crash; the next open drops it)\n",
                  path.c_str(), seg.torn_bytes, at);
    }
  }
  if (faults > 0) return 1;
  std::printf("%s: intact (%zu table files, %zu WAL segments)\n", dir.c_str(),
              db.manifest.tables.size(), db.logs.size());
  return 0;
}

namespace {
void print_entry(std::string_view key, std::string_view value, bool json) {
  if (json) {
    Json j;
    j["key"] = printable(key);
    j["value"] = printable(value);
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\t%s\n", printable(key).c_str(), printable(value).c_str());
  }
}
}  // namespace

int dump_table(const std::string& path, std::uint64_t limit, bool json) {
  std::shared_ptr<sisu::TableReader> t;
  if (Status s = sisu::TableReader::open(sisu::Env::posix(), path, 0, &t); !s.ok()) {
    return fail(path, s);
  }
  std::uint64_t offset = 0, n = 0;
  while (offset < t->data_bytes() && (limit == 0 || n < limit)) {
    sisu::TableRecord r;
    std::uint64_t next;
    if (Status s = t->read_record(offset, &r, &next); !s.ok()) return fail(path, s);
    if (r.type == sisu::RecordType::kPut) {
      print_entry(r.key, r.value, json);
    } else if (json) {
      Json j;
      j["key"] = printable(r.key);
      j["deleted"] = true;
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s\t(deleted)\n", printable(r.key).c_str());
    }
    ++n;
    offset = next;
  }
  return 0;
}

int dump_db(const std::string& dir, std::uint64_t limit, bool json) {
  DbFiles db;
  if (Status s = read_db(dir, &db); !s.ok()) return fail(dir, s);
  // Newest wins: tables oldest to newest, then the WAL in order. (Held in memory: the tool
  // is for inspection, and a database it dumps is usually small.)
  std::map<std::string, std::optional<std::string>> state;
  for (auto it = db.manifest.tables.rbegin(); it != db.manifest.tables.rend(); ++it) {
    const std::string path = sisu::table_file_name(dir, *it);
    std::shared_ptr<sisu::TableReader> t;
    if (Status s = sisu::TableReader::open(sisu::Env::posix(), path, *it, &t); !s.ok()) {
      return fail(path, s);
    }
    for (std::uint64_t offset = 0; offset < t->data_bytes();) {
      sisu::TableRecord r;
      if (Status s = t->read_record(offset, &r, &offset); !s.ok()) return fail(path, s);
      if (r.type == sisu::RecordType::kPut) {
        state[std::string(r.key)] = std::string(r.value);
      } else {
        state[std::string(r.key)] = std::nullopt;
      }
    }
  }
  for (std::uint64_t n : db.logs) {
    Segment seg;
    Status s = scan_segment(dir, n, &seg, [&](sisu::RecordType t, std::string_view k,
                                              std::string_view v) {
      if (t == sisu::RecordType::kPut) {
        state[std::string(k)] = std::string(v);
      } else {
        state[std::string(k)] = std::nullopt;
      }
    });
    if (!s.ok()) return fail(dir, s);
  }
  std::uint64_t printed = 0;
  for (const auto& [k, v] : state) {
    if (!v) continue;
    if (limit != 0 && printed >= limit) break;
    print_entry(k, *v, json);
    ++printed;
  }
  return 0;
}

int db_get(const std::string& dir, const std::string& key) {
  DbFiles db;
  if (Status s = read_db(dir, &db); !s.ok()) return fail(dir, s);
  // The WAL holds the newest writes; then the tables, newest first.
  std::optional<std::optional<std::string>> found;
  for (std::uint64_t n : db.logs) {
    Segment seg;
    Status s = scan_segment(dir, n, &seg, [&](sisu::RecordType t, std::string_view k,
                                              std::string_view v) {
      if (k != key) return;
      found = t == sisu::RecordType::kPut ? std::optional<std::string>(std::string(v))
                                          : std::nullopt;
    });
    if (!s.ok()) return fail(dir, s);
  }
  if (!found) {
    const std::uint64_t h =
        sisu::hash_internal::hash_bytes(key.data(), key.size(), db.manifest.hash_seed);
    for (std::uint64_t n : db.manifest.tables) {
      const std::string path = sisu::table_file_name(dir, n);
      std::shared_ptr<sisu::TableReader> t;
      if (Status s = sisu::TableReader::open(sisu::Env::posix(), path, n, &t); !s.ok()) {
        return fail(path, s);
      }
      sisu::MemTable::Lookup r;
      std::string v;
      if (Status s = t->get(key, h, &r, &v); !s.ok()) return fail(path, s);
      if (r == sisu::MemTable::Lookup::kFound) found = std::optional<std::string>(v);
      if (r == sisu::MemTable::Lookup::kDeleted) found = std::optional<std::string>();
      if (found) break;
    }
  }
  if (!found || !*found) {
    std::fprintf(stderr, "sisu: %s: not found\n", printable(key).c_str());
    return 1;
  }
  std::fwrite(found->value().data(), 1, found->value().size(), stdout);
  std::printf("\n");
  return 0;
}

namespace {
int write_one(const std::string& dir, bool create,
              const std::function<Status(sisu::DB&)>& op) {
  sisu::Options options;
  options.create_if_missing = create;
  options.sync = true;  // the tool's write is durable when it says so
  std::unique_ptr<sisu::DB> db;
  if (Status s = sisu::DB::open(options, dir, &db); !s.ok()) return fail(dir, s);
  if (Status s = op(*db); !s.ok()) return fail(dir, s);
  return 0;
}
}  // namespace

int db_put(const std::string& dir, const std::string& key, const std::string& value) {
  return write_one(dir, true, [&](sisu::DB& db) { return db.put(key, value); });
}

int db_remove(const std::string& dir, const std::string& key) {
  return write_one(dir, false, [&](sisu::DB& db) { return db.remove(key); });
}

}  // namespace sisu_tool
