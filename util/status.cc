#include "util/status.h"

namespace sisu {

Status::Status(Code code, std::string_view msg)
    : rep_(std::make_unique<Rep>(Rep{code, std::string(msg)})) {}

Status::Status(const Status& other)
    : rep_(other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) rep_ = other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr;
  return *this;
}

std::string Status::to_string() const {
  const char* name = "OK";
  switch (code()) {
    case Code::kOk:
      return "OK";
    case Code::kNotFound:
      name = "NotFound: ";
      break;
    case Code::kCorruption:
      name = "Corruption: ";
      break;
    case Code::kInvalidArgument:
      name = "Invalid argument: ";
      break;
    case Code::kIoError:
      name = "IO error: ";
      break;
  }
  std::string out(name);
  out += rep_->message;
  return out;
}

}  // namespace sisu
