#include "util/status.h"

#include <gtest/gtest.h>

#include <utility>

namespace sisu {
namespace {

TEST(Status, OkIsDefaultAndCarriesNothing) {
  const Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_TRUE(Status::OK().ok());
  EXPECT_EQ(s.code(), Status::Code::kOk);
  EXPECT_EQ(s.to_string(), "OK");
  EXPECT_TRUE(s.message().empty());
  EXPECT_FALSE(s.is_not_found() || s.is_corruption() || s.is_invalid_argument() || s.is_io_error());
}

TEST(Status, EachFactorySetsExactlyItsCode) {
  struct Case {
    Status s;
    const char* text;
  };
  const Case cases[] = {
      {Status::not_found("k"), "NotFound: k"},
      {Status::corruption("crc in table 17"), "Corruption: crc in table 17"},
      {Status::invalid_argument("bad size"), "Invalid argument: bad size"},
      {Status::io_error("ENOSPC"), "IO error: ENOSPC"},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(c.s.ok());
    const int set = int{c.s.is_not_found()} + int{c.s.is_corruption()} +
                    int{c.s.is_invalid_argument()} + int{c.s.is_io_error()};
    EXPECT_EQ(set, 1) << c.text;
    EXPECT_EQ(c.s.to_string(), c.text);
  }
  EXPECT_TRUE(Status::not_found("").is_not_found());
  EXPECT_TRUE(Status::corruption("").is_corruption());
  EXPECT_TRUE(Status::invalid_argument("").is_invalid_argument());
  EXPECT_TRUE(Status::io_error("").is_io_error());
  EXPECT_EQ(Status::corruption("x").message(), "x");
}

TEST(Status, CopyIsDeepAndMoveLeavesOk) {
  Status a = Status::io_error("disk full");
  Status b = a;
  EXPECT_TRUE(b.is_io_error());
  EXPECT_EQ(b.to_string(), a.to_string());
  a = Status::OK();
  EXPECT_TRUE(a.ok());
  EXPECT_EQ(b.to_string(), "IO error: disk full");  // b owns its own message

  Status c = std::move(b);
  EXPECT_TRUE(c.is_io_error());
  b = c;
  EXPECT_TRUE(b.is_io_error());
  c = c;  // self-assignment keeps the value
  EXPECT_EQ(c.to_string(), "IO error: disk full");
}

TEST(Status, MessageKeepsArbitraryBytes) {
  const std::string bytes("a\0b", 3);
  const Status s = Status::corruption(bytes);
  EXPECT_EQ(s.message(), bytes);
  EXPECT_EQ(s.message().size(), 3u);
}

}  // namespace
}  // namespace sisu
