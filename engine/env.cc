#include "engine/env.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/file.h"

namespace sisu {
namespace {

Status errno_status(const char* what, const std::string& path, int err = errno) {
  return Status::io_error(std::string(what) + " " + path + ": " + std::strerror(err));
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status append(std::string_view data) override {
    if (buffer_.size() + data.size() > kBufferBytes) {
      if (Status s = flush(); !s.ok()) return s;
      if (data.size() >= kBufferBytes) return write_all(data);
    }
    buffer_.append(data);
    return Status::OK();
  }
  Status flush() override {
    Status s = write_all(buffer_);
    buffer_.clear();
    return s;
  }
  Status sync() override {
    if (Status s = flush(); !s.ok()) return s;
    if (::fdatasync(fd_) != 0) return errno_status("cannot sync", path_);
    return Status::OK();
  }
  void preallocate_ahead(std::uint64_t chunk_bytes) override { chunk_ = chunk_bytes; }

  Status close() override {
    Status s = flush();
    if (fd_ >= 0 && ::close(fd_) != 0 && s.ok()) s = errno_status("cannot close", path_);
    fd_ = -1;
    return s;
  }

 private:
  static constexpr std::size_t kBufferBytes = 1 << 20;

  Status write_all(std::string_view data) {
    if (chunk_ > 0 && written_ + data.size() > reserved_) {
      const std::uint64_t to = written_ + data.size() + chunk_;
      if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(reserved_),
                      static_cast<off_t>(to - reserved_)) == 0) {
        reserved_ = to;
      } else {
        chunk_ = 0;  // not supported here: stop trying
      }
    }
    written_ += data.size();
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_status("cannot write", path_);
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return Status::OK();
  }

  std::string path_;
  int fd_;
  std::string buffer_;
  std::uint64_t chunk_ = 0, reserved_ = 0, written_ = 0;
};

class PosixMappedFile final : public MappedFile {
 public:
  PosixMappedFile(void* data, std::size_t size) : data_(data), size_(size) {}
  ~PosixMappedFile() override {
    if (size_ > 0) ::munmap(data_, size_);
  }
  const std::uint8_t* data() const override { return static_cast<const std::uint8_t*>(data_); }
  std::size_t size() const override { return size_; }

 private:
  void* data_;
  std::size_t size_;
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override { ::close(fd_); }  // closing releases the flock

 private:
  int fd_;
};

class PosixEnv final : public Env {
 public:
  Status new_writable_file(const std::string& path,
                           std::unique_ptr<WritableFile>* out) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno_status("cannot create", path);
    *out = std::make_unique<PosixWritableFile>(path, fd);
    return Status::OK();
  }

  Status read_file(const std::string& path, std::string* out) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status("cannot open", path);
    out->clear();
    char buf[1 << 16];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        Status s = errno_status("cannot read", path);
        ::close(fd);
        return s;
      }
      if (n == 0) break;
      out->append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return Status::OK();
  }

  Status map_file(const std::string& path, std::unique_ptr<MappedFile>* out) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status("cannot open", path);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      Status s = errno_status("cannot stat", path);
      ::close(fd);
      return s;
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return Status::corruption(path + ": not a regular file");
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    void* p = nullptr;
    if (size > 0) {
      p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) {
        Status s = errno_status("cannot map", path);
        ::close(fd);
        return s;
      }
    }
    ::close(fd);  // the mapping keeps the file
    *out = std::make_unique<PosixMappedFile>(p, size);
    return Status::OK();
  }

  Status list_dir(const std::string& dir, std::vector<std::string>* names) override {
    std::error_code ec;
    names->clear();
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      names->push_back(e.path().filename().string());
    }
    if (ec) return Status::io_error("cannot list " + dir + ": " + ec.message());
    return Status::OK();
  }

  Status remove_file(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return errno_status("cannot remove", path);
    return Status::OK();
  }

  Status rename_file(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errno_status("cannot rename", from);
    return Status::OK();
  }

  Status truncate_file(const std::string& path, std::uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) {
      return errno_status("cannot truncate", path);
    }
    return sync_file(path);
  }

  Status sync_file(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno_status("cannot open", path);
    const int rc = ::fdatasync(fd);
    ::close(fd);
    if (rc != 0) return errno_status("cannot sync", path);
    return Status::OK();
  }

  Status sync_dir(const std::string& dir) override { return sync_directory(dir); }

  Status create_dir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return errno_status("cannot create directory", dir);
    }
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Status::invalid_argument(dir + ": not a directory");
    }
    return Status::OK();
  }

  bool file_exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  Status lock_file(const std::string& path, std::unique_ptr<FileLock>* out) override {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return errno_status("cannot open", path);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      Status s = errno_status("cannot lock (is the database open elsewhere?)", path);
      ::close(fd);
      return s;
    }
    *out = std::make_unique<PosixFileLock>(fd);
    return Status::OK();
  }
};

}  // namespace

Env* Env::posix() {
  static PosixEnv* env = new PosixEnv;  // never destroyed: background threads may outlive main
  return env;
}

Status Env::write_file_atomically(const std::string& dir, const std::string& path,
                                  std::string_view data) {
  const std::string tmp = path + ".tmp";
  std::unique_ptr<WritableFile> f;
  Status s = new_writable_file(tmp, &f);
  if (s.ok()) s = f->append(data);
  if (s.ok()) s = f->sync();
  if (s.ok()) s = f->close();
  if (s.ok()) s = rename_file(tmp, path);
  if (s.ok()) s = sync_dir(dir);
  if (!s.ok()) (void)remove_file(tmp);  // best effort; the error to report is `s`
  return s;
}

}  // namespace sisu
