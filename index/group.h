// Group: the slots of a small table whose metadata is compared at once.
//
// A group's metadata is 32 contiguous bytes, two halves of 16 "lanes" compared with one SIMD
// instruction each: the slots' tophash bytes, then their triehash bytes. Lanes 0..14 are the
// group's 15 slots; lane 15 of each half is the group's overflow filter (16 bits, see
// overflowed() below). A probe for a key asks for the slots whose (tophash, triehash) both
// equal the key's, and whether a key like it was ever pushed past this group (if not, the
// probe stops here).
//
//   byte:   0 ........ 14   15       16 ....... 30   31
//           tophash[15]     filter lo triehash[15]    filter hi
//
//   tophash byte: 0 = empty, 1 = tombstone (erased), 2..255 = full
//
// Format version 1 files used all 16 lanes as slots and had no filter (a probe stopped at a
// group with an empty slot); readers of those files pass kLanesV1 where the map uses
// kSlotLanes.
//
// Three implementations answer the same questions with the same results (a test checks it):
//   GroupPortable  SWAR on 64-bit words: any CPU.
//   GroupSse2      two 16-byte compares: every x86-64 CPU.
//   GroupAvx2      one 32-byte compare of both halves at once.
// They answer for all 16 lanes; callers keep the slot lanes (& kSlotLanes).
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

inline constexpr unsigned kGroupWidth = 16;  // lanes per half
inline constexpr unsigned kGroupMetaBytes = 2 * kGroupWidth;
inline constexpr unsigned kGroupSlots = 15;  // slots per group; lane 15 holds the filter
// A table is full at 15/16 of its slots (ExtendibleHashMap explains why); readers of saved
// files reject a table fuller than the map ever makes one.
inline constexpr std::size_t kMaxLoadNum = 15, kMaxLoadDen = 16;
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
inline constexpr SlotMask kSlotLanes = (SlotMask{1} << kGroupSlots) - 1;  // 0x7fff
inline constexpr SlotMask kLanesV1 = 0xffff;  // format version 1: 16 slots, no filter

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

// Group's answers for the 15 slot lanes: what the map and version 2 files use.
struct SlotGroup {
  static SlotMask match(const std::uint8_t* meta, std::uint8_t top, std::uint8_t trie) {
    return Group::match(meta, top, trie) & kSlotLanes;
  }
  static SlotMask match_empty(const std::uint8_t* meta) {
    return Group::match_empty(meta) & kSlotLanes;
  }
  static SlotMask match_free(const std::uint8_t* meta) {
    return Group::match_free(meta) & kSlotLanes;
  }
  static SlotMask match_full(const std::uint8_t* meta) {
    return Group::match_full(meta) & kSlotLanes;
  }
  static SlotMask trie_bit(const std::uint8_t* meta, unsigned bit) {
    return Group::trie_bit(meta, bit) & kSlotLanes;
  }
};

// Overflow filter: 16 bits per group (byte 15 and byte 31 of its metadata, on the line the
// probe reads anyway). Bit (triehash & 15) is set when an entry with that triehash is placed
// beyond the group because the group had no free slot; a probe for a key whose bit is clear
// stops at the group, full or not. Without it a miss in a table near its 15/16 max load
// scanned every full group up to one with an empty slot (2.6 groups per miss on a grown
// 4M-key map, docs/benchmarks.md). The bit comes from triehash bits 0..3, which no split
// consumes (kTrieSplits <= 4) and which are independent of the tophash that chose the home
// group. A group with an empty slot has no bit set (a key passes only a group with no free
// slot, and an erase in such a group leaves a tombstone). Bits are set between rebuilds
// and never cleared by an erase: a stale bit costs a longer probe, never a wrong answer.
inline constexpr unsigned kFilterLo = kGroupWidth - 1, kFilterHi = 2 * kGroupWidth - 1;
// The byte of a group's metadata that holds the filter bit of triehash `trie`.
inline unsigned filter_byte(std::uint8_t trie) {
  return kFilterLo + ((trie & 8u) << 1);  // byte 15 for bits 0..7, 31 for 8..15
}
inline bool overflowed(const std::uint8_t* meta, std::uint8_t trie) {
  return (meta[filter_byte(trie)] >> (trie & 7u)) & 1u;
}
inline void mark_overflow(std::uint8_t* meta, std::uint8_t trie) {
  meta[filter_byte(trie)] |= static_cast<std::uint8_t>(1u << (trie & 7u));
}

// Calls f(g) for each group a probe from `home` passes before reaching group `at`.
template <class F>
inline void for_each_passed_group(std::uint32_t home, std::uint32_t at, std::uint32_t groups,
                                  F&& f) {
  for (std::uint32_t x = home; x != at; x = x + 1 == groups ? 0 : x + 1) f(x);
}

// The filters a table's entries need, in `filter` (16 bits per group), computed from the full
// slots of its metadata: each entry's bit on every group from its home group up to the group
// that holds it. A loaded file's filters must include these (filter_fault).
inline void needed_filters(const std::uint8_t* meta, std::uint32_t groups, std::uint16_t* filter) {
  std::memset(filter, 0, std::size_t{groups} * sizeof(std::uint16_t));
  for (std::uint32_t g = 0; g < groups; ++g) {
    const std::uint8_t* m = meta + std::size_t{g} * kGroupMetaBytes;
    for (SlotMask full = SlotGroup::match_full(m); full != 0; full &= full - 1) {
      const unsigned slot = lowest_slot(full);
      const auto bit = static_cast<std::uint16_t>(1u << (m[kGroupWidth + slot] & 15u));
      for_each_passed_group(home_group(m[slot], groups), g, groups,
                            [&](std::uint32_t x) { filter[x] |= bit; });
    }
  }
}
inline std::uint16_t stored_filter(const std::uint8_t* group_meta) {
  return static_cast<std::uint16_t>(group_meta[kFilterLo] | group_meta[kFilterHi] << 8);
}
inline void store_filter(std::uint8_t* group_meta, std::uint16_t bits) {
  group_meta[kFilterLo] = static_cast<std::uint8_t>(bits);
  group_meta[kFilterHi] = static_cast<std::uint8_t>(bits >> 8);
}

// What is wrong with a saved table's filters, or null when nothing is: every bit an entry's
// probe needs must be set (else a lookup stops short of the entry), and no entry may lie
// beyond a group with an empty slot (the map never places one there, and its insert fast
// path relies on it: a key not in its home group is absent when that group has an empty
// slot). Only a hostile writer makes either with good checksums.
inline const char* filter_fault(const std::uint8_t* meta, std::uint32_t groups) {
  std::uint16_t need[256];
  needed_filters(meta, groups, need);
  for (std::uint32_t g = 0; g < groups; ++g) {
    const std::uint8_t* m = meta + std::size_t{g} * kGroupMetaBytes;
    if ((stored_filter(m) & need[g]) != need[g]) return "overflow filter cuts off entries";
    if (need[g] != 0 && SlotGroup::match_empty(m) != 0) {
      return "an entry lies beyond a group with an empty slot";
    }
  }
  return nullptr;
}

// How a saved file's groups are laid out, by its format version (index_file_format.h):
// version 2 is the map's layout above; version 1 had 16 slots per group and no filter, so a
// probe went on to the next group until one had an empty slot. Readers of saved files
// (MappedIndex, IndexFile) take both; the map loads version 1 by re-inserting its entries.
struct GroupLayout {
  std::uint32_t slots;  // per group
  SlotMask lanes;       // the lanes that are slots
  bool filter;          // probes stop at a clear filter bit (else at an empty slot)

  static GroupLayout for_version(std::uint32_t format_version) {
    return format_version == 1 ? GroupLayout{kGroupWidth, kLanesV1, false}
                               : GroupLayout{kGroupSlots, kSlotLanes, true};
  }
  // Whether a probe for a key with triehash `trie` that found nothing in this group stops.
  bool stops(const std::uint8_t* meta, std::uint8_t trie) const {
    return filter ? !overflowed(meta, trie) : (Group::match_empty(meta) & lanes) != 0;
  }
  // Slot i's tophash byte in a table's metadata.
  std::uint8_t top_of(const std::uint8_t* meta, std::uint32_t i) const {
    return meta[std::size_t{i / slots} * kGroupMetaBytes + i % slots];
  }
  std::uint64_t group_bytes(std::uint64_t slot_bytes) const {
    return kGroupMetaBytes + slots * slot_bytes;
  }
  // The most slots (full or tombstone) a table of `groups` groups may use.
  std::uint64_t max_used(std::uint32_t groups) const {
    return std::uint64_t{groups} * slots * kMaxLoadNum / kMaxLoadDen;
  }
};

// What a lookup of an absent key costs in one table: the groups it scans from the home group of
// its tophash to the first group that stops it, averaged over the 256 tophash byte values (0
// and 1 taken as tophash() maps them) and the 16 filter bits. `meta` is the table's metadata,
// group after group, as both the map and a saved file lay it out.
inline double mean_miss_groups(const std::uint8_t* meta, std::uint32_t groups,
                               const GroupLayout& layout = GroupLayout::for_version(2)) {
  std::size_t scanned = 0;
  for (unsigned v = 0; v < 256; ++v) {
    for (unsigned bit = 0; bit < 16; ++bit) {
      std::uint32_t g = home_group(tophash(v), groups);
      for (std::uint32_t n = 1; n <= groups; ++n) {
        ++scanned;
        if (layout.stops(meta + std::size_t{g} * kGroupMetaBytes, static_cast<std::uint8_t>(bit))) {
          break;
        }
        if (++g == groups) g = 0;
      }
    }
  }
  return static_cast<double>(scanned) / (256 * 16);
}

}  // namespace sisu::index_internal
