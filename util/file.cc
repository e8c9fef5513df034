#include "util/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace sisu {
namespace {

constexpr std::size_t kWriteChunk = std::size_t{1} << 20;

Status errno_status(const std::string& what, const std::string& path) {
  return Status::io_error(what + " " + path + ": " + std::strerror(errno));
}

// Writes all of `data`, retrying short writes and EINTR.
Status write_all(int fd, const std::string& data, const std::string& path) {
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("cannot write", path);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return Status::OK();
}

std::string dir_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

namespace file_internal {

void WriteBuffer::reserve_chunk() { bytes_.reserve(kWriteChunk); }

Status WriteBuffer::append(int fd, const std::string& path, const void* data, std::size_t n) {
  bytes_.append(static_cast<const char*>(data), n);
  if (bytes_.size() >= kWriteChunk) return flush(fd, path);
  return Status::OK();
}

Status WriteBuffer::flush(int fd, const std::string& path) {
  Status s = write_all(fd, bytes_, path);
  bytes_.clear();
  return s;
}

}  // namespace file_internal

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  // Unique per process and per writer, so that concurrent saves never share a temporary.
  static std::atomic<std::uint64_t> counter{0};
  tmp_path_ = path_ + ".tmp." + std::to_string(::getpid()) + "." +
              std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && fd_ != -1) ::unlink(tmp_path_.c_str());
}

Status AtomicFileWriter::open() {
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    fd_ = -1;
    return errno_status("cannot create", tmp_path_);
  }
  buffer_.reserve_chunk();
  return Status::OK();
}

Status AtomicFileWriter::append(const void* data, std::size_t n) {
  written_ += n;
  return buffer_.append(fd_, tmp_path_, data, n);
}

Status AtomicFileWriter::commit() {
  if (Status s = buffer_.flush(fd_, tmp_path_); !s.ok()) return s;
  if (::fsync(fd_) != 0) return errno_status("cannot fsync", tmp_path_);
  if (::close(fd_) != 0) {
    fd_ = -2;  // closed: the destructor must not close it again, but still unlinks
    return errno_status("cannot close", tmp_path_);
  }
  fd_ = -2;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    return errno_status("cannot rename to", path_);
  }
  committed_ = true;
  // The rename is durable only once the directory is.
  return sync_directory(dir_of(path_));
}

Status sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status("cannot open directory", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return errno_status("cannot fsync directory", dir);
  return Status::OK();
}

FileReader::~FileReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status FileReader::open(const std::string& path) {
  path_ = path;
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) return errno_status("cannot open", path);
  struct stat st;
  if (::fstat(fd_, &st) != 0) return errno_status("cannot stat", path);
  if (!S_ISREG(st.st_mode)) return Status::corruption(path + ": not a regular file");
  size_ = static_cast<std::uint64_t>(st.st_size);
  return Status::OK();
}

Status FileReader::read_at(std::uint64_t offset, void* out, std::size_t n) const {
  if (offset > size_ || n > size_ - offset) {
    return Status::corruption(path_ + ": truncated (needs " + std::to_string(n) +
                              " bytes at offset " + std::to_string(offset) + ", file has " +
                              std::to_string(size_) + ")");
  }
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_status("cannot read", path_);
    }
    if (r == 0) return Status::corruption(path_ + ": truncated while reading");
    p += r;
    n -= static_cast<std::size_t>(r);
    offset += static_cast<std::uint64_t>(r);
  }
  return Status::OK();
}

AppendFileWriter::~AppendFileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status file_id(const std::string& path, FileId* out) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return errno_status("cannot stat", path);
  *out = FileId{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
  return Status::OK();
}

Status AppendFileWriter::open(const std::string& path, const FileId& expected,
                              std::uint64_t expected_bytes) {
  path_ = path;
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0 && errno == ENOENT) return Status::corruption(path + ": removed by another writer");
  if (fd_ < 0) return errno_status("cannot open", path);
  struct stat st;
  if (::fstat(fd_, &st) != 0) return errno_status("cannot stat", path);
  const FileId id{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
  if (id != expected) return Status::corruption(path + ": replaced by another writer");
  if (static_cast<std::uint64_t>(st.st_size) != expected_bytes) {
    return Status::corruption(path + ": changed by another writer (" +
                              std::to_string(st.st_size) + " bytes, expected " +
                              std::to_string(expected_bytes) + ")");
  }
  size_ = expected_bytes;
  return Status::OK();
}

Status AppendFileWriter::append(const void* data, std::size_t n) {
  size_ += n;
  return buffer_.append(fd_, path_, data, n);
}

Status AppendFileWriter::sync() {
  if (Status s = buffer_.flush(fd_, path_); !s.ok()) return s;
  if (::fdatasync(fd_) != 0) return errno_status("cannot sync", path_);
  return Status::OK();
}

}  // namespace sisu
