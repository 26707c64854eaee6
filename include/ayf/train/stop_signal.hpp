// ayf/train/stop_signal.hpp: SIGINT and SIGTERM as a stop request for trainer_config::stop (POSIX).
// The first signal sets a flag: the trainer writes the checkpoint of the step it is in and returns
// (train_result::stopped), and a program checks stop_requested() between its own long phases. The
// handlers are reset when they run (SA_RESETHAND), so a second signal ends the process as usual.
// The signals are taken on a thread of their own (sigwait): the calling thread blocks them, and so
// do the threads it starts afterwards (oneTBB's workers), so no handler interrupts the computation,
// whose JIT-compiled kernels a signal frame on their stack can corrupt (seen with oneDNN's SGEMM).
#pragma once

#include <signal.h>

#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <thread>

#include "ayf/core/error.hpp"

namespace ayf::train {

namespace detail {

static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "a signal handler may only touch lock-free atomics");
inline std::atomic<bool> stop_flag{false};
inline std::atomic<int> stop_signal_number{0};

inline void on_stop_signal(int signal_number) {
  stop_signal_number.store(signal_number, std::memory_order_relaxed);
  stop_flag.store(true, std::memory_order_relaxed);
}

/// The signal thread: the first SIGINT or SIGTERM it takes is a stop request (its default action
/// restored first, as SA_RESETHAND does), one taken again ends the process by its default action.
inline void take_stop_signals(sigset_t set) {
  for (;;) {
    int signal_number = 0;
    if (sigwait(&set, &signal_number) != 0) continue;
    struct sigaction current {};
    sigaction(signal_number, nullptr, &current);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    sigaction(signal_number, &default_action, nullptr);
    if (current.sa_handler == SIG_DFL) {  // a second request
      sigset_t one;
      sigemptyset(&one);
      sigaddset(&one, signal_number);
      pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
      raise(signal_number);
    }
    on_stop_signal(signal_number);
  }
}

}  // namespace detail

/// The flag stop_on_signals() returns, whether or not the handlers are installed (request_stop() sets it).
[[nodiscard]] inline const std::atomic<bool>* stop_request_flag() { return &detail::stop_flag; }

/// Installs the handlers of SIGINT and SIGTERM and returns the flag they set (for trainer_config::stop).
/// Blocks both in the calling thread (and so in the threads it starts later) and takes them on a
/// thread of its own, started once; threads started before keep the handlers. Call it early, before
/// the computation starts its threads. Throws ayf::error when sigaction or pthread_sigmask fails.
inline const std::atomic<bool>* stop_on_signals() {
  struct sigaction action {};
  action.sa_handler = detail::on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_RESTART;  // one request, then the default action; no EINTR in I/O
  for (const int signal_number : {SIGINT, SIGTERM}) {
    if (sigaction(signal_number, &action, nullptr) != 0) {
      throw error(ayf::detail::concat("stop_on_signals: sigaction(", signal_number, ") failed: ", std::strerror(errno)));
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) {
    throw error(ayf::detail::concat("stop_on_signals: pthread_sigmask failed: ", std::strerror(rc)));
  }
  static std::once_flag started;
  std::call_once(started, [set] { std::thread(detail::take_stop_signals, set).detach(); });
  return stop_request_flag();
}

/// Whether a stop was requested (by a handled signal or request_stop()).
[[nodiscard]] inline bool stop_requested() { return detail::stop_flag.load(std::memory_order_relaxed); }

/// The signal that requested the stop (SIGINT or SIGTERM), or 0 (none, or request_stop()).
[[nodiscard]] inline int stop_signal() { return detail::stop_signal_number.load(std::memory_order_relaxed); }

/// Sets the flag as a signal would, without one (signal 0): a program's own reason to stop.
inline void request_stop() { detail::stop_flag.store(true, std::memory_order_relaxed); }

/// Clears the flag and the signal (the handlers stay as they are).
inline void clear_stop_request() {
  detail::stop_flag.store(false, std::memory_order_relaxed);
  detail::stop_signal_number.store(0, std::memory_order_relaxed);
}

}  // namespace ayf::train
