#include "engine/manifest.h"

#include <charconv>
#include <cstdio>
#include <cstring>

#include "engine/write_batch.h"
#include "util/crc32c.h"

namespace sisu {
namespace {
constexpr char kManifestMagic[8] = {'S', 'I', 'S', 'U', 'M', 'A', 'N', '1'};
constexpr std::uint32_t kManifestVersion = 1;
constexpr std::size_t kFixedBytes = 48;

std::string numbered(const std::string& dir, std::uint64_t number, const char* ext) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "/%06llu.%s", static_cast<unsigned long long>(number), ext);
  return dir + buf;
}
}  // namespace

std::string Manifest::encode() const {
  std::string out(kManifestMagic, sizeof(kManifestMagic));
  put_u32(&out, kManifestVersion);
  put_u32(&out, static_cast<std::uint32_t>(tables.size()));
  put_u64(&out, hash_seed);
  put_u64(&out, next_file);
  put_u64(&out, log_number);
  put_u64(&out, last_sequence);
  for (std::uint64_t t : tables) put_u64(&out, t);
  put_u32(&out, crc32c::value(out.data(), out.size()));
  return out;
}

Status Manifest::decode(std::string_view data, const std::string& path, Manifest* out) {
  if (data.size() < kFixedBytes + 4 || std::memcmp(data.data(), kManifestMagic, 8) != 0) {
    return Status::corruption(path + ": not a sisu manifest (" + std::to_string(data.size()) +
                              " bytes)");
  }
  const std::uint32_t count = get_u32(data.data() + 12);
  if (count > (data.size() - kFixedBytes - 4) / 8 || data.size() != kFixedBytes + 8 * count + 4) {
    return Status::corruption(path + ": size does not match its table count");
  }
  const std::size_t body = data.size() - 4;
  if (get_u32(data.data() + body) != crc32c::value(data.data(), body)) {
    return Status::corruption(path + " at offset " + std::to_string(body) +
                              ": checksum mismatch");
  }
  if (get_u32(data.data() + 8) != kManifestVersion) {
    return Status::corruption(path + ": unknown manifest version");
  }
  Manifest m;
  m.hash_seed = get_u64(data.data() + 16);
  m.next_file = get_u64(data.data() + 24);
  m.log_number = get_u64(data.data() + 32);
  m.last_sequence = get_u64(data.data() + 40);
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint64_t t = get_u64(data.data() + kFixedBytes + 8 * i);
    if (t >= m.next_file) return Status::corruption(path + ": table number past next_file");
    m.tables.push_back(t);
  }
  *out = std::move(m);
  return Status::OK();
}

std::string table_file_name(const std::string& dir, std::uint64_t number) {
  return numbered(dir, number, "tbl");
}
std::string log_file_name(const std::string& dir, std::uint64_t number) {
  return numbered(dir, number, "log");
}
std::string manifest_file_name(const std::string& dir) { return dir + "/MANIFEST"; }

FileKind parse_file_name(std::string_view name, std::uint64_t* number) {
  if (name == "MANIFEST") return FileKind::kManifest;
  if (name == "LOCK") return FileKind::kLock;
  if (name.ends_with(".tmp")) return FileKind::kTemp;
  const std::size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0) return FileKind::kOther;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + dot, *number);
  if (ec != std::errc() || end != name.data() + dot) return FileKind::kOther;
  const std::string_view ext = name.substr(dot + 1);
  if (ext == "tbl") return FileKind::kTable;
  if (ext == "log") return FileKind::kLog;
  return FileKind::kOther;
}

Status read_manifest(Env* env, const std::string& dir, Manifest* out) {
  const std::string path = manifest_file_name(dir);
  std::string data;
  if (Status s = env->read_file(path, &data); !s.ok()) return s;
  return Manifest::decode(data, path, out);
}

}  // namespace sisu
