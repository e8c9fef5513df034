// A linearizability checker for histories of one key of a map (Wing & Gong's search with
// Lowe's memoization): is there an order of the operations, consistent with their real-time
// order, in which each returns what a sequential map would have returned?
//
// Histories come from concurrent tests that stamp each call and return from one atomic clock.
// Keys of a map are independent (linearizability is compositional), so a test checks each
// key's history alone, which keeps the search small.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace sisu::testing {

enum class OpKind { kGet, kPut, kPutIfAbsent, kReplace, kCompareAndSet, kRemove, kRemoveIf };

struct Op {
  OpKind kind;
  std::uint64_t a = 0;                  // value to write, or expected value
  std::uint64_t b = 0;                  // desired value (compare-and-set)
  std::optional<std::uint64_t> result;  // returned value (get, put, ..., remove)
  bool ok = false;                      // returned bool (compare-and-set, remove-if)
  std::uint64_t call = 0;               // clock before the call
  std::uint64_t ret = 0;                // clock after the return
};

using State = std::optional<std::uint64_t>;

// Applies op to the sequential state; false when op's recorded result could not have come
// from `s`.
inline bool apply(const Op& op, const State& s, State* out) {
  switch (op.kind) {
    case OpKind::kGet:
      *out = s;
      return op.result == s;
    case OpKind::kPut:
      *out = op.a;
      return op.result == s;
    case OpKind::kPutIfAbsent:
      *out = s ? s : State(op.a);
      return op.result == s;
    case OpKind::kReplace:
      *out = s ? State(op.a) : State();
      return op.result == s;
    case OpKind::kCompareAndSet:
      *out = op.ok ? State(op.b) : s;
      return (s == State(op.a)) == op.ok;
    case OpKind::kRemove:
      *out = std::nullopt;
      return op.result == s;
    case OpKind::kRemoveIf:
      *out = op.ok ? State() : s;
      return (s == State(op.a)) == op.ok;
  }
  return false;
}

inline std::string describe(const Op& op) {
  static const char* const kNames[] = {"get", "put",    "put_if_absent", "replace",
                                       "cas", "remove", "remove_if"};
  std::string s = kNames[static_cast<int>(op.kind)];
  s += "(" + std::to_string(op.a);
  if (op.kind == OpKind::kCompareAndSet) s += ", " + std::to_string(op.b);
  s += ") -> ";
  if (op.kind == OpKind::kCompareAndSet || op.kind == OpKind::kRemoveIf) {
    s += op.ok ? "true" : "false";
  } else {
    s += op.result ? std::to_string(*op.result) : "none";
  }
  s += " [" + std::to_string(op.call) + ", " + std::to_string(op.ret) + "]";
  return s;
}

// True when `history` (one key's operations, starting from `initial`) is linearizable.
inline bool linearizable(const std::vector<Op>& history, State initial = std::nullopt) {
  const std::size_t n = history.size();
  if (n == 0) return true;
  // Events: a call and a return per op, in clock order, threaded into a doubly linked list
  // from which linearized ops are lifted.
  struct Event {
    std::uint64_t time;
    std::size_t op;
    bool is_call;
    int prev, next, match;
  };
  std::vector<Event> ev;
  ev.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    ev.push_back({history[i].call, i, true, -1, -1, -1});
    ev.push_back({history[i].ret, i, false, -1, -1, -1});
  }
  std::sort(ev.begin(), ev.end(), [](const Event& x, const Event& y) { return x.time < y.time; });
  std::vector<int> call_of(n), ret_of(n);
  for (int i = 0; i < static_cast<int>(ev.size()); ++i) {
    ev[i].prev = i - 1;
    ev[i].next = i + 1 < static_cast<int>(ev.size()) ? i + 1 : -1;
    (ev[i].is_call ? call_of : ret_of)[ev[i].op] = i;
  }
  for (std::size_t i = 0; i < n; ++i) ev[call_of[i]].match = ret_of[i];
  int head = 0;
  auto unlink = [&](int i) {
    if (ev[i].prev >= 0)
      ev[ev[i].prev].next = ev[i].next;
    else
      head = ev[i].next;
    if (ev[i].next >= 0) ev[ev[i].next].prev = ev[i].prev;
  };
  auto relink = [&](int i) {
    if (ev[i].prev >= 0)
      ev[ev[i].prev].next = i;
    else
      head = i;
    if (ev[i].next >= 0) ev[ev[i].next].prev = i;
  };

  // Memo of (set of linearized ops, state) already explored.
  std::vector<std::uint64_t> done((n + 63) / 64, 0);
  struct Key {
    std::vector<std::uint64_t> bits;
    State state;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      std::uint64_t h = k.state ? *k.state * 0x9e3779b97f4a7c15ULL : 7;
      for (std::uint64_t w : k.bits) h = (h ^ w) * 0x100000001b3ULL;
      return static_cast<std::size_t>(h ^ (h >> 29));
    }
  };
  std::unordered_set<Key, KeyHash> seen;
  struct Frame {
    int call;
    State state;
  };
  std::vector<Frame> stack;
  State state = initial;
  int cur = head;
  while (head >= 0) {
    if (cur < 0) return false;  // cannot happen: a return event always stops the scan
    const Event& e = ev[cur];
    if (e.is_call) {
      State next;
      const std::size_t op = e.op;
      if (apply(history[op], state, &next)) {
        done[op / 64] |= std::uint64_t{1} << (op % 64);
        if (seen.insert(Key{done, next}).second) {
          stack.push_back({cur, state});
          state = next;
          unlink(cur);
          unlink(e.match);
          cur = head;
          continue;
        }
        done[op / 64] &= ~(std::uint64_t{1} << (op % 64));
      }
      cur = e.next;
    } else {
      // A return reached with its op not linearized: undo the last choice.
      if (stack.empty()) return false;
      const Frame f = stack.back();
      stack.pop_back();
      const std::size_t op = ev[f.call].op;
      done[op / 64] &= ~(std::uint64_t{1} << (op % 64));
      state = f.state;
      relink(ev[f.call].match);
      relink(f.call);
      cur = ev[f.call].next;
    }
  }
  return true;
}

}  // namespace sisu::testing
