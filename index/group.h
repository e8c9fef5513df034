// Group: the 16 slots of a small table whose metadata is compared at once.
//
// A group's metadata is 32 contiguous bytes: the 16 slots' tophash bytes, then their 16
// triehash bytes. A probe for a key asks for the slots whose (tophash, triehash) both equal the
// key's, and whether the group has an empty slot (then the probe can stop).
//
//   byte:   0 ........ 15 16 ....... 31
//           tophash[16]    triehash[16]
//
//   tophash byte: 0 = empty, 1 = tombstone (erased), 2..255 = full (see meta.h)
//
// Three implementations answer the same questions with the same results (a test checks it):
//   GroupPortable  SWAR on 64-bit words: any CPU.
//   GroupSse2      two 16-byte compares: every x86-64 CPU.
//   GroupAvx2      one 32-byte compare of both halves at once.
// `Group` is the one the map uses: AVX2 when the build targets it (-DSISU_NATIVE=ON or
// -mavx2), otherwise SSE2 on x86-64, otherwise the portable one (or when SISU_GROUP_PORTABLE
// is defined). The layout is the same for all three, so files written by one build are read
// by the others (tests/index/file_compat_main.cc checks it across three builds).
//
// Thread-safety: stateless functions over memory the caller owns.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace sisu::index_internal {

inline constexpr unsigned kGroupWidth = 16;
inline constexpr unsigned kGroupMetaBytes = 2 * kGroupWidth;
inline constexpr std::uint8_t kEmpty = 0;
inline constexpr std::uint8_t kTombstone = 1;

// A key's tophash: the hash's low byte, with 0 and 1 (empty and tombstone) moved to 2 and 3.
inline std::uint8_t tophash(std::uint64_t h) {
  const auto t = static_cast<std::uint8_t>(h);
  return t < 2 ? static_cast<std::uint8_t>(t + 2) : t;
}
// The group where a key's probe starts in a table of `groups` groups: a function of the
// stored tophash and the table's size only, so entries move between tables without their hash.
inline std::uint32_t home_group(std::uint8_t top, std::uint32_t groups) {
  return (std::uint32_t{top} * groups) >> 8;
}

// Bit i set: slot i of the group. Iterate with `for (; m; m &= m - 1) slot = ctz(m)`.
using SlotMask = std::uint32_t;

inline unsigned lowest_slot(SlotMask m) { return static_cast<unsigned>(std::countr_zero(m)); }

#if defined(__GNUC__)
#define SISU_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define SISU_ALWAYS_INLINE inline
#endif

struct GroupPortable {
  // Bit i of the result: byte i of the 16 at p equals b.
  static SlotMask match_byte(const std::uint8_t* p, std::uint8_t b) {
    SlotMask out = 0;
    for (unsigned half = 0; half < 2; ++half) {
      std::uint64_t w;
      std::memcpy(&w, p + 8 * half, 8);
      // Exact zero-byte test: a byte of x is 0x80 iff that byte of w equals b.
      const std::uint64_t x = w ^ (0x0101010101010101ULL * b);
      const std::uint64_t zero =
          ~(((x & 0x7f7f7f7f7f7f7f7fULL) + 0x7f7f7f7f7f7f7f7fULL) | x | 0x7f7f7f7f7f7f7f7fULL);
      out |= gather_high_bits(zero) << (8 * half);
    }
    return out;
  }
  static SlotMask match(const std::uint8_t* meta, std::uint8_t top, std::uint8_t trie) {
    return match_byte(meta, top) & match_byte(meta + kGroupWidth, trie);
  }
  static SlotMask match_empty(const std::uint8_t* meta) { return match_byte(meta, kEmpty); }
  static SlotMask match_free(const std::uint8_t* meta) {  // empty or tombstone
    return match_byte(meta, kEmpty) | match_byte(meta, kTombstone);
  }
  static SlotMask match_full(const std::uint8_t* meta) { return ~match_free(meta) & 0xffffu; }
  // Bit i: bit `bit` of slot i's triehash is set.
  static SlotMask trie_bit(const std::uint8_t* meta, unsigned bit) {
    SlotMask out = 0;
    for (unsigned i = 0; i < kGroupWidth; ++i) out |= SlotMask{(meta[kGroupWidth + i] >> bit) & 1u} << i;
    return out;
  }

 private:
  // Bit 7 of byte i of w -> bit i of the result.
  static SlotMask gather_high_bits(std::uint64_t w) {
    return static_cast<SlotMask>(((w >> 7) & 0x0101010101010101ULL) * 0x0102040810204080ULL >>
                                 56);
  }
};

#if defined(__SSE2__)
struct GroupSse2 {
  static SlotMask match(const std::uint8_t* meta, std::uint8_t top, std::uint8_t trie) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(meta));
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(meta + kGroupWidth));
    const __m128i mt = _mm_cmpeq_epi8(t, _mm_set1_epi8(static_cast<char>(top)));
    const __m128i mh = _mm_cmpeq_epi8(h, _mm_set1_epi8(static_cast<char>(trie)));
    return static_cast<SlotMask>(_mm_movemask_epi8(_mm_and_si128(mt, mh)));
  }
  static SlotMask match_empty(const std::uint8_t* meta) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(meta));
    return static_cast<SlotMask>(_mm_movemask_epi8(_mm_cmpeq_epi8(t, _mm_setzero_si128())));
  }
  static SlotMask match_free(const std::uint8_t* meta) {  // byte & 0xfe == 0
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(meta));
    const __m128i masked = _mm_and_si128(t, _mm_set1_epi8(static_cast<char>(0xfe)));
    return static_cast<SlotMask>(
        _mm_movemask_epi8(_mm_cmpeq_epi8(masked, _mm_setzero_si128())));
  }
  static SlotMask match_full(const std::uint8_t* meta) { return ~match_free(meta) & 0xffffu; }
  static SlotMask trie_bit(const std::uint8_t* meta, unsigned bit) {
    // Shifting 16-bit lanes left by 7 - bit puts bit `bit` of each byte in its sign bit.
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(meta + kGroupWidth));
    return static_cast<SlotMask>(
        _mm_movemask_epi8(_mm_sll_epi16(h, _mm_cvtsi32_si128(static_cast<int>(7 - bit)))));
  }
};
#endif

#if defined(__x86_64__)
// Compiled for AVX2 whatever the build flags, so that tests can compare it with the others on
// a CPU that has AVX2; the map uses it only in builds that target AVX2.
struct GroupAvx2 {
  __attribute__((target("avx2"))) static SlotMask match(const std::uint8_t* meta,
                                                        std::uint8_t top, std::uint8_t trie) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(meta));
    const __m256i want = _mm256_setr_m128i(_mm_set1_epi8(static_cast<char>(top)),
                                           _mm_set1_epi8(static_cast<char>(trie)));
    const auto bits = static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, want)));
    return bits & (bits >> 16);
  }
  __attribute__((target("avx2"))) static SlotMask match_empty(const std::uint8_t* meta) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(meta));
    return static_cast<SlotMask>(_mm_movemask_epi8(_mm_cmpeq_epi8(t, _mm_setzero_si128())));
  }
  __attribute__((target("avx2"))) static SlotMask match_free(const std::uint8_t* meta) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(meta));
    const __m128i masked = _mm_and_si128(t, _mm_set1_epi8(static_cast<char>(0xfe)));
    return static_cast<SlotMask>(
        _mm_movemask_epi8(_mm_cmpeq_epi8(masked, _mm_setzero_si128())));
  }
  static SlotMask match_full(const std::uint8_t* meta) { return ~match_free(meta) & 0xffffu; }
  __attribute__((target("avx2"))) static SlotMask trie_bit(const std::uint8_t* meta,
                                                           unsigned bit) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(meta + kGroupWidth));
    return static_cast<SlotMask>(
        _mm_movemask_epi8(_mm_sll_epi16(h, _mm_cvtsi32_si128(static_cast<int>(7 - bit)))));
  }
  static bool cpu_supports() { return __builtin_cpu_supports("avx2"); }
};
#endif

#if defined(SISU_GROUP_PORTABLE)  // force the portable matcher (tests, other CPUs)
using Group = GroupPortable;
inline constexpr const char* kGroupImpl = "portable";
#elif defined(__AVX2__)
using Group = GroupAvx2;
inline constexpr const char* kGroupImpl = "avx2";
#elif defined(__SSE2__)
using Group = GroupSse2;
inline constexpr const char* kGroupImpl = "sse2";
#else
using Group = GroupPortable;
inline constexpr const char* kGroupImpl = "portable";
#endif

// What a lookup of an absent key costs in one table: the groups it scans from the home group of
// its tophash to the first group with an empty slot, averaged over the 256 byte values (0 and 1
// taken as tophash() maps them). `meta` is the table's metadata, group after group, as both
// the map and a saved file lay it out.
inline double mean_miss_groups(const std::uint8_t* meta, std::uint32_t groups) {
  std::size_t scanned = 0;
  for (unsigned v = 0; v < 256; ++v) {
    std::uint32_t g = home_group(tophash(v), groups);
    for (std::uint32_t n = 1; n <= groups; ++n) {
      ++scanned;
      if (Group::match_empty(meta + std::size_t{g} * kGroupMetaBytes) != 0) break;
      if (++g == groups) g = 0;
    }
  }
  return static_cast<double>(scanned) / 256;
}

}  // namespace sisu::index_internal
