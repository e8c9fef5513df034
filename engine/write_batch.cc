#include "engine/write_batch.h"

namespace sisu {

WriteBatch::WriteBatch() { clear(); }

void WriteBatch::clear() {
  rep_.assign(kBatchHeaderBytes, '\0');
  count_ = 0;
  status_ = Status::OK();
}

void WriteBatch::put(std::string_view key, std::string_view value) {
  if (key.size() > DB::kMaxKeyBytes || value.size() > DB::kMaxValueBytes) {
    if (status_.ok()) {
      status_ = Status::invalid_argument("key or value too large (" + std::to_string(key.size()) +
                                         " and " + std::to_string(value.size()) + " bytes)");
    }
    return;
  }
  rep_.push_back(static_cast<char>(RecordType::kPut));
  put_u32(&rep_, static_cast<std::uint32_t>(key.size()));
  rep_.append(key);
  put_u32(&rep_, static_cast<std::uint32_t>(value.size()));
  rep_.append(value);
  ++count_;
  const auto c = static_cast<std::uint32_t>(count_);
  std::memcpy(rep_.data() + 8, &c, 4);
}

void WriteBatch::remove(std::string_view key) {
  if (key.size() > DB::kMaxKeyBytes) {
    if (status_.ok()) status_ = Status::invalid_argument("key too large");
    return;
  }
  rep_.push_back(static_cast<char>(RecordType::kDelete));
  put_u32(&rep_, static_cast<std::uint32_t>(key.size()));
  rep_.append(key);
  ++count_;
  const auto c = static_cast<std::uint32_t>(count_);
  std::memcpy(rep_.data() + 8, &c, 4);
}

}  // namespace sisu
