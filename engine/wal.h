// The write-ahead log's framing. A WAL segment (NNNNNN.log) is a sequence of records:
//
//   +-----------+-----------+------------------------+
//   | crc (u32) | len (u32) | payload (len bytes)    |   crc = CRC32C(len bytes + payload)
//   +-----------+-----------+------------------------+
//
// One record per WriteBatch (engine/write_batch.h), so a batch is in the log whole or not at
// all. A commit group's records are framed into one buffer and written with one write().
// A crash can leave a torn record at the end of the last segment: reading stops at the first
// record whose length runs past the end or whose checksum fails, and reports where.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "util/crc32c.h"

namespace sisu::wal {

inline constexpr std::size_t kHeaderBytes = 8;

inline void append_record(std::string* out, std::string_view payload) {
  const auto len = static_cast<std::uint32_t>(payload.size());
  const std::uint32_t crc =
      crc32c::extend(crc32c::value(&len, 4), payload.data(), payload.size());
  out->append(reinterpret_cast<const char*>(&crc), 4);
  out->append(reinterpret_cast<const char*>(&len), 4);
  out->append(payload);
}

// The same for a payload whose first 8 bytes are replaced by `head` (a batch with its
// sequence number filled in), without copying the payload first.
inline void append_record(std::string* out, const char (&head)[8], std::string_view payload) {
  const auto len = static_cast<std::uint32_t>(payload.size());
  std::uint32_t crc = crc32c::extend(crc32c::value(&len, 4), head, 8);
  crc = crc32c::extend(crc, payload.data() + 8, payload.size() - 8);
  out->append(reinterpret_cast<const char*>(&crc), 4);
  out->append(reinterpret_cast<const char*>(&len), 4);
  out->append(head, 8);
  out->append(payload.substr(8));
}

// Calls f(payload, offset) for each intact record of `segment`, in order; returns the number
// of bytes those records take (== segment.size() when the segment ends cleanly).
template <class F>
std::uint64_t read_records(std::string_view segment, F&& f) {
  std::uint64_t at = 0;
  while (segment.size() - at >= kHeaderBytes) {
    std::uint32_t crc, len;
    std::memcpy(&crc, segment.data() + at, 4);
    std::memcpy(&len, segment.data() + at + 4, 4);
    if (len > segment.size() - at - kHeaderBytes) break;
    const std::string_view payload = segment.substr(at + kHeaderBytes, len);
    if (crc != crc32c::extend(crc32c::value(&len, 4), payload.data(), payload.size())) break;
    if (!f(payload, at)) break;
    at += kHeaderBytes + len;
  }
  return at;
}

}  // namespace sisu::wal
