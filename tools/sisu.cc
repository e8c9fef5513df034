// The `sisu` command line tool. Its syntax is fixed by the contract ("The `sisu` tool"):
//
//   sisu inspect PATH [--json]          the shape of an index file, table file or database
//   sisu verify PATH                    exit 0 intact; exit 1 and one line per fault
//   sisu dump PATH [--limit N] [--json] the entries, one per line
//   sisu get DIR KEY | put DIR KEY VALUE | remove DIR KEY
//
// PATH is a saved index file, an engine table file or a database directory (tools/
// db_commands.h has the engine side). inspect, verify and dump open what they read read-only
// and never write to it. Usage errors exit 2 with a one-line hint.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "index/index_file.h"
#include "tools/db_commands.h"

namespace sisu_tool {

// A failure to read PATH: one line on stderr, exit 1.
int fail(const std::string& path, const sisu::Status& s) {
  std::string msg(s.message());
  if (msg.rfind(path, 0) != 0) msg = path + ": " + msg;
  std::fprintf(stderr, "sisu: %s\n", msg.c_str());
  return 1;
}

namespace {
sisu::Status open_index(const std::string& path, sisu::IndexFile* file) {
  return sisu::IndexFile::open(path, file);
}

std::string hex_bytes(std::string_view b) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (unsigned char c : b) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// 8-byte fields are shown as the unsigned integers they almost always are (little-endian);
// anything else as hex.
bool as_u64(std::string_view b, std::uint64_t* v) {
  if (b.size() != 8) return false;
  std::memcpy(v, b.data(), 8);
  return true;
}

std::string bar(std::size_t n, std::size_t max, int width) {
  if (max == 0 || n == 0) return "";
  const int len = std::max(1, static_cast<int>(static_cast<double>(n) * width / max));
  std::string s;
  for (int i = 0; i < len; ++i) s += "\xe2\x96\x88";  // U+2588 FULL BLOCK
  return s;
}

// "  <label right-aligned>     <count>  <bar>", with no trailing blanks.
void print_bar_row(const char* indent, const std::string& label, std::size_t n,
                   const std::string& bar) {
  char head[96];
  std::snprintf(head, sizeof(head), "%s  %11s     %-8zu ", indent, label.c_str(), n);
  std::string s = std::string(head) + bar;
  while (!s.empty() && s.back() == ' ') s.pop_back();
  std::printf("%s\n", s.c_str());
}

}  // namespace

Json index_json(const sisu::IndexFile& file, std::size_t faults) {
  std::vector<std::size_t> fill;
  const sisu::IndexStats st = file.stats(&fill);
  const auto& h = file.header();
  Json j;
  j["path"] = file.path();
  j["format_version"] = h.format_version;
  j["file_bytes"] = file.file_bytes();
  j["entries"] = st.size;
  j["capacity"] = st.capacity;
  j["load_factor"] = st.load_factor;
  j["global_depth"] = st.global_depth;
  j["tables"] = st.tables;
  j["overflow_tables"] = st.overflow_tables;
  j["tombstones"] = st.tombstones;
  j["mean_miss_probe_groups"] = st.mean_miss_probe_groups;
  j["local_depth_histogram"] = st.local_depth_histogram;
  j["fill_histogram"] = fill;
  j["key_bytes"] = h.key_bytes;
  j["value_bytes"] = h.value_bytes;
  j["slot_bytes"] = h.slot_bytes;
  j["hash_version"] = h.hash_version;
  j["hash_seed"] = h.hash_seed;
  j["faults"] = faults;
  if (file.checkpoint_sequence() != 0) j["checkpoint_sequence"] = file.checkpoint_sequence();
  return j;
}

void print_index_block(const sisu::IndexFile& file, std::size_t faults, const char* indent) {
  std::vector<std::size_t> fill;
  const sisu::IndexStats st = file.stats(&fill);
  const auto& h = file.header();
  auto row = [&](const char* name, const std::string& value) {
    std::printf("%s  %-15s %s\n", indent, name, value.c_str());
  };
  row("format", "version " + std::to_string(h.format_version) + ", " +
                    std::to_string(file.file_bytes()) + " bytes");
  row("entries", std::to_string(st.size));
  row("capacity", std::to_string(st.capacity) + " slots");
  char lf[32];
  std::snprintf(lf, sizeof(lf), "%.3f", st.load_factor);
  row("load factor", lf);
  row("global depth", std::to_string(st.global_depth) + " (" +
                          std::to_string(std::uint64_t{1} << st.global_depth) +
                          " directory slots)");
  row("tables",
      std::to_string(st.tables) + " (" + std::to_string(st.overflow_tables) + " overflow)");
  row("tombstones", std::to_string(st.tombstones));
  char miss[32];
  std::snprintf(miss, sizeof(miss), "%.2f groups per miss", st.mean_miss_probe_groups);
  row("probe", miss);
  row("layout", std::to_string(h.key_bytes) + "-byte keys, " + std::to_string(h.value_bytes) +
                    "-byte values, " + std::to_string(h.slot_bytes) + "-byte slots");
  char seed[64];
  std::snprintf(seed, sizeof(seed), "version %u, seed 0x%016" PRIx64, h.hash_version, h.hash_seed);
  row("hash", h.hash_version == 0 ? std::string("not sisu::Hash") : std::string(seed));
  row("faults", faults == 0 ? std::string("none") : std::to_string(faults) + " (sisu verify)");

  std::size_t max = 0;
  for (std::size_t n : st.local_depth_histogram) max = std::max(max, n);
  std::printf("\n%s  local depth     tables\n", indent);
  for (std::size_t d = 0; d < st.local_depth_histogram.size(); ++d) {
    const std::size_t n = st.local_depth_histogram[d];
    if (n == 0) continue;
    print_bar_row(indent, std::to_string(d), n, bar(n, max, 40));
  }
  max = 0;
  for (std::size_t n : fill) max = std::max(max, n);
  std::printf("\n%s  table fill      tables\n", indent);
  for (std::size_t b = 0; b < fill.size(); ++b) {
    char range[16];
    std::snprintf(range, sizeof(range), "%zu-%zu%%", b * 10, b * 10 + 10);
    print_bar_row(indent, range, fill[b], bar(fill[b], max, 40));
  }
}

namespace {

int inspect(const std::string& path, bool json) {
  sisu::IndexFile file;
  if (sisu::Status s = open_index(path, &file); !s.ok()) return fail(path, s);
  const std::size_t faults = file.verify().size();
  if (json) {
    std::printf("%s\n", index_json(file, faults).dump(2).c_str());
    return faults == 0 ? 0 : 1;
  }
  if (file.checkpoint_sequence() != 0) {
    std::printf("sisu checkpoint file %s (commit %" PRIu64 ", whose tables are shown)\n",
                path.c_str(), file.checkpoint_sequence());
  } else {
    std::printf("sisu index file %s\n", path.c_str());
  }
  print_index_block(file, faults, "");
  return faults == 0 ? 0 : 1;
}

int verify(const std::string& path) {
  sisu::IndexFile file;
  if (sisu::Status s = open_index(path, &file); !s.ok()) return fail(path, s);
  // Progress on a terminal only (never into a pipe or a file), and only when it takes a while.
  const bool show_progress = ::isatty(STDERR_FILENO) && file.file_bytes() > (64u << 20);
  int last_pct = -1;
  const std::vector<sisu::IndexFileFault> faults =
      show_progress ? file.verify([&](std::uint64_t done, std::uint64_t total) {
        const int pct = static_cast<int>(done * 100 / total);
        if (pct == last_pct) return;
        last_pct = pct;
        std::fprintf(stderr, "\rsisu: verifying %s: %3d%%", path.c_str(), pct);
      })
                    : file.verify();
  if (show_progress) std::fprintf(stderr, "\r\033[K");
  // A checkpoint's faults are in the image of its commit, assembled from its page frames.
  const std::string where = file.checkpoint_sequence() == 0
                                ? path
                                : path + " (commit " + std::to_string(file.checkpoint_sequence()) +
                                      " image)";
  for (const sisu::IndexFileFault& f : faults) {
    std::printf("%s at offset %" PRIu64 " (0x%" PRIx64 "): %s\n", where.c_str(), f.offset,
                f.offset, f.what.c_str());
  }
  if (!faults.empty()) return 1;
  std::printf("%s: intact (%" PRIu64 " entries, %u tables)\n", path.c_str(), file.header().entries,
              file.header().tables);
  return 0;
}

int dump(const std::string& path, std::uint64_t limit, bool json) {
  sisu::IndexFile file;
  if (sisu::Status s = open_index(path, &file); !s.ok()) return fail(path, s);
  std::uint64_t n = 0;
  file.for_each_entry([&](std::string_view key, std::string_view value) {
    if (limit != 0 && n >= limit) return false;
    ++n;
    std::uint64_t k = 0, v = 0;
    const bool kn = as_u64(key, &k), vn = as_u64(value, &v);
    if (json) {
      Json j;
      if (kn)
        j["key"] = k;
      else
        j["key"] = hex_bytes(key);
      if (vn)
        j["value"] = v;
      else
        j["value"] = hex_bytes(value);
      std::printf("%s\n", j.dump().c_str());
    } else {
      const std::string ks = kn ? std::to_string(k) : hex_bytes(key);
      const std::string vs = vn ? std::to_string(v) : hex_bytes(value);
      std::printf("%s\t%s\n", ks.c_str(), vs.c_str());
    }
    return true;
  });
  return 0;
}

}  // namespace
}  // namespace sisu_tool

int main(int argc, char** argv) {
  using namespace sisu_tool;
  CLI::App app{"sisu: inspect, verify and dump sisu index files, table files and databases"};
  app.name("sisu");
  app.set_version_flag("--version", std::string("sisu ") + SISU_VERSION);
  app.require_subcommand(1);
  app.footer(
      "PATH is a saved index file, an engine table file (NNNNNN.tbl) or a database directory.");

  std::string path, key, value;
  bool json = false;
  std::uint64_t limit = 0;
  const char* kPathHelp = "index file, table file or database directory";
  CLI::App* inspect_cmd = app.add_subcommand("inspect", "the shape of an index, table or database");
  inspect_cmd->add_option("PATH", path, kPathHelp)->required();
  inspect_cmd->add_flag("--json", json, "one JSON object");
  CLI::App* verify_cmd =
      app.add_subcommand("verify", "check every byte; exit 1 with one line per fault");
  verify_cmd->add_option("PATH", path, kPathHelp)->required();
  CLI::App* dump_cmd = app.add_subcommand("dump", "the entries, one per line");
  dump_cmd->add_option("PATH", path, kPathHelp)->required();
  dump_cmd->add_option("--limit", limit, "at most N entries (0: all)");
  dump_cmd->add_flag("--json", json, "JSON lines");
  CLI::App* get_cmd = app.add_subcommand("get", "print KEY's value (exit 1 when absent)");
  get_cmd->add_option("DIR", path, "database directory")->required();
  get_cmd->add_option("KEY", key, "key")->required();
  CLI::App* put_cmd = app.add_subcommand("put", "set KEY to VALUE (synced)");
  put_cmd->add_option("DIR", path, "database directory (created if missing)")->required();
  put_cmd->add_option("KEY", key, "key")->required();
  put_cmd->add_option("VALUE", value, "value")->required();
  CLI::App* remove_cmd = app.add_subcommand("remove", "remove KEY (synced)");
  remove_cmd->add_option("DIR", path, "database directory")->required();
  remove_cmd->add_option("KEY", key, "key")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "sisu: %s (try 'sisu --help')\n", e.what());
    return 2;
  }
  if (*get_cmd) return db_get(path, key);
  if (*put_cmd) return db_put(path, key, value);
  if (*remove_cmd) return db_remove(path, key);
  const PathKind kind = classify(path);
  if (*inspect_cmd) {
    if (kind == PathKind::kDatabase) return inspect_db(path, json);
    if (kind == PathKind::kTableFile) return inspect_table(path, json);
    return inspect(path, json);
  }
  if (*verify_cmd) {
    if (kind == PathKind::kDatabase) return verify_db(path);
    if (kind == PathKind::kTableFile) return verify_table(path);
    return verify(path);
  }
  if (*dump_cmd) {
    if (kind == PathKind::kDatabase) return dump_db(path, limit, json);
    if (kind == PathKind::kTableFile) return dump_table(path, limit, json);
    return dump(path, limit, json);
  }
  return 2;
}
