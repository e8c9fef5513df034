// DB: the write path (group commit), the read path, recovery, and the two background
// threads that flush memtables and compact table files. engine/db.h has the picture.
//
// Locking. `mu` guards the writer queue, the memtable list, the version and the error state.
// It is never held across file I/O except at a memtable switch (once per memtable: the old
// WAL segment's fdatasync and the new segment's creation), when writers wait anyway. Readers
// take only `view_mu`, for the time of copying one shared_ptr. DB::Impl is the pimpl's
// plain struct: its fields are the DB's state, named without the trailing underscore that
// class members get.
#include "engine/db.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <new>
#include <random>
#include <thread>
#include <vector>

#include "engine/env.h"
#include "engine/manifest.h"
#include "engine/memtable.h"
#include "engine/table.h"
#include "engine/wal.h"
#include "engine/write_batch.h"
#include "util/hash.h"

namespace sisu {
namespace {

// The table files of the database, newest first. Immutable once published.
struct Version {
  std::vector<std::shared_ptr<TableReader>> tables;
};

// Everything a read needs, published as one immutable object so that a reader sees the
// memtables and table files of one moment: a flush replaces a frozen memtable by its table
// file in one step.
struct View {
  std::shared_ptr<MemTable> mem;
  std::vector<std::shared_ptr<MemTable>> frozen;  // newest first
  std::shared_ptr<const Version> version;
};

// A thread in the writer queue. The leader hands each writer its result by setting `state`;
// a waiting writer first spins on it briefly (a commit group takes microseconds without
// sync, less than two context switches), then sleeps on `cv`.
struct Writer {
  enum : int { kWaiting = 0, kDone = 1, kLead = 2 };
  const WriteBatch* batch = nullptr;  // nullptr: a flush request (switch the memtable)
  std::atomic<int> state{kWaiting};
  Status status;
  std::condition_variable cv;
};

// Commit groups stop growing past this many bytes of log, so that a leader does not make
// its own write wait for a very large group.
constexpr std::size_t kMaxGroupBytes = 1 << 20;

// An open that replays more WAL segments than this flushes the recovered memtable.
constexpr std::size_t kMaxReplayedSegments = 4;

// WAL segments reserve disk space this far ahead of their appends (WritableFile::
// preallocate_ahead), so that a synced commit does not also allocate blocks.
constexpr std::uint64_t kWalPreallocateBytes = 4 << 20;

}  // namespace

struct DB::Impl {
  Options options;
  Env* env = nullptr;
  std::string dir;
  std::unique_ptr<FileLock> lock;
  std::uint64_t hash_seed = 0;

  std::mutex mu;
  std::condition_variable bg_cv;     // work for the background threads
  std::mutex install_mu;             // serializes installs (MANIFEST writes); taken before mu
  std::condition_variable state_cv;  // a flush or compaction finished, or an error
  std::deque<Writer*> writers;
  std::shared_ptr<MemTable> mem;
  std::vector<std::shared_ptr<MemTable>> frozen;  // oldest first
  std::shared_ptr<const Version> version;
  std::unique_ptr<WritableFile> log;
  std::uint64_t log_number = 0;  // the active WAL segment
  std::uint64_t next_file = 1;
  std::uint64_t last_sequence = 0;  // assigned (by the leader, under mu)
  std::uint64_t logged_from = 0;    // the manifest's log_number
  std::string group_buffer;         // the leader's: a commit group's framed records
  Status bg_error;                  // sticky: once set, writes fail with it
  bool shutting_down = false;
  std::uint64_t manual_requested = 0, manual_done = 0;
  std::thread flusher, compactor;

  std::mutex view_mu;
  std::shared_ptr<const View> view;
  std::atomic<std::uint64_t> visible_sequence{0};

  std::atomic<std::uint64_t> wal_bytes{0}, user_bytes{0}, flush_bytes{0}, compaction_bytes{0};
  std::atomic<std::uint64_t> flushes{0}, compactions{0}, groups{0}, writes{0};

  std::uint64_t hash(std::string_view key) const {
    if (options.key_hash_for_testing != nullptr) [[unlikely]] {
      return options.key_hash_for_testing(key);
    }
    return hash_internal::hash_bytes(key.data(), key.size(), hash_seed);
  }
  // A memtable of small records (~256 bytes with the arena header) holds this many keys; its
  // lookup map starts at that size rather than resizing up to it (the map still grows if the
  // records are smaller).
  std::size_t expected_keys() const { return options.memtable_bytes / 256; }
  std::size_t block_bytes() const {
    return std::clamp<std::size_t>(options.memtable_bytes / 8, 4 << 10, 1 << 20);
  }

  // --- views --------------------------------------------------------------------------------

  // REQUIRES: mu held.
  void publish_view() {
    auto v = std::make_shared<View>();
    v->mem = mem;
    v->frozen.assign(frozen.rbegin(), frozen.rend());
    v->version = version;
    std::lock_guard l(view_mu);
    view = std::move(v);
  }
  std::shared_ptr<const View> current_view() {
    std::lock_guard l(view_mu);
    return view;
  }

  // --- reads --------------------------------------------------------------------------------

  Status get(std::string_view key, std::string* value) {
    // The snapshot first: every record with seq <= snapshot is then in the view's memtables
    // or in its table files.
    const std::uint64_t snapshot = visible_sequence.load(std::memory_order_acquire);
    const std::shared_ptr<const View> v = current_view();
    const std::uint64_t h = hash(key);
    auto answer = [](MemTable::Lookup r) {
      return r == MemTable::Lookup::kFound ? Status::OK() : Status::not_found("");
    };
    MemTable::Lookup r = v->mem->get(key, h, snapshot, value);
    if (r != MemTable::Lookup::kAbsent) return answer(r);
    for (const auto& m : v->frozen) {
      r = m->get(key, h, snapshot, value);
      if (r != MemTable::Lookup::kAbsent) return answer(r);
    }
    for (const auto& t : v->version->tables) {
      if (Status s = t->get(key, h, &r, value); !s.ok()) return s;
      if (r != MemTable::Lookup::kAbsent) return answer(r);
    }
    return Status::not_found("");
  }

  // --- writes -------------------------------------------------------------------------------

  Status write(const WriteBatch* batch) {
    if (batch != nullptr) {
      if (Status s = WriteBatchAccess::status(*batch); !s.ok()) return s;
      if (batch->count() == 0) return Status::OK();
      // A WAL record's length is 32 bits.
      if (WriteBatchAccess::rep(*batch).size() > DB::kMaxBatchBytes) {
        return Status::invalid_argument("batch of " +
                                        std::to_string(WriteBatchAccess::rep(*batch).size()) +
                                        " bytes exceeds DB::kMaxBatchBytes");
      }
    }
    Writer w;
    w.batch = batch;
    {
      std::lock_guard l(mu);
      writers.push_back(&w);
      if (writers.front() == &w) w.state.store(Writer::kLead, std::memory_order_relaxed);
    }
    if (await(w) == Writer::kDone) return w.status;

    // This thread leads: it makes room, then logs and applies a group of queued batches.
    std::unique_lock l(mu);
    Status s = make_room(l, batch == nullptr);
    std::vector<Writer*> group{&w};
    if (s.ok() && batch != nullptr) s = commit_group(l, &group);
    finish_group(group, s);
    return s;
  }

  // REQUIRES: mu held by the leader, (*group)[0]. Adds the batches queued behind it (up to
  // kMaxGroupBytes of log) to the group, logs them with one write (and one sync), applies
  // them to the memtable and publishes their sequence numbers.
  Status commit_group(std::unique_lock<std::mutex>& l, std::vector<Writer*>* group) {
    std::string& buf = group_buffer;  // reused: its capacity stays between groups
    buf.clear();
    std::uint64_t seq = last_sequence + 1;
    std::uint64_t user = 0;
    for (std::size_t i = 0; i < writers.size(); ++i) {
      Writer* x = writers[i];
      if (i > 0) {
        if (x->batch == nullptr || buf.size() >= kMaxGroupBytes) break;
        group->push_back(x);
      }
      // The batch's payload with its first sequence number filled in.
      char head[8];
      std::memcpy(head, &seq, 8);
      wal::append_record(&buf, head, WriteBatchAccess::rep(*x->batch));
      seq += x->batch->count();
      user += WriteBatchAccess::payload_bytes(*x->batch);
    }
    const std::uint64_t first = last_sequence + 1, last = seq - 1;
    last_sequence = last;
    MemTable* m = mem.get();
    WritableFile* f = log.get();
    l.unlock();
    // Only the leader touches the log and the memtable: mem and log change only in
    // make_room, which runs on the leader.
    Status s = f->append(buf);
    if (s.ok()) s = f->flush();
    if (s.ok() && options.sync) s = f->sync();
    if (s.ok()) {
      std::uint64_t next = first;
      try {
        for (Writer* x : *group) {
          for_each_op(WriteBatchAccess::rep(*x->batch),
                      [&](std::uint64_t, RecordType type, std::string_view k,
                          std::string_view v) { m->add(next++, type, k, v, hash(k)); });
        }
      } catch (const std::bad_alloc&) {
        // The group is in the log but only partly in the memtable, invisible there (its
        // sequence numbers are never published). Fail it, and every write after it; a
        // reopen replays it whole.
        s = Status::io_error("out of memory applying a commit group to the memtable");
      }
    }
    l.lock();
    if (!s.ok()) {
      // The log may now end in a partial record; nothing more may follow it. A reopen
      // drops the partial record and recovers every acknowledged write.
      set_error(s);
      return s;
    }
    visible_sequence.store(last, std::memory_order_release);
    wal_bytes.fetch_add(buf.size(), std::memory_order_relaxed);
    user_bytes.fetch_add(user, std::memory_order_relaxed);
    groups.fetch_add(1, std::memory_order_relaxed);
    writes.fetch_add(group->size(), std::memory_order_relaxed);
    if (buf.capacity() > 4 * kMaxGroupBytes) std::string().swap(buf);  // after a huge batch
    return Status::OK();
  }

  // REQUIRES: mu held by the leader, group[0]. Takes the group off the queue, hands each
  // follower the result, and makes the next writer the leader.
  void finish_group(const std::vector<Writer*>& group, const Status& s) {
    for (Writer* x : group) {
      writers.pop_front();
      if (x != group[0]) {
        // Notify before publishing the state: a writer that sees kDone while spinning
        // returns and destroys its Writer, which must not be touched after.
        x->status = s;
        x->cv.notify_one();
        x->state.store(Writer::kDone, std::memory_order_release);
      }
    }
    if (!writers.empty()) {
      Writer* next = writers.front();
      next->cv.notify_one();
      next->state.store(Writer::kLead, std::memory_order_release);
    }
  }

  // Waits until w is done or leads: spins, then yields, then sleeps (the leader sets the
  // state under mu after notifying, so a sleeper cannot miss it).
  int await(Writer& w) {
    int state = w.state.load(std::memory_order_acquire);
    for (int i = 0; state == Writer::kWaiting && i < 200; ++i) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
      state = w.state.load(std::memory_order_acquire);
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    while (state == Writer::kWaiting && std::chrono::steady_clock::now() < until) {
      std::this_thread::yield();
      state = w.state.load(std::memory_order_acquire);
    }
    if (state == Writer::kWaiting) {
      std::unique_lock l(mu);
      w.cv.wait(l, [&] { return w.state.load(std::memory_order_acquire) != Writer::kWaiting; });
      state = w.state.load(std::memory_order_acquire);
    }
    return state;
  }

  // REQUIRES: mu held by the leader. Switches to a new memtable and WAL segment when the
  // memtable is full (or `force` and it is not empty), waiting while too many frozen
  // memtables await their flush.
  Status make_room(std::unique_lock<std::mutex>& l, bool force) {
    for (;;) {
      if (!bg_error.ok()) return bg_error;
      if (mem->empty() || (!force && mem->bytes() < options.memtable_bytes)) return Status::OK();
      // Back-pressure: wait for a flush when enough memtables are frozen, and for a
      // compaction when table files pile up (that bounds what a read consults).
      const auto trigger = static_cast<std::size_t>(std::max(2, options.compaction_trigger));
      if (frozen.size() >= static_cast<std::size_t>(std::max(1, options.max_frozen_memtables)) ||
          version->tables.size() >= 3 * trigger) {
        state_cv.wait(l);
        continue;
      }
      // The old segment is synced before the new one exists, so that, without
      // Options::sync, a power loss cannot keep the new segment's writes and lose the old
      // one's (a hole), and a torn record can only ever end the newest segment.
      Status s = log->sync();
      const std::uint64_t number = next_file++;
      std::unique_ptr<WritableFile> f;
      if (s.ok()) s = env->new_writable_file(log_file_name(dir, number), &f);
      if (s.ok()) f->preallocate_ahead(kWalPreallocateBytes);
      if (s.ok()) s = env->sync_dir(dir);
      if (s.ok()) s = log->close();
      if (!s.ok()) {
        set_error(s);
        return s;
      }
      log = std::move(f);
      log_number = number;
      mem->freeze();
      frozen.push_back(std::move(mem));
      mem = std::make_shared<MemTable>(block_bytes(), number, expected_keys());
      publish_view();
      bg_cv.notify_all();
      force = false;
    }
  }

  // REQUIRES: mu held.
  void set_error(const Status& s) {
    if (bg_error.ok()) bg_error = s;
    state_cv.notify_all();
  }

  Status flush() {
    if (Status s = write(nullptr); !s.ok()) return s;
    std::unique_lock l(mu);
    state_cv.wait(l, [&] { return frozen.empty() || !bg_error.ok(); });
    return bg_error;
  }

  Status compact() {
    if (Status s = flush(); !s.ok()) return s;
    std::unique_lock l(mu);
    const std::uint64_t ticket = ++manual_requested;
    bg_cv.notify_all();
    state_cv.wait(l, [&] { return manual_done >= ticket || !bg_error.ok(); });
    return bg_error;
  }

  // --- background: flush and compaction -----------------------------------------------------

  // A run of adjacent tables to merge: version->tables[begin, begin + count), newest first.
  struct Pick {
    std::size_t begin = 0, count = 0;
  };

  // Size-tiered, as RocksDB's universal compaction: from each table in turn (newest first),
  // take the next older one while it is no larger than all taken so far together; the first
  // run of two or more is merged. Equal flushes thus merge like a binary counter, and each
  // byte is rewritten about log2(database / memtable) times. If no table starts such a run,
  // merge the adjacent tables of least total size that bring the count back under the
  // trigger (never "the newest ones", which would rewrite an ever-growing table per flush).
  Pick pick_compaction() const {
    const auto& t = version->tables;
    const std::size_t n = t.size();
    const auto trigger = static_cast<std::size_t>(std::max(2, options.compaction_trigger));
    if (n < trigger) return {};
    for (std::size_t b = 0; b + 1 < n; ++b) {
      std::size_t k = 1;
      std::uint64_t sum = t[b]->file_bytes();
      while (b + k < n && t[b + k]->file_bytes() <= sum) sum += t[b + k++]->file_bytes();
      if (k >= 2) return {b, k};
    }
    const std::size_t width = n - trigger + 2;
    Pick best{0, width};
    std::uint64_t best_sum = UINT64_MAX;
    for (std::size_t b = 0; b + width <= n; ++b) {
      std::uint64_t sum = 0;
      for (std::size_t i = b; i < b + width; ++i) sum += t[i]->file_bytes();
      if (sum < best_sum) {
        best_sum = sum;
        best.begin = b;
      }
    }
    return best;
  }

  // Two background threads, so that a long compaction never holds up a flush (writers wait
  // for flushes once max_frozen_memtables are frozen).
  void flush_loop() {
    std::unique_lock l(mu);
    for (;;) {
      bg_cv.wait(l, [&] { return shutting_down || (bg_error.ok() && !frozen.empty()); });
      if (shutting_down) return;
      if (Status s = flush_oldest(l); !s.ok()) set_error(s);
      state_cv.notify_all();
      bg_cv.notify_all();  // a new table may call for a compaction
    }
  }

  void compact_loop() {
    std::unique_lock l(mu);
    for (;;) {
      Pick pick;
      bool manual = false;
      bg_cv.wait(l, [&] {
        if (shutting_down) return true;
        if (!bg_error.ok()) return false;
        manual = manual_requested > manual_done;
        pick = manual ? Pick{0, version->tables.size()} : pick_compaction();
        return manual || pick.count > 0;
      });
      if (shutting_down) return;
      const std::uint64_t ticket = manual_requested;
      if (Status s = compact(l, pick); !s.ok()) set_error(s);
      if (manual) manual_done = ticket;
      state_cv.notify_all();
    }
  }

  // REQUIRES: mu held; l is its lock. Applies `edit` to the current list of table files,
  // writes the MANIFEST for the result and makes it current; a flush (`flushed`) also retires
  // the oldest frozen memtable and deletes the WAL segments it no longer needs. Installs are
  // serialized by install_mu (the flush and compaction threads both install), so the
  // MANIFEST on disk always describes the version that is current.
  template <class Edit>
  Status install(std::unique_lock<std::mutex>& l, Edit&& edit, bool flushed) {
    l.unlock();
    std::lock_guard installing(install_mu);
    l.lock();
    auto v = std::make_shared<Version>(*version);
    if (Status s = edit(v->tables); !s.ok()) return s;
    // Segments before the next memtable's first one hold nothing that is not in a table.
    std::uint64_t log_from = logged_from;
    if (flushed) log_from = frozen.size() > 1 ? frozen[1]->first_log() : mem->first_log();
    Manifest m;
    m.hash_seed = hash_seed;
    m.next_file = next_file;
    m.log_number = log_from;
    m.last_sequence = last_sequence;
    for (const auto& t : v->tables) m.tables.push_back(t->number());
    l.unlock();
    Status s = env->write_file_atomically(dir, manifest_file_name(dir), m.encode());
    l.lock();
    if (!s.ok()) return s;
    version = std::move(v);
    if (flushed) frozen.erase(frozen.begin());
    publish_view();
    const std::uint64_t old_from = logged_from;
    logged_from = log_from;
    l.unlock();
    for (std::uint64_t n = old_from; n < log_from; ++n) {
      if (env->file_exists(log_file_name(dir, n))) (void)env->remove_file(log_file_name(dir, n));
    }
    l.lock();
    return Status::OK();
  }

  Status flush_oldest(std::unique_lock<std::mutex>& l) {
    std::shared_ptr<MemTable> m = frozen.front();
    const std::uint64_t number = next_file++;
    l.unlock();
    std::vector<const MemRecord*> records;
    m->for_each_newest([&](const MemRecord& r) { records.push_back(&r); });
    std::sort(records.begin(), records.end(), [](const MemRecord* a, const MemRecord* b) {
      return a->hash != b->hash ? a->hash < b->hash : a->key() < b->key();
    });
    std::shared_ptr<TableReader> table;
    Status s = write_table(number, records.size(), [&](TableBuilder& b) {
      for (const MemRecord* r : records) {
        if (Status s2 = b.add(r->hash, r->type, r->key(), r->value()); !s2.ok()) return s2;
      }
      return Status::OK();
    }, &table, &flush_bytes);
    l.lock();
    if (!s.ok()) return s;
    s = install(l, [&](std::vector<std::shared_ptr<TableReader>>& tables) {
      tables.insert(tables.begin(), table);  // the newest
      return Status::OK();
    }, true);
    // On failure the table stays on disk: the MANIFEST may already name it (a failed
    // directory sync after the rename). If it does not, the next open deletes it.
    if (!s.ok()) return s;
    flushes.fetch_add(1, std::memory_order_relaxed);
    return Status::OK();
  }

  template <class Fill>
  Status write_table(std::uint64_t number, std::size_t expected, Fill&& fill,
                     std::shared_ptr<TableReader>* out, std::atomic<std::uint64_t>* bytes) {
    const std::string path = table_file_name(dir, number);
    {
      TableBuilder b(env, path, expected);
      Status s = b.open();
      if (s.ok()) s = fill(b);
      if (s.ok()) s = b.finish();
      if (!s.ok()) return s;  // b's destructor removes the partial file
      bytes->fetch_add(b.file_bytes(), std::memory_order_relaxed);
    }
    return TableReader::open(env, path, number, out);
  }

  // Merges a run of adjacent tables into one: for each key the newest record wins;
  // tombstones are dropped when the run includes the oldest table (nothing older can hold
  // the key). The output takes the run's place in the age order.
  Status compact(std::unique_lock<std::mutex>& l, Pick pick) {
    std::shared_ptr<const Version> base = version;
    const auto& all = base->tables;
    if (pick.begin + pick.count > all.size()) return Status::OK();
    const std::vector<std::shared_ptr<TableReader>> run(
        all.begin() + static_cast<std::ptrdiff_t>(pick.begin),
        all.begin() + static_cast<std::ptrdiff_t>(pick.begin + pick.count));
    if (run.empty() || (run.size() == 1 && run[0]->tombstones() == 0)) return Status::OK();
    const bool bottom = pick.begin + pick.count == all.size();
    const std::uint64_t number = next_file++;
    l.unlock();
    std::uint64_t expected = 0;
    for (const auto& t : run) expected += t->entries();
    bool empty_output = true;
    std::shared_ptr<TableReader> table;
    Status s = write_table(number, expected, [&](TableBuilder& b) {
      return merge_tables(run, bottom, [&](const TableRecord& r) {
        empty_output = false;
        return b.add(r.hash, r.type, r.key, r.value);
      });
    }, &table, &compaction_bytes);
    l.lock();
    if (!s.ok()) return s;
    // Flushes may have added newer tables meanwhile; the run is still there, contiguous (only
    // this thread removes tables).
    s = install(l, [&](std::vector<std::shared_ptr<TableReader>>& tables) {
      auto at = std::find(tables.begin(), tables.end(), run[0]);
      if (at + static_cast<std::ptrdiff_t>(run.size()) > tables.end() ||
          !std::equal(run.begin(), run.end(), at)) {
        return Status::corruption(dir + ": compaction lost track of its tables");  // a bug
      }
      at = tables.erase(at, at + static_cast<std::ptrdiff_t>(run.size()));
      if (!empty_output) tables.insert(at, table);
      return Status::OK();
    }, false);
    // On failure nothing is deleted: the MANIFEST may already name the output instead of the
    // run (a failed directory sync after the rename); the next open keeps what it names.
    if (!s.ok()) return s;
    if (empty_output) table->mark_obsolete();
    for (const auto& t : run) t->mark_obsolete();
    compactions.fetch_add(1, std::memory_order_relaxed);
    return Status::OK();
  }

  // A k-way merge of tables (newest first) in (hash, key) order.
  template <class Emit>
  static Status merge_tables(const std::vector<std::shared_ptr<TableReader>>& tables,
                             bool drop_tombstones, Emit&& emit) {
    struct Cursor {
      const TableReader* t;
      std::size_t age;  // 0 = newest
      std::uint64_t offset;
      TableRecord rec;
    };
    auto later = [](const Cursor& a, const Cursor& b) {  // heap order: smallest on top
      if (a.rec.hash != b.rec.hash) return a.rec.hash > b.rec.hash;
      if (a.rec.key != b.rec.key) return a.rec.key > b.rec.key;
      return a.age > b.age;
    };
    std::vector<Cursor> heap;
    auto advance = [&](Cursor c) -> Status {
      if (c.offset >= c.t->data_bytes()) return Status::OK();
      std::uint64_t next;
      if (Status s = c.t->read_record(c.offset, &c.rec, &next); !s.ok()) return s;
      c.offset = next;
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end(), later);
      return Status::OK();
    };
    for (std::size_t i = 0; i < tables.size(); ++i) {
      if (Status s = advance(Cursor{tables[i].get(), i, 0, {}}); !s.ok()) return s;
    }
    bool have_last = false;
    std::uint64_t last_hash = 0;
    std::string last_key;
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      Cursor c = heap.back();
      heap.pop_back();
      const bool older_version = have_last && c.rec.hash == last_hash && c.rec.key == last_key;
      if (!older_version) {
        have_last = true;
        last_hash = c.rec.hash;
        last_key.assign(c.rec.key);
        if (!(drop_tombstones && c.rec.type == RecordType::kDelete)) {
          if (Status s = emit(c.rec); !s.ok()) return s;
        }
      }
      if (Status s = advance(c); !s.ok()) return s;
    }
    return Status::OK();
  }

  // --- open and recovery --------------------------------------------------------------------

  Status recover(bool* created) {
    Manifest m;
    const std::string manifest = manifest_file_name(dir);
    std::vector<std::string> names;
    if (Status s = env->list_dir(dir, &names); !s.ok()) return s;
    if (env->file_exists(manifest)) {
      if (options.error_if_exists) return Status::invalid_argument(dir + ": exists");
      if (Status s = read_manifest(env, dir, &m); !s.ok()) return s;
    } else {
      for (const std::string& n : names) {
        std::uint64_t num;
        const FileKind kind = parse_file_name(n, &num);
        if (kind == FileKind::kTable || kind == FileKind::kLog) {
          return Status::corruption(manifest + ": missing, but " + dir + " holds " + n);
        }
      }
      if (!options.create_if_missing) {
        return Status::invalid_argument(dir + ": does not exist (create_if_missing is false)");
      }
      std::random_device rd;
      m.hash_seed = (std::uint64_t{rd()} << 32) ^ rd();
      if (Status s = env->write_file_atomically(dir, manifest, m.encode()); !s.ok()) return s;
      *created = true;
    }
    hash_seed = m.hash_seed;
    next_file = m.next_file;
    last_sequence = m.last_sequence;
    logged_from = m.log_number;

    auto v = std::make_shared<Version>();
    for (std::uint64_t n : m.tables) {
      std::shared_ptr<TableReader> t;
      if (Status s = TableReader::open(env, table_file_name(dir, n), n, &t); !s.ok()) return s;
      v->tables.push_back(std::move(t));
    }
    version = std::move(v);

    // WAL segments to replay, oldest first; files nothing refers to any more.
    std::vector<std::uint64_t> logs;
    std::vector<std::string> obsolete;
    for (const std::string& n : names) {
      std::uint64_t num = 0;
      const FileKind kind = parse_file_name(n, &num);
      if (kind == FileKind::kLog || kind == FileKind::kTable) {
        next_file = std::max(next_file, num + 1);
      }
      if (kind == FileKind::kLog) {
        if (num >= m.log_number) {
          logs.push_back(num);
        } else {
          obsolete.push_back(n);
        }
      } else if (kind == FileKind::kTable &&
                 std::find(m.tables.begin(), m.tables.end(), num) == m.tables.end()) {
        obsolete.push_back(n);
      } else if (kind == FileKind::kTemp) {
        obsolete.push_back(n);
      }
    }
    std::sort(logs.begin(), logs.end());
    const std::uint64_t new_log = next_file++;
    mem = std::make_shared<MemTable>(block_bytes(), logs.empty() ? new_log : logs.front(),
                                     expected_keys());
    // A torn record may end the newest non-empty segment (a crash can leave an empty newer
    // one behind it); anywhere else a bad record is corruption.
    std::size_t last_nonempty = logs.size();
    for (std::size_t i = logs.size(); i-- > 0;) {
      std::unique_ptr<MappedFile> f;
      if (Status s = env->map_file(log_file_name(dir, logs[i]), &f); !s.ok()) return s;
      if (f->size() > 0) {
        last_nonempty = i;
        break;
      }
    }
    for (std::size_t i = 0; i < logs.size(); ++i) {
      if (Status s = replay(logs[i], i >= last_nonempty); !s.ok()) return s;
    }
    visible_sequence.store(last_sequence, std::memory_order_release);
    for (const std::string& n : obsolete) (void)env->remove_file(dir + "/" + n);

    Status s = env->new_writable_file(log_file_name(dir, new_log), &log);
    if (s.ok()) log->preallocate_ahead(kWalPreallocateBytes);
    if (s.ok()) s = env->sync_dir(dir);
    if (!s.ok()) return s;
    log_number = new_log;
    // Many segments replayed (a database opened often for a few writes, as `sisu put`
    // does): flush what they hold (DB::open waits for it), so that they can go.
    if (logs.size() > kMaxReplayedSegments && !mem->empty()) {
      mem->freeze();
      frozen.push_back(std::move(mem));
      mem = std::make_shared<MemTable>(block_bytes(), new_log, expected_keys());
    }
    publish_view();
    return Status::OK();
  }

  // Applies one WAL segment's batches to the memtable. A record that fails its checksum or
  // runs past the end is a torn tail in the last segment (cut off, so that nothing is ever
  // appended after it) and corruption anywhere else. The segment is synced either way.
  Status replay(std::uint64_t number, bool last) {
    const std::string path = log_file_name(dir, number);
    std::string data;
    if (Status s = env->read_file(path, &data); !s.ok()) return s;
    // An empty segment (a database opened and closed without a write) holds nothing: without
    // this, every open would leave one more behind until the next flush.
    if (data.empty()) return env->remove_file(path);
    bool malformed = false;
    const std::uint64_t good = wal::read_records(data, [&](std::string_view payload, std::uint64_t) {
      const bool ok = for_each_op(payload, [&](std::uint64_t seq, RecordType t,
                                               std::string_view k, std::string_view v) {
        mem->add(seq, t, k, v, hash(k));
        last_sequence = std::max(last_sequence, seq);
      });
      malformed = !ok;
      return ok;
    });
    if (good < data.size()) {
      if (!last || malformed) {
        return Status::corruption(path + " at offset " + std::to_string(good) +
                                  (malformed ? ": malformed batch" : ": damaged record") +
                                  " before the end of the log");
      }
      return env->truncate_file(path, good);  // synced
    }
    // What was replayed may have been only in the page cache (after kill -9): make it
    // durable before any newer write can be, or a power loss could keep those and lose it.
    return env->sync_file(path);
  }
};

DB::DB(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DB::~DB() {
  {
    std::lock_guard l(impl_->mu);
    impl_->shutting_down = true;
  }
  impl_->bg_cv.notify_all();
  if (impl_->flusher.joinable()) impl_->flusher.join();
  if (impl_->compactor.joinable()) impl_->compactor.join();
  if (impl_->log != nullptr) (void)impl_->log->close();
}

Status DB::open(const Options& options, const std::string& dir, std::unique_ptr<DB>* db) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->env = options.env != nullptr ? options.env : Env::posix();
  impl->dir = dir;
  if (options.memtable_bytes == 0) return Status::invalid_argument("memtable_bytes is 0");
  if (options.create_if_missing) {
    const bool existed = impl->env->file_exists(dir);
    if (Status s = impl->env->create_dir(dir); !s.ok()) return s;  // also: is it a directory?
    // A new directory's own entry must be durable too: every sync inside it is worth nothing
    // if a power loss takes the directory away. (Only when open made it: an existing
    // database's parent may not even be readable.)
    if (!existed) {
      std::filesystem::path path = std::filesystem::path(dir).lexically_normal();
      if (!path.has_filename()) path = path.parent_path();  // "db/" -> "db"
      const std::string parent = path.has_parent_path() ? path.parent_path().string() : ".";
      if (Status s = impl->env->sync_dir(parent); !s.ok()) return s;
    }
  }
  if (!impl->env->file_exists(dir)) return Status::invalid_argument(dir + ": does not exist");
  if (Status s = impl->env->lock_file(dir + "/LOCK", &impl->lock); !s.ok()) return s;
  bool created = false;
  if (Status s = impl->recover(&created); !s.ok()) return s;
  Impl* p = impl.get();
  impl->flusher = std::thread([p] { p->flush_loop(); });
  impl->compactor = std::thread([p] { p->compact_loop(); });
  {
    // A memtable frozen by recovery (many segments replayed) is flushed before open returns,
    // so that a database opened for a write at a time cannot pile up segments. A failure
    // here is sticky, as any flush's: writes will report it.
    std::unique_lock l(p->mu);
    p->state_cv.wait(l, [&] { return p->frozen.empty() || !p->bg_error.ok(); });
  }
  db->reset(new DB(std::move(impl)));
  return Status::OK();
}

// put and remove reuse a batch per thread: its buffer keeps its capacity, so a put costs no
// allocation (a batch that grew past 1 MiB is given back).
namespace {
WriteBatch& thread_batch() {
  thread_local WriteBatch batch;
  if (batch.approximate_bytes() > (1 << 20)) batch = WriteBatch();
  batch.clear();
  return batch;
}
}  // namespace

Status DB::put(std::string_view key, std::string_view value) {
  WriteBatch& b = thread_batch();
  b.put(key, value);
  return write(b);
}

Status DB::remove(std::string_view key) {
  WriteBatch& b = thread_batch();
  b.remove(key);
  return write(b);
}

Status DB::write(const WriteBatch& batch) { return impl_->write(&batch); }
Status DB::get(std::string_view key, std::string* value) {
  if (value == nullptr) return Status::invalid_argument("get: value is null");
  return impl_->get(key, value);
}
Status DB::flush() { return impl_->flush(); }
Status DB::compact() { return impl_->compact(); }

DBStats DB::stats() const {
  Impl& d = *impl_;
  DBStats s;
  const std::shared_ptr<const View> v = d.current_view();
  s.table_files = v->version->tables.size();
  for (const auto& t : v->version->tables) {
    s.table_bytes += t->file_bytes();
    s.table_entries += t->entries();
  }
  s.frozen_memtables = v->frozen.size();
  s.memtable_bytes = v->mem->bytes();
  s.memtable_entries = v->mem->entries();
  s.wal_bytes_written = d.wal_bytes.load(std::memory_order_relaxed);
  s.user_bytes_written = d.user_bytes.load(std::memory_order_relaxed);
  s.flush_bytes_written = d.flush_bytes.load(std::memory_order_relaxed);
  s.compaction_bytes_written = d.compaction_bytes.load(std::memory_order_relaxed);
  s.flushes = d.flushes.load(std::memory_order_relaxed);
  s.compactions = d.compactions.load(std::memory_order_relaxed);
  s.write_groups = d.groups.load(std::memory_order_relaxed);
  s.writes = d.writes.load(std::memory_order_relaxed);
  s.last_sequence = d.visible_sequence.load(std::memory_order_relaxed);
  return s;
}

}  // namespace sisu
