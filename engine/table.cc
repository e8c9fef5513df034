#include "engine/table.h"

#include <cstring>

#include "util/crc32c.h"

namespace sisu {

namespace {
std::uint32_t record_crc(const TableRecordHeader& h, std::string_view key,
                         std::string_view value) {
  std::uint32_t c = crc32c::value(reinterpret_cast<const char*>(&h) + 4, sizeof(h) - 4);
  c = crc32c::extend(c, key.data(), key.size());
  return crc32c::extend(c, value.data(), value.size());
}
}  // namespace

TableBuilder::TableBuilder(Env* env, std::string path, std::size_t expected_keys)
    : env_(env), path_(std::move(path)), index_(expected_keys) {}

TableBuilder::~TableBuilder() {
  if (file_ != nullptr && !finished_) {
    (void)file_->close();
    (void)env_->remove_file(path_);
  }
}

Status TableBuilder::open() { return env_->new_writable_file(path_, &file_); }

Status TableBuilder::add(std::uint64_t hash, RecordType type, std::string_view key,
                         std::string_view value) {
  TableRecordHeader h{};
  h.key_bytes = static_cast<std::uint32_t>(key.size());
  h.value_bytes = static_cast<std::uint32_t>(value.size());
  h.type = static_cast<std::uint8_t>(type);
  h.hash = hash;
  h.crc = record_crc(h, key, value);
  if (!have_last_ || hash != last_hash_) index_.insert_or_assign(hash, offset_);
  have_last_ = true;
  last_hash_ = hash;
  Status s = file_->append({reinterpret_cast<const char*>(&h), sizeof(h)});
  if (s.ok()) s = file_->append(key);
  if (s.ok()) s = file_->append(value);
  offset_ += sizeof(h) + key.size() + value.size();
  ++entries_;
  tombstones_ += type == RecordType::kDelete;
  return s;
}

Status TableBuilder::finish() {
  struct Sink {
    WritableFile* f;
    std::uint64_t n = 0;
    Status append(const void* p, std::size_t len) {
      n += len;
      return f->append({static_cast<const char*>(p), len});
    }
  } sink{file_.get()};
  if (Status s = index_.write_to(sink); !s.ok()) return s;
  TableFooter ft{};
  std::memcpy(ft.magic, kTableMagic, sizeof(ft.magic));
  ft.data_bytes = offset_;
  ft.index_bytes = sink.n;
  ft.entries = entries_;
  ft.tombstones = tombstones_;
  ft.version = kTableFormatVersion;
  ft.crc = crc32c::value(&ft, offsetof(TableFooter, crc));
  Status s = file_->append({reinterpret_cast<const char*>(&ft), sizeof(ft)});
  if (s.ok()) s = file_->sync();
  if (s.ok()) s = file_->close();
  if (!s.ok()) return s;
  finished_ = true;
  file_bytes_ = offset_ + sink.n + sizeof(ft);
  return Status::OK();
}

Status TableReader::open(Env* env, const std::string& path, std::uint64_t number,
                         std::shared_ptr<TableReader>* out) {
  std::shared_ptr<TableReader> t(new TableReader);
  t->env_ = env;
  t->path_ = path;
  t->number_ = number;
  if (Status s = env->map_file(path, &t->file_); !s.ok()) return s;
  const std::size_t size = t->file_->size();
  if (size < sizeof(TableFooter)) {
    return Status::corruption(path + ": too short for a sisu table file (" +
                              std::to_string(size) + " bytes)");
  }
  TableFooter& ft = t->footer_;
  std::memcpy(&ft, t->file_->data() + size - sizeof(ft), sizeof(ft));
  const std::string at_footer =
      path + " at offset " + std::to_string(size - sizeof(ft)) + ": table footer: ";
  if (std::memcmp(ft.magic, kTableMagic, sizeof(ft.magic)) != 0) {
    return Status::corruption(at_footer + "bad magic (not a sisu table file?)");
  }
  if (ft.crc != crc32c::value(&ft, offsetof(TableFooter, crc))) {
    return Status::corruption(at_footer + "checksum mismatch");
  }
  if (ft.version != kTableFormatVersion) {
    return Status::corruption(at_footer + "unknown version " + std::to_string(ft.version));
  }
  if (ft.data_bytes > size - sizeof(ft) || ft.index_bytes != size - sizeof(ft) - ft.data_bytes ||
      ft.entries > ft.data_bytes / sizeof(TableRecordHeader) || ft.tombstones > ft.entries) {
    return Status::corruption(at_footer + "sizes do not fit the file");
  }
  if (Status s = MappedIndex<std::uint64_t, std::uint64_t>::open(
          t->file_->data() + ft.data_bytes, ft.index_bytes, path + " (index section)",
          &t->index_);
      !s.ok()) {
    return s;
  }
  *out = std::move(t);
  return Status::OK();
}

TableReader::~TableReader() {
  if (obsolete_.load(std::memory_order_relaxed)) {
    file_.reset();
    (void)env_->remove_file(path_);
  }
}

Status TableReader::read_record(std::uint64_t offset, TableRecord* out,
                                std::uint64_t* next) const {
  const std::uint8_t* base = file_->data();
  const std::uint64_t end = footer_.data_bytes;
  auto bad = [&](const char* what) {
    return Status::corruption(path_ + " at offset " + std::to_string(offset) + ": record: " +
                              what);
  };
  if (offset > end || end - offset < sizeof(TableRecordHeader)) return bad("past the data");
  TableRecordHeader h;
  std::memcpy(&h, base + offset, sizeof(h));
  if (h.type > 1 || std::uint64_t{h.key_bytes} + h.value_bytes >
                        end - offset - sizeof(TableRecordHeader)) {
    return bad("bad header");
  }
  const char* p = reinterpret_cast<const char*>(base + offset + sizeof(h));
  const std::string_view key(p, h.key_bytes), value(p + h.key_bytes, h.value_bytes);
  if (h.crc != record_crc(h, key, value)) return bad("checksum mismatch");
  out->hash = h.hash;
  out->type = static_cast<RecordType>(h.type);
  out->key = key;
  out->value = value;
  *next = offset + sizeof(h) + h.key_bytes + h.value_bytes;
  return Status::OK();
}

Status TableReader::get(std::string_view key, std::uint64_t hash, MemTable::Lookup* result,
                        std::string* value) const {
  *result = MemTable::Lookup::kAbsent;
  std::uint64_t offset = 0;
  if (Status s = index_.find(hash, &offset); !s.ok()) return s.is_not_found() ? Status::OK() : s;
  for (bool first = true;; first = false) {
    TableRecord r;
    std::uint64_t next;
    if (Status s = read_record(offset, &r, &next); !s.ok()) return s;
    if (r.hash != hash) {
      // The index sends a hash to the first of its records, which must carry it.
      if (first) {
        return Status::corruption(path_ + " at offset " + std::to_string(offset) +
                                  ": the index points to a record of another hash");
      }
      return Status::OK();
    }
    if (r.key == key) {
      if (r.type == RecordType::kDelete) {
        *result = MemTable::Lookup::kDeleted;
      } else {
        *result = MemTable::Lookup::kFound;
        value->assign(r.value);
      }
      return Status::OK();
    }
    if (next == footer_.data_bytes) return Status::OK();
    offset = next;
  }
}

}  // namespace sisu
