// CRC32C (Castagnoli), the checksum of sisu's files, as in iSCSI, ext4 and LevelDB.
// Computed with the CPU's CRC32C instruction (SSE4.2 on x86-64, chosen at run time; the
// ARMv8 CRC extension on aarch64); a bitwise loop serves other CPUs. No Debian library
// provides CRC32C, and the instruction makes a table unnecessary.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sisu::crc32c {

// The CRC32C of data[0, n) continuing from `crc` (the value of the bytes before).
std::uint32_t extend(std::uint32_t crc, const void* data, std::size_t n) noexcept;
inline std::uint32_t value(const void* data, std::size_t n) noexcept { return extend(0, data, n); }

// The portable path, exposed so tests can compare it with the hardware one.
std::uint32_t extend_portable(std::uint32_t crc, const void* data, std::size_t n) noexcept;
bool hardware_available() noexcept;

}  // namespace sisu::crc32c
