// FaultEnv: the real file system, except that writes fail once a byte budget is spent (as on
// a full disk: the write that crosses the budget writes a prefix, then ENOSPC) and syncs may
// be made to fail. For the engine's I/O error tests.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/env.h"

namespace sisu::testing {

class FaultEnv final : public Env {
 public:
  // Writes after `bytes` more bytes fail.
  void set_write_budget(std::int64_t bytes) { budget_.store(bytes); }
  void set_fail_sync(bool fail) { fail_sync_.store(fail); }
  // Fails the directory sync that follows a rename onto a MANIFEST: the new MANIFEST is in
  // place, but the call that wrote it reports an error.
  void set_fail_manifest_dir_sync(bool fail) { fail_manifest_dir_sync_.store(fail); }
  void clear_faults() {
    budget_.store(std::numeric_limits<std::int64_t>::max());
    fail_sync_.store(false);
    fail_manifest_dir_sync_.store(false);
  }
  std::uint64_t faults() const { return faults_.load(); }
  // How many times directory d was synced (as named to sync_dir).
  int dir_syncs(const std::string& d) const {
    std::lock_guard l(mu_);
    const auto it = dir_syncs_.find(d);
    return it == dir_syncs_.end() ? 0 : it->second;
  }

  Status new_writable_file(const std::string& path,
                           std::unique_ptr<WritableFile>* out) override {
    std::unique_ptr<WritableFile> f;
    if (Status s = base()->new_writable_file(path, &f); !s.ok()) return s;
    *out = std::make_unique<File>(this, std::move(f));
    return Status::OK();
  }
  Status read_file(const std::string& p, std::string* o) override { return base()->read_file(p, o); }
  Status map_file(const std::string& p, std::unique_ptr<MappedFile>* o) override {
    return base()->map_file(p, o);
  }
  Status list_dir(const std::string& d, std::vector<std::string>* n) override {
    return base()->list_dir(d, n);
  }
  Status remove_file(const std::string& p) override { return base()->remove_file(p); }
  Status rename_file(const std::string& a, const std::string& b) override {
    Status s = base()->rename_file(a, b);
    renamed_manifest_.store(s.ok() && b.size() >= 9 && b.compare(b.size() - 9, 9, "/MANIFEST") == 0);
    return s;
  }
  Status truncate_file(const std::string& p, std::uint64_t n) override {
    return base()->truncate_file(p, n);
  }
  Status sync_file(const std::string& p) override {
    if (fail_sync_.load()) return fault("sync " + p);
    return base()->sync_file(p);
  }
  Status sync_dir(const std::string& d) override {
    {
      std::lock_guard l(mu_);
      ++dir_syncs_[d];
    }
    if (fail_sync_.load()) return fault("sync " + d);
    // Only the sync right after the rename.
    if (renamed_manifest_.exchange(false) && fail_manifest_dir_sync_.load()) {
      return fault("sync " + d);
    }
    return base()->sync_dir(d);
  }
  Status create_dir(const std::string& d) override { return base()->create_dir(d); }
  bool file_exists(const std::string& p) override { return base()->file_exists(p); }
  Status lock_file(const std::string& p, std::unique_ptr<FileLock>* o) override {
    return base()->lock_file(p, o);
  }

 private:
  static Env* base() { return Env::posix(); }
  Status fault(const std::string& what) {
    faults_.fetch_add(1);
    return Status::io_error("cannot " + what + ": No space left on device (injected)");
  }

  // Buffers nothing itself: every append reaches the underlying file's buffer, and the budget
  // is charged at append, so a fault is seen by the call that would have filled the disk.
  class File final : public WritableFile {
   public:
    File(FaultEnv* env, std::unique_ptr<WritableFile> f) : env_(env), f_(std::move(f)) {}
    Status append(std::string_view data) override {
      const std::int64_t left = env_->budget_.fetch_sub(static_cast<std::int64_t>(data.size()));
      if (left < static_cast<std::int64_t>(data.size())) {
        if (left > 0) (void)f_->append(data.substr(0, static_cast<std::size_t>(left)));
        (void)f_->flush();
        return env_->fault("write");
      }
      return f_->append(data);
    }
    Status flush() override { return f_->flush(); }
    Status sync() override {
      if (env_->fail_sync_.load()) return env_->fault("sync");
      return f_->sync();
    }
    Status close() override { return f_->close(); }

   private:
    FaultEnv* env_;
    std::unique_ptr<WritableFile> f_;
  };

  std::atomic<std::int64_t> budget_{std::numeric_limits<std::int64_t>::max()};
  std::atomic<bool> fail_sync_{false};
  std::atomic<bool> fail_manifest_dir_sync_{false};
  std::atomic<bool> renamed_manifest_{false};
  std::atomic<std::uint64_t> faults_{0};
  mutable std::mutex mu_;
  std::map<std::string, int> dir_syncs_;
};

}  // namespace sisu::testing
