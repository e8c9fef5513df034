// Alloc/free churn of the index's small-table sizes: SlabAllocator against glibc malloc and
// jemalloc, in the same binary, on 1 and 2 threads.
//
// Each thread keeps a window of kWindow live blocks and, per iteration, frees a random one and
// allocates its replacement (touching its first cache line, as a table insert would). This is
// the pattern of many maps growing, splitting and dying side by side. All peers are asked for
// 64-byte aligned blocks, as sisu's tables need.
//
// glibc is reached through __libc_memalign/__libc_free, so it is measured even when the binary
// links jemalloc as its malloc; jemalloc is reached through mallocx/sdallocx and is skipped
// (with a message) when the build did not find it.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include "alloc/slab_allocator.h"

#ifdef SISU_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
void __libc_free(void* p);
}

namespace {

constexpr int kWindow = 1024;

struct SisuSlab {
  static void* alloc(std::size_t n) { return sisu::SlabAllocator::global().allocate(n); }
  static void free(void* p, std::size_t n) { sisu::SlabAllocator::global().deallocate(p, n); }
  static bool available() { return true; }
};

struct Glibc {
  static void* alloc(std::size_t n) { return __libc_memalign(64, n); }
  static void free(void* p, std::size_t) { __libc_free(p); }
  static bool available() { return true; }
};

// glibc's memalign bypasses its per-thread tcache; plain malloc (16-byte aligned, so not what
// sisu's tables need) shows glibc at its best.
struct GlibcUnaligned {
  static void* alloc(std::size_t n) { return __libc_malloc(n); }
  static void free(void* p, std::size_t) { __libc_free(p); }
  static bool available() { return true; }
};

#ifdef SISU_HAVE_JEMALLOC
struct Jemalloc {
  static void* alloc(std::size_t n) { return mallocx(n, MALLOCX_ALIGN(64)); }
  static void free(void* p, std::size_t n) { sdallocx(p, n, MALLOCX_ALIGN(64)); }
  static bool available() { return true; }
};
#else
struct Jemalloc {
  static void* alloc(std::size_t) { return nullptr; }
  static void free(void*, std::size_t) {}
  static bool available() { return false; }
};
#endif

// Sizes: range(0) > 0 is one fixed size; range(0) == 0 mixes the four table sizes.
constexpr std::size_t kMixed[] = {1024, 4608, 9216, 18432};

template <class A>
void BM_Churn(benchmark::State& state) {
  if (!A::available()) {
    state.SkipWithError("jemalloc not found at build time (install libjemalloc-dev)");
    return;
  }
  const std::size_t fixed = static_cast<std::size_t>(state.range(0));
  std::uint64_t x = 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(state.thread_index());
  auto next = [&x] {  // xorshift64: cheap enough not to be what is measured
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  auto size_of = [&](std::uint64_t r) { return fixed ? fixed : kMixed[r % 4]; };
  std::vector<void*> ptr(kWindow);
  std::vector<std::size_t> len(kWindow);
  for (int i = 0; i < kWindow; ++i) {
    len[i] = size_of(next());
    ptr[i] = A::alloc(len[i]);
  }
  for (auto _ : state) {
    const std::uint64_t r = next();
    const std::size_t i = r % kWindow;
    A::free(ptr[i], len[i]);
    len[i] = size_of(r >> 32);
    ptr[i] = A::alloc(len[i]);
    *static_cast<volatile char*>(ptr[i]) = 1;
  }
  for (int i = 0; i < kWindow; ++i) A::free(ptr[i], len[i]);
  state.SetItemsProcessed(state.iterations());
}

// Maps that grow and die: allocate kTables tables of the mixed sizes, then free them all. Each
// iteration is one allocation and one free. Unlike the window churn, a thread's cache cannot
// hold a whole map, so this exercises the path through the shared slabs.
template <class A>
void BM_MapLifecycle(benchmark::State& state) {
  if (!A::available()) {
    state.SkipWithError("jemalloc not found at build time (install libjemalloc-dev)");
    return;
  }
  constexpr int kTables = 256;
  void* tables[kTables];
  std::size_t i = static_cast<std::size_t>(state.thread_index());
  for (auto _ : state) {
    for (int t = 0; t < kTables; ++t) {
      tables[t] = A::alloc(kMixed[(i + t) % 4]);
      *static_cast<volatile char*>(tables[t]) = 1;
    }
    for (int t = 0; t < kTables; ++t) A::free(tables[t], kMixed[(i + t) % 4]);
    ++i;
  }
  state.SetItemsProcessed(state.iterations() * kTables);
  if constexpr (std::is_same_v<A, SisuSlab>) {
    if (state.thread_index() == 0) {
      state.counters["slabs_mapped"] =
          static_cast<double>(sisu::SlabAllocator::global().stats().slabs_mapped_total);
    }
  }
}

void Sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("bytes")->Arg(1024)->Arg(9216)->Arg(0);  // 0: the four table sizes mixed
  b->Threads(1)->Threads(2)->UseRealTime();
}

BENCHMARK_TEMPLATE(BM_Churn, SisuSlab)->Apply(Sizes);
BENCHMARK_TEMPLATE(BM_Churn, Glibc)->Apply(Sizes);
BENCHMARK_TEMPLATE(BM_Churn, GlibcUnaligned)->Apply(Sizes);
BENCHMARK_TEMPLATE(BM_Churn, Jemalloc)->Apply(Sizes);

void Threads(benchmark::internal::Benchmark* b) { b->Threads(1)->Threads(2)->UseRealTime(); }
BENCHMARK_TEMPLATE(BM_MapLifecycle, SisuSlab)->Apply(Threads);
BENCHMARK_TEMPLATE(BM_MapLifecycle, Glibc)->Apply(Threads);
BENCHMARK_TEMPLATE(BM_MapLifecycle, GlibcUnaligned)->Apply(Threads);
BENCHMARK_TEMPLATE(BM_MapLifecycle, Jemalloc)->Apply(Threads);

}  // namespace
