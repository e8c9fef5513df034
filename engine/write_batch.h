// The encoding of a WriteBatch, which is also its WAL record's payload, and the engine's
// access to it. Internal to the engine.
//
//   +-----------+----------+-------------------------------------------------+
//   | seq (u64) | count u32| op op op ...                                    |
//   +-----------+----------+-------------------------------------------------+
//   op:  type u8 (kPut 1, kDelete 0) | key_bytes u32 | key | [value_bytes u32 | value]
//
// `seq` is the sequence number of the batch's first op (op i has seq + i), filled in by the
// commit that logs it. All integers little-endian.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/db.h"

namespace sisu {

enum class RecordType : std::uint8_t { kDelete = 0, kPut = 1 };

inline constexpr std::size_t kBatchHeaderBytes = 12;

struct WriteBatchAccess {
  static const std::string& rep(const WriteBatch& b) { return b.rep_; }
  static const Status& status(const WriteBatch& b) { return b.status_; }
  static std::uint64_t payload_bytes(const WriteBatch& b) {
    return b.rep_.size() - kBatchHeaderBytes;
  }
};

inline void put_u32(std::string* out, std::uint32_t v) {
  out->append(reinterpret_cast<const char*>(&v), 4);
}
inline void put_u64(std::string* out, std::uint64_t v) {
  out->append(reinterpret_cast<const char*>(&v), 8);
}
inline std::uint32_t get_u32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline std::uint64_t get_u64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Calls f(seq, type, key, value) for each op of an encoded batch; false if the encoding is
// malformed (then nothing was called: the batch is checked whole before the first call).
template <class F>
bool for_each_op(std::string_view rep, F&& f) {
  if (rep.size() < kBatchHeaderBytes) return false;
  const std::uint64_t seq = get_u64(rep.data());
  const std::uint32_t count = get_u32(rep.data() + 8);
  for (int pass = 0; pass < 2; ++pass) {
    std::size_t at = kBatchHeaderBytes;
    for (std::uint32_t i = 0; i < count; ++i) {
      if (rep.size() - at < 5) return false;
      const auto type = static_cast<std::uint8_t>(rep[at]);
      if (type > 1) return false;
      const std::uint32_t kb = get_u32(rep.data() + at + 1);
      at += 5;
      if (rep.size() - at < kb) return false;
      const std::string_view key = rep.substr(at, kb);
      at += kb;
      std::string_view value;
      if (type == 1) {
        if (rep.size() - at < 4) return false;
        const std::uint32_t vb = get_u32(rep.data() + at);
        at += 4;
        if (rep.size() - at < vb) return false;
        value = rep.substr(at, vb);
        at += vb;
      }
      if (pass == 1) f(seq + i, static_cast<RecordType>(type), key, value);
    }
    if (at != rep.size()) return false;
  }
  return true;
}

}  // namespace sisu
