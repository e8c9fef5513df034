// The main of every sisu benchmark: Google Benchmark's, plus the allocator the binary runs on
// (jemalloc when SISU_JEMALLOC found it, glibc's otherwise) in the context block.
#include <benchmark/benchmark.h>

#include <string>

#ifdef SISU_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

int main(int argc, char** argv) {
  std::string malloc_name = "glibc malloc";
#ifdef SISU_HAVE_JEMALLOC
  const char* version = nullptr;
  std::size_t len = sizeof(version);
  if (mallctl("version", &version, &len, nullptr, 0) == 0) {
    malloc_name = std::string("jemalloc ") + version;
  }
#endif
  benchmark::AddCustomContext("malloc", malloc_name);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
