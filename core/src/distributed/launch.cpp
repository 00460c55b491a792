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

  std::vector<pid_t> pids(processes, -1);
  std::vector<int> status(processes, -1);
  const pid_t parent = ::getpid();
  for (int r = 0; r < processes; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(std::string("fork failed: ") + std::strerror(errno));
    if (pid == 0) {
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
      ::setenv("PHALANX_KEY_FILE", key.path().c_str(), 1);
      std::vector<std::string> argv_s{executable, "launch"};
      argv_s.insert(argv_s.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : argv_s) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(executable.c_str(), argv.data());
      std::cerr << "launch: cannot run " << executable << ": " << std::strerror(errno) << "\n";
      std::_Exit(127);
    }
    pids[r] = pid;
  }

  auto running = [&](int r) { return status[r] == -1; };
  auto signal_all = [&](int sig, bool include_server) {
    for (int r = include_server ? 0 : 1; r < processes; ++r)
      if (running(r)) ::kill(pids[r], sig);
  };
  int handled_signals = 0;
  Clock::time_point server_done{}, interrupted_at{}, terminated_at{};
  bool interrupted = false, terminated = false;
  for (;;) {
    int st = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &st, WNOHANG)) > 0) {
      for (int r = 0; r < processes; ++r) {
        if (pids[r] != pid) continue;
        status[r] = st;
        const bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!clean || r == 0)
          // One write, so the line cannot interleave with the output of the processes still running.
          std::cerr << "launch: " +
                           (r == 0 ? std::string("server (rank 0)")
                                   : "worker " + std::to_string(r - 1) + " (rank " + std::to_string(r) + ")") +
                           " " + describe(st) + "\n";
        if (r == 0) server_done = Clock::now();
      }
    }
    bool any = false;
    for (int r = 0; r < processes; ++r) any = any || running(r);
    if (!any) break;

    const int signals = g_signals.load();
    if (signals > handled_signals) {
      handled_signals = signals;
      if (!interrupted) {
        interrupted = true;
        interrupted_at = Clock::now();
        std::cerr << "launch: interrupted; asking the server to checkpoint and stop the workers (Ctrl-C again "
                     "to kill everything now)\n";
        if (running(0)) ::kill(pids[0], SIGINT);
        else signal_all(SIGTERM, false);
      } else {
        std::cerr << "launch: killing every process\n";
        signal_all(SIGKILL, true);
      }
    }
    const auto now = Clock::now();
    const bool server_gone = !running(0);
    // Workers leave by themselves once the server stops or vanishes; whoever is still here after the grace
    // period is terminated, and killed 5 s later.
    const bool overdue = (server_gone && now - server_done > grace) || (interrupted && now - interrupted_at > 2 * grace);
    if (overdue && !terminated) {
      terminated = true;
      terminated_at = now;
      std::cerr << "launch: terminating the processes still running\n";
      signal_all(SIGTERM, true);
    }
    if (terminated && now - terminated_at > std::chrono::seconds(5)) signal_all(SIGKILL, true);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (interrupted) return 130;
  const int s0 = status[0];
  // The server's own code (docs/reliability.md, exit codes), or 128 + n when signal n killed it.
  return WIFEXITED(s0) ? WEXITSTATUS(s0) : 128 + WTERMSIG(s0);
}

}  // namespace phalanx::core
