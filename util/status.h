// Status: the result of an operation that can fail for reasons outside the caller's control
// (a damaged file, a full disk, bad input data). Modelled on LevelDB's Status.
//
// An OK status holds no allocation, so returning Status::OK() on the hot path is as cheap as
// returning a pointer. A failed status owns its code and message.
//
// Thread-safety: a Status is a value. Distinct objects may be used from distinct threads; one
// object needs external synchronization for writes, like std::string.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace sisu {

class [[nodiscard]] Status {
 public:
  enum class Code : unsigned char {
    kOk = 0,
    kNotFound = 1,
    kCorruption = 2,
    kInvalidArgument = 3,
    kIoError = 4,
  };

  Status() noexcept = default;  // OK
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&& other) noexcept = default;
  Status& operator=(Status&& other) noexcept = default;
  ~Status() = default;

  static Status OK() noexcept { return Status(); }
  static Status not_found(std::string_view msg) { return Status(Code::kNotFound, msg); }
  static Status corruption(std::string_view msg) { return Status(Code::kCorruption, msg); }
  static Status invalid_argument(std::string_view msg) {
    return Status(Code::kInvalidArgument, msg);
  }
  static Status io_error(std::string_view msg) { return Status(Code::kIoError, msg); }

  bool ok() const noexcept { return rep_ == nullptr; }
  bool is_not_found() const noexcept { return code() == Code::kNotFound; }
  bool is_corruption() const noexcept { return code() == Code::kCorruption; }
  bool is_invalid_argument() const noexcept { return code() == Code::kInvalidArgument; }
  bool is_io_error() const noexcept { return code() == Code::kIoError; }

  Code code() const noexcept { return rep_ ? rep_->code : Code::kOk; }
  // The message alone, without the code's name; empty for OK.
  std::string_view message() const noexcept {
    return rep_ ? std::string_view(rep_->message) : std::string_view();
  }
  // "OK", or the code's name and the message, e.g. "Corruption: bad checksum in table 17".
  std::string to_string() const;

 private:
  struct Rep {
    Code code;
    std::string message;
  };

  Status(Code code, std::string_view msg);

  std::unique_ptr<Rep> rep_;  // null means OK
};

}  // namespace sisu
