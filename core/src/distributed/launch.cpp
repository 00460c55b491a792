// `phalanx launch -n N`: N local processes of one distributed run, supervised so that nothing outlives
// the run and Ctrl-C leaves a checkpoint.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "phalanx/core/distributed/distributed.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

using Clock = std::chrono::steady_clock;
std::atomic<int> g_signals{0};
extern "C" void on_launch_signal(int) { ++g_signals; }

// A port the kernel just handed out as free; the store binds it a moment later (a small race that a
// retry with --port covers).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("cannot open a socket to find a free port: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw Error(std::string("cannot find a free port: ") + std::strerror(errno) + "; pass --port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A fresh key for the processes of one `launch -n`, in a private temporary folder removed with it.
class RunKey {
 public:
  RunKey() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/phalanx-key-XXXXXX";
    if (!::mkdtemp(pattern.data())) throw Error("cannot create a private folder for the run's key in " + pattern +
                                                ": " + std::strerror(errno) + " (set TMPDIR to a writable folder)");
    dir_ = pattern;
    path_ = dir_ + "/run.key";
    write_new_key_file(path_);
  }
  ~RunKey() {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}

// Starts rank `r` of a `processes`-process run in a child process; returns its pid.
pid_t start_rank(int r, int processes, int port, const std::string& key_file, const std::string& executable,
                 const std::vector<std::string>& args) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("fork failed: ") + std::strerror(errno));
  if (pid > 0) return pid;
  // Own process group: a terminal's Ctrl-C reaches only the launcher, which stops the run in order
  // (server first, so it can checkpoint). Die with the launcher should it be killed outright.
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) std::_Exit(1);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  ::setenv("RANK", std::to_string(r).c_str(), 1);
  ::setenv("WORLD_SIZE", std::to_string(processes).c_str(), 1);
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  ::setenv("PHALANX_KEY_FILE", key_file.c_str(), 1);
  std::vector<std::string> argv_s{executable, "launch"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(executable.c_str(), argv.data());
  std::cerr << "launch: cannot run " << executable << ": " << std::strerror(errno) << "\n";
  std::_Exit(127);
}

// Watches the processes of one run until all have ended: forwards the first Ctrl-C to the server, kills
// everything on the second, and terminates what outlives the server by more than `grace`.
class Supervisor {
 public:
  Supervisor(std::vector<pid_t> pids, std::chrono::milliseconds grace)
      : pids_(std::move(pids)), status_(pids_.size(), -1), grace_(grace) {}

  /// The server's exit code (130 when interrupted).
  int wait() {
    while (reap()) {
      handle_signals();
      stop_overdue();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (interrupted_) return 130;
    const int s0 = status_[0];
    // The server's own code (docs/reliability.md, exit codes), or 128 + n when signal n killed it.
    return WIFEXITED(s0) ? WEXITSTATUS(s0) : 128 + WTERMSIG(s0);
  }

 private:
  bool running(std::size_t r) const { return status_[r] == -1; }
  void signal_all(int sig, bool include_server) {
    for (std::size_t r = include_server ? 0 : 1; r < pids_.size(); ++r)
      if (running(r)) ::kill(pids_[r], sig);
  }

  // Collects the processes that ended; true while any is still running.
  bool reap() {
    int st = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &st, WNOHANG)) > 0) {
      for (std::size_t r = 0; r < pids_.size(); ++r) {
        if (pids_[r] != pid) continue;
        status_[r] = st;
        const bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!clean || r == 0)
          // One write, so the line cannot interleave with the output of the processes still running.
          std::cerr << "launch: " +
                           (r == 0 ? std::string("server (rank 0)")
                                   : "worker " + std::to_string(r - 1) + " (rank " + std::to_string(r) + ")") +
                           " " + describe(st) + "\n";
        if (r == 0) server_done_ = Clock::now();
      }
    }
    for (std::size_t r = 0; r < pids_.size(); ++r)
      if (running(r)) return true;
    return false;
  }

  void handle_signals() {
    const int signals = g_signals.load();
    if (signals <= handled_signals_) return;
    handled_signals_ = signals;
    if (!interrupted_) {
      interrupted_ = true;
      interrupted_at_ = Clock::now();
      std::cerr << "launch: interrupted; asking the server to checkpoint and stop the workers (Ctrl-C again "
                   "to kill everything now)\n";
      if (running(0)) ::kill(pids_[0], SIGINT);
      else signal_all(SIGTERM, false);
    } else {
      std::cerr << "launch: killing every process\n";
      signal_all(SIGKILL, true);
    }
  }

  // Workers leave by themselves once the server stops or vanishes; whoever is still here after the grace
  // period is terminated, and killed 5 s later.
  void stop_overdue() {
    const auto now = Clock::now();
    const bool overdue = (!running(0) && now - server_done_ > grace_) || (interrupted_ && now - interrupted_at_ > 2 * grace_);
    if (overdue && !terminated_) {
      terminated_ = true;
      terminated_at_ = now;
      std::cerr << "launch: terminating the processes still running\n";
      signal_all(SIGTERM, true);
    }
    if (terminated_ && now - terminated_at_ > std::chrono::seconds(5)) signal_all(SIGKILL, true);
  }

  std::vector<pid_t> pids_;
  std::vector<int> status_;
  const std::chrono::milliseconds grace_;
  int handled_signals_ = 0;
  Clock::time_point server_done_{}, interrupted_at_{}, terminated_at_{};
  bool interrupted_ = false, terminated_ = false;
};

}  // namespace

int launch_local(int processes, int port, const std::string& executable, const std::vector<std::string>& args,
                 std::chrono::milliseconds grace) {
  if (processes < 2) throw Error("launch -n needs at least 2 processes (a server and a worker)");
  if (port == 0) port = free_port();
  // The processes started here are ours: they share a key made for this run (read only when
  // engine.authentication is on), which no other process on the machine can read.
  const RunKey key;
  std::cerr << "launch: " << processes << " processes (server + " << processes - 1
            << " workers) on 127.0.0.1:" << port << "\n";

  struct sigaction sa {};
  sa.sa_handler = on_launch_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::vector<pid_t> pids;
  for (int r = 0; r < processes; ++r) pids.push_back(start_rank(r, processes, port, key.path(), executable, args));
  return Supervisor(std::move(pids), grace).wait();
}

}  // namespace phalanx::core
