#include "engine/memtable.h"

#include <cstring>
#include <new>

namespace sisu {

MemTable::MemTable(std::size_t block_bytes, std::uint64_t first_log, std::size_t expected_keys)
    : block_bytes_(block_bytes), first_log_(first_log), index_(expected_keys) {}

char* MemTable::reserve(std::size_t n) {
  n = (n + 7) & ~std::size_t{7};  // records stay 8-byte aligned
  if (n > left_) {
    // A reservation larger than a quarter block gets a block of its own, so big values do
    // not waste the rest of the current block.
    const std::size_t size = n > block_bytes_ / 4 ? n : block_bytes_;
    blocks_.push_back(std::make_unique<char[]>(size));
    memory_.fetch_add(size, std::memory_order_relaxed);
    if (size == n) return blocks_.back().get();
    cursor_ = blocks_.back().get();
    left_ = size;
  }
  char* p = cursor_;
  cursor_ += n;
  left_ -= n;
  return p;
}

std::size_t MemTable::add_at(char* p, std::uint64_t seq, RecordType type, std::string_view key,
                             std::string_view value, std::uint64_t hash) {
  auto* r = new (p) MemRecord;
  r->seq = seq;
  r->hash = hash;
  r->key_bytes = static_cast<std::uint32_t>(key.size());
  r->value_bytes = static_cast<std::uint32_t>(value.size());
  r->type = type;
  if (!key.empty()) std::memcpy(p + sizeof(MemRecord), key.data(), key.size());
  if (!value.empty()) std::memcpy(p + sizeof(MemRecord) + key.size(), value.data(), value.size());
  const auto self = reinterpret_cast<std::uint64_t>(r);
  // Most keys are new to a memtable: try to insert first (one probe). Otherwise, if the
  // head is older, this record becomes the head (the map's CAS); if not (a writer of the same
  // group with a later sequence number got there first), it is linked below the last newer
  // record (a CAS on that record's `older`). Records are never unlinked, so neither CAS can
  // meet a recycled pointer.
  r->older.store(nullptr, std::memory_order_relaxed);
  std::optional<std::uint64_t> head = index_.put_if_absent(hash, self);
  while (head) {
    const auto* h = reinterpret_cast<const MemRecord*>(*head);
    if (h->seq < seq) {
      r->older.store(h, std::memory_order_relaxed);
      if (index_.replace(hash, *head, self)) break;
    } else {
      const MemRecord* prev = h;
      for (;;) {
        const MemRecord* next = prev->next();
        if (next != nullptr && next->seq > seq) {
          prev = next;
          continue;
        }
        r->older.store(next, std::memory_order_relaxed);
        // `older` is the only field of a published record that changes.
        auto& link = const_cast<MemRecord*>(prev)->older;
        if (link.compare_exchange_strong(next, r, std::memory_order_release,
                                         std::memory_order_acquire)) {
          break;
        }
      }
      break;
    }
    head = index_.get(hash);
    if (!head) {  // cannot happen (a memtable never removes a hash); kept for completeness
      r->older.store(nullptr, std::memory_order_relaxed);
      head = index_.put_if_absent(hash, self);
    }
  }
  const std::size_t n = (sizeof(MemRecord) + key.size() + value.size() + 7) & ~std::size_t{7};
  bytes_.fetch_add(n, std::memory_order_relaxed);
  return n;
}

MemTable::Lookup MemTable::get(std::string_view key, std::uint64_t hash, std::uint64_t snapshot,
                               std::string* value) const {
  const std::optional<std::uint64_t> head = index_.get(hash);
  if (!head) return Lookup::kAbsent;
  for (auto* r = reinterpret_cast<const MemRecord*>(*head); r != nullptr; r = r->next()) {
    if (r->seq > snapshot || r->key() != key) continue;
    if (r->type == RecordType::kDelete) return Lookup::kDeleted;
    value->assign(r->value());
    return Lookup::kFound;
  }
  return Lookup::kAbsent;
}

std::size_t MemTable::memory_bytes() const {
  return memory_.load(std::memory_order_relaxed) + index_.memory_bytes();
}

}  // namespace sisu
