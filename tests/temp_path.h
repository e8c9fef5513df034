// A path under the system's temporary directory for the running test: PREFIX_PID_TESTNAME, so
// that neither another test nor a concurrent run of this one (ctest -j) uses it.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace sisu::testing_support {

inline std::string test_temp_path(const std::string& prefix) {
  return (std::filesystem::temp_directory_path() /
          (prefix + "_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name()))
      .string();
}

}  // namespace sisu::testing_support
