// Env: the engine's file layer, an interface so that tests can swap in one that fails (a
// full disk, a failing fsync) where the real file system would not. Modelled on LevelDB's Env,
// cut down to what the engine uses.
//
// Env::posix() is the real one: plain POSIX calls, fdatasync for sync, read-only mmap for
// table files, flock for the database's LOCK file. Every failure is a Status naming the path
// and the errno text; ENOSPC and every other errno is is_io_error().
//
// Thread-safety: an Env may be used from any number of threads; a WritableFile by one thread
// at a time; a MappedFile's bytes may be read from any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace sisu {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Buffered: reaches the file at flush(), sync() or when the buffer fills.
  virtual Status append(std::string_view data) = 0;
  virtual Status flush() = 0;
  // flush(), then fdatasync: the bytes survive power loss once this returns OK.
  virtual Status sync() = 0;
  virtual Status close() = 0;
  // A hint that the file will grow by appends: reserve disk space ahead of them in chunks
  // (without changing the file's size), so that a sync after an append does not also have to
  // allocate blocks. The WAL uses it; failures are ignored (it is only a hint).
  virtual void preallocate_ahead(std::uint64_t /*chunk_bytes*/) {}
};

// A file mapped read-only; unmapped when destroyed.
class MappedFile {
 public:
  virtual ~MappedFile() = default;
  virtual const std::uint8_t* data() const = 0;
  virtual std::size_t size() const = 0;
};

// Held while a process has the database open; released when destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;
  // The real file system; lives for the whole process.
  static Env* posix();

  // Creates `path` (truncating it if it exists) for appending.
  virtual Status new_writable_file(const std::string& path,
                                   std::unique_ptr<WritableFile>* out) = 0;
  virtual Status read_file(const std::string& path, std::string* out) = 0;
  // An empty file maps to size() == 0.
  virtual Status map_file(const std::string& path, std::unique_ptr<MappedFile>* out) = 0;
  virtual Status list_dir(const std::string& dir, std::vector<std::string>* names) = 0;
  virtual Status remove_file(const std::string& path) = 0;
  virtual Status rename_file(const std::string& from, const std::string& to) = 0;
  // Truncates and syncs.
  virtual Status truncate_file(const std::string& path, std::uint64_t size) = 0;
  // fdatasyncs a file that this process did not necessarily write.
  virtual Status sync_file(const std::string& path) = 0;
  virtual Status sync_dir(const std::string& dir) = 0;
  virtual Status create_dir(const std::string& dir) = 0;  // OK if it exists
  virtual bool file_exists(const std::string& path) = 0;
  // is_io_error() if another process (or this one) holds it.
  virtual Status lock_file(const std::string& path, std::unique_ptr<FileLock>* out) = 0;

  // Writes `data` to `path` crash-consistently: a temporary file beside it, synced, renamed
  // over `path`, and the directory synced. After a crash `path` holds the old or new bytes.
  Status write_file_atomically(const std::string& dir, const std::string& path,
                               std::string_view data);
};

}  // namespace sisu
