// Whole-file I/O with sisu's durability rules, reporting errors as Status.
//
// AtomicFileWriter writes a new version of a file crash-consistently: the bytes go to a
// temporary file beside it, which is fsynced, renamed over the target, and the directory is
// fsynced. After a crash at any point the target holds the old content or the new, whole.
//
// FileReader reads a file at offsets, never past its end: a short file is a Status, not a
// short read that the caller might forget to check.
//
// Thread-safety: one object per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "util/status.h"

namespace sisu {

namespace file_internal {
// Appends gathered into large write()s: what AtomicFileWriter and AppendFileWriter share.
class WriteBuffer {
 public:
  void reserve_chunk();  // room for a whole chunk ahead, so appends do not reallocate
  // Buffers the bytes, and writes the buffer to fd once it holds a chunk (1 MiB).
  Status append(int fd, const std::string& path, const void* data, std::size_t n);
  Status flush(int fd, const std::string& path);  // writes what is buffered

 private:
  std::string bytes_;
};
}  // namespace file_internal

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();  // an uncommitted temporary file is removed
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  Status open();
  Status append(const void* data, std::size_t n);
  // fsync, rename over the target, fsync the directory. REQUIRES: open() succeeded.
  Status commit();
  std::uint64_t bytes_written() const { return written_; }

 private:
  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
  bool committed_ = false;
  std::uint64_t written_ = 0;
  file_internal::WriteBuffer buffer_;
};

// fsyncs a directory, which makes the renames and creations in it durable.
Status sync_directory(const std::string& dir);

// Which file a path names: a file replaced by rename is another file, whatever its size.
struct FileId {
  std::uint64_t device = 0, inode = 0;
  friend bool operator==(const FileId&, const FileId&) = default;
};
Status file_id(const std::string& path, FileId* out);

// Appends to the end of an existing file, which must still be `expected_bytes` long (so that a
// writer never appends after bytes it did not write itself), then fdatasyncs. What a crash
// leaves is the old content plus a prefix of the appended bytes: the reader must tell a
// torn tail from data (checkpoint files do, by their frames' checksums).
class AppendFileWriter {
 public:
  AppendFileWriter() = default;
  ~AppendFileWriter();
  AppendFileWriter(const AppendFileWriter&) = delete;
  AppendFileWriter& operator=(const AppendFileWriter&) = delete;

  // io_error if it cannot be opened; corruption if it is gone, is not the file (device,
  // inode) this writer expects or its size is not expected_bytes.
  Status open(const std::string& path, const FileId& expected, std::uint64_t expected_bytes);
  Status append(const void* data, std::size_t n);
  // Writes what is buffered and fdatasyncs.
  Status sync();
  std::uint64_t size() const { return size_; }  // of the file, appended bytes included

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  file_internal::WriteBuffer buffer_;
};

class FileReader {
 public:
  FileReader() = default;
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  // io_error if it cannot be opened; corruption if it is not a regular file.
  Status open(const std::string& path);
  std::uint64_t size() const { return size_; }
  // Reads exactly n bytes at offset; corruption ("truncated") if the file ends before.
  Status read_at(std::uint64_t offset, void* out, std::size_t n) const;

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

}  // namespace sisu
