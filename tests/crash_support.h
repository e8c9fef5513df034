// Crash tests that really kill: run a child process that reports each step it completed
// through a pipe, and SIGKILL it at a given moment. Shared by the engine's and the
// checkpoints' crash tests.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

namespace sisu::testing {

// In the child: reports that step `n` (0, 1, 2, ... in order) completed.
inline void ack(int fd, std::uint64_t n) {
  if (::write(fd, &n, sizeof(n)) != sizeof(n)) ::_exit(90);
}

// Forks; the child runs child(fd) (which must not return) and acks its steps on fd. The
// parent drains the acks while it waits (a full pipe would stall the child), SIGKILLs the
// child after `delay`, and returns how many steps it acknowledged. Fails the test if the child
// died by itself or acked out of order.
inline std::uint64_t run_and_kill(const std::function<void(int fd)>& child,
                                  std::chrono::microseconds delay) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  EXPECT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    child(fds[1]);
    ::_exit(91);  // child() must not return
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  std::uint64_t acked = 0;
  std::string pending;
  auto drain = [&] {
    char buf[4096];
    ssize_t r;
    while ((r = ::read(fds[0], buf, sizeof(buf))) > 0) {
      pending.append(buf, static_cast<std::size_t>(r));
    }
    for (; pending.size() >= 8; pending.erase(0, 8)) {
      std::uint64_t n;
      std::memcpy(&n, pending.data(), 8);
      EXPECT_EQ(n, acked) << "acks arrive in order";
      ++acked;
    }
  };
  const auto deadline = std::chrono::steady_clock::now() + delay;
  while (std::chrono::steady_clock::now() < deadline) {
    drain();
    ::usleep(300);
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status)) << "the child exited by itself, status " << status;
  drain();
  ::close(fds[0]);
  return acked;
}

}  // namespace sisu::testing
