// Shared by the fuzz targets: the loaders take a path, so each input is written to a file of
// this process's own first.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace sisu::fuzz {

inline const std::string& input_path() {
  static const std::string path = "/tmp/sisu_fuzz_input." + std::to_string(::getpid());
  return path;
}

inline bool write_input(const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(input_path().c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && ok;
}

}  // namespace sisu::fuzz
