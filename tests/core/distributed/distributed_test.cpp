// The distributed mode end to end: real processes on 127.0.0.1 started by `phalanx launch` (each run picks
// a free port, so ctest -j runs them side by side). Every command runs under `timeout`, so a hang fails
// the test instead of stopping the suite.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "free_port.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

const char* kConfig = R"(name: dist
seed: 5
data: {name: synthetic, train_size: 2000, test_size: 500, features: 20, classes: 4, separation: 0.3}
model: {name: mlp, hidden: [32]}
workers: {count: 4}
engine: {name: sync, timeout: 2}
optimizer: {name: sgd, lr: 0.1}
training: {batch_size: 16, budget: {steps: 120}, eval_every: 40}
)";

std::string config_file(const std::string& dir, const std::string& extra = "") {
  write_file(dir + "/cfg.yaml", std::string(kConfig) + extra);
  return dir + "/cfg.yaml";
}

struct Outcome {
  int code = 0;
  std::string output;
};

Outcome phalanx(const std::string& args, const std::string& env = "", int limit_s = 90) {
  Outcome r;
  r.code = run_command(env + " timeout -k 5 " + std::to_string(limit_s) + " " + test::phalanx_binary() + " " + args, &r.output);
  return r;
}

/// The last value of `column` in DIR/metrics.csv.
double last_metric(const std::string& dir, const std::string& column) {
  std::stringstream in(read_file(dir + "/metrics.csv"));
  std::string header, line, last;
  std::getline(in, header);
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  std::stringstream h(header), v(last);
  for (std::string name, value; std::getline(h, name, ',') && std::getline(v, value, ',');)
    if (name == column) return std::stod(value);
  ADD_FAILURE() << "no column " << column << " in " << dir << "/metrics.csv:\n" << header << "\n" << last;
  return std::nan("");
}

/// Processes whose command line mentions `text` (from /proc, so no procps is needed).
int processes_mentioning(const std::string& text) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_file(entry.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(text) != std::string::npos) ++n;
  }
  return n;
}

std::string status_of(const std::string& dir) {
  const std::string s = read_file(dir + "/summary.json");
  const auto at = s.find("\"status\": \"");
  return at == std::string::npos ? "(no summary)" : s.substr(at + 11, s.find('"', at + 11) - at - 11);
}

TEST(Distributed, SyncRunEqualsTheSimulation) {
  // Same seed, same partitions, same batch order, rows aggregated in worker order: a synchronous
  // distributed run without faults is the simulation, computed in five processes.
  const std::string dir = temp_dir("dist_sync"), cfg = config_file(dir);
  const std::string more = " --set 'optimizer={name: byzsgdnm, lr: 0.1, beta: 0.9}' --set aggregator=cc"
                           " --set workers.byzantine=1 --set attack=alie";
  Outcome sim = phalanx("run " + cfg + more + " --out " + dir + "/sim");
  ASSERT_EQ(sim.code, 0) << sim.output;
  Outcome dist = phalanx("launch -n 5 " + cfg + more + " --out " + dir + "/dist");
  ASSERT_EQ(dist.code, 0) << dist.output;
  EXPECT_EQ(status_of(dir + "/dist"), "ok");
  EXPECT_DOUBLE_EQ(last_metric(dir + "/dist", "step"), 120);
  EXPECT_NEAR(last_metric(dir + "/dist", "test_accuracy"), last_metric(dir + "/sim", "test_accuracy"), 1e-6);
  EXPECT_NEAR(last_metric(dir + "/dist", "test_loss"), last_metric(dir + "/sim", "test_loss"), 1e-4);
  EXPECT_EQ(last_metric(dir + "/dist", "rejected_messages"), 0);
  EXPECT_EQ(last_metric(dir + "/dist", "missing_messages"), 0);
  // The report shows the two runs apart (launch recorded engine.distributed in the run's config) ...
  Outcome report = phalanx("report " + dir + " --no-plots");
  EXPECT_EQ(report.code, 0) << report.output;
  EXPECT_THAT(report.output, ::testing::HasSubstr("engine.distributed"));
  // ... and that config.yaml is not simulated by accident.
  Outcome rerun = phalanx("run " + dir + "/dist/config.yaml --out " + dir + "/rerun");
  EXPECT_EQ(rerun.code, 2);
  EXPECT_THAT(rerun.output, ::testing::HasSubstr("start it with `phalanx launch -n 5`"));
}

TEST(Distributed, BothServersGiveTheRoundContextAndTheDefenceOracle) {
  // Sync: fltrust's server gradient (server_data) and opt_alie's search through the oracle, played by the
  // server; the run is still the simulation, and the attack's diagnostic shows the search ran.
  const std::string dir = temp_dir("dist_context"), cfg = config_file(dir, "server_data: {samples: 64}\n");
  const std::string sync = " --set aggregator=fltrust --set workers.byzantine=1 --set attack=opt_alie";
  Outcome sim = phalanx("run " + cfg + sync + " --out " + dir + "/sim");
  ASSERT_EQ(sim.code, 0) << sim.output;
  Outcome dist = phalanx("launch -n 5 " + cfg + sync + " --out " + dir + "/dist");
  ASSERT_EQ(dist.code, 0) << dist.output;
  EXPECT_NEAR(last_metric(dir + "/dist", "test_accuracy"), last_metric(dir + "/sim", "test_accuracy"), 1e-6);
  EXPECT_NEAR(last_metric(dir + "/dist", "opt_alie.tau"), last_metric(dir + "/sim", "opt_alie.tau"), 1e-6);

  // Async, buffered: opt_ipm's oracle (against cc), then foolsgold's worker ids, on the asynchronous server.
  const std::string async = " --set engine.name=async --set engine.buffer=3 --set workers.byzantine=1";
  Outcome searched = phalanx("launch -n 5 " + cfg + async + " --set aggregator=cc --set attack=opt_ipm --out " +
                             dir + "/async_oracle");
  ASSERT_EQ(searched.code, 0) << searched.output;
  EXPECT_TRUE(std::isfinite(last_metric(dir + "/async_oracle", "opt_ipm.tau"))) << "the oracle was never queried";
  Outcome ids = phalanx("launch -n 5 " + cfg + async + " --set aggregator=foolsgold --set attack=none --out " + dir +
                        "/async_ids");
  ASSERT_EQ(ids.code, 0) << ids.output;
  EXPECT_TRUE(std::isfinite(last_metric(dir + "/async_ids", "foolsgold.weight_spread")));
}

TEST(Distributed, AsyncRunReachesTheSimulatedAccuracy) {
  const std::string dir = temp_dir("dist_async"), cfg = config_file(dir);
  const std::string more = " --set engine.name=async --set 'optimizer={name: ormo, lr: 0.05, beta: 0.9}'"
                           " --set 'training.budget={steps: 480}'";
  Outcome sim = phalanx("run " + cfg + more + " --out " + dir + "/sim");
  ASSERT_EQ(sim.code, 0) << sim.output;
  Outcome dist = phalanx("launch -n 5 " + cfg + more + " --out " + dir + "/dist");
  ASSERT_EQ(dist.code, 0) << dist.output;
  EXPECT_EQ(status_of(dir + "/dist"), "ok");
  EXPECT_DOUBLE_EQ(last_metric(dir + "/dist", "step"), last_metric(dir + "/sim", "step"));
  // Real arrival order differs from the simulated one: equal within noise, not bit for bit.
  EXPECT_NEAR(last_metric(dir + "/dist", "test_accuracy"), last_metric(dir + "/sim", "test_accuracy"), 0.06);
  EXPECT_GT(last_metric(dir + "/dist", "test_accuracy"), 0.5);
}

TEST(Distributed, AsyncBufferedRunWithAByzantineWorker) {
  // engine.buffer = 3 aggregates three arrivals with centered clipping; the Byzantine rank runs its
  // (non-omniscient) attack in its own process. A fast Byzantine worker may fill two slots of a buffer in a
  // real run, so the aggregator must tolerate that (cc does; cm of three would not).
  const std::string dir = temp_dir("dist_async_byz"), cfg = config_file(dir);
  Outcome r = phalanx("launch -n 5 " + cfg + " --set engine.name=async --set engine.buffer=3 --set aggregator=cc" +
                      " --set workers.byzantine=1 --set 'attack={name: gaussian, sigma: 100}' --out " + dir + "/run");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(status_of(dir + "/run"), "ok");
  EXPECT_DOUBLE_EQ(last_metric(dir + "/run", "step"), 120);
  EXPECT_GT(last_metric(dir + "/run", "test_accuracy"), 0.5);
  EXPECT_EQ(last_metric(dir + "/run", "rejected_messages"), 0);
}

TEST(Distributed, AsyncRunSurvivesAWorkerKilledMidRun) {
  const std::string dir = temp_dir("dist_async_kill"), cfg = config_file(dir);
  Outcome r = phalanx("launch -n 5 " + cfg + " --set engine.name=async --set 'training.budget={steps: 400}' --out " + dir + "/run",
                  "PHALANX_FAULT=3:crash@20");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(status_of(dir + "/run"), "ok");
  EXPECT_DOUBLE_EQ(last_metric(dir + "/run", "step"), 400);
  EXPECT_EQ(last_metric(dir + "/run", "missing_messages"), 1);  // one worker lost
  EXPECT_THAT(r.output, ::testing::HasSubstr("worker 2 (rank 3) is gone"));
}

TEST(Distributed, SyncRoundsGoOnWithoutAKilledWorker) {
  const std::string dir = temp_dir("dist_sync_kill"), cfg = config_file(dir);
  Outcome r = phalanx("launch -n 5 " + cfg + " --out " + dir + "/run", "PHALANX_FAULT=2:crash@30");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(status_of(dir + "/run"), "ok");
  EXPECT_DOUBLE_EQ(last_metric(dir + "/run", "step"), 120);
  // Rounds 29..119 went without worker 1: the metrics count every missing message.
  EXPECT_EQ(last_metric(dir + "/run", "missing_messages"), 120 - 29);
  EXPECT_GT(last_metric(dir + "/run", "test_accuracy"), 0.5);
}

TEST(Distributed, SyncRoundTimesOutOnAStalledWorker) {
  const std::string dir = temp_dir("dist_sync_stall"), cfg = config_file(dir);
  Outcome r = phalanx("launch -n 5 " + cfg + " --set engine.timeout=0.5 --out " + dir + "/run", "PHALANX_FAULT=4:stall@10");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(status_of(dir + "/run"), "ok");
  EXPECT_GE(last_metric(dir + "/run", "missing_messages"), 1);
  EXPECT_THAT(r.output, ::testing::HasSubstr("proceeds with 3 of 4 messages"));
}

TEST(Distributed, ServerRejectsMalformedMessagesAndGoesOn) {
  const std::string dir = temp_dir("dist_malformed"), cfg = config_file(dir);
  for (const std::string engine : {"async", "sync"}) {
    Outcome r = phalanx("launch -n 5 " + cfg + " --set engine.name=" + engine + " --out " + dir + "/" + engine,
                    "PHALANX_FAULT=2:wrong_size@5,2:nan@8,2:wrong_index@11,2:wrong_dtype@14");
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_EQ(status_of(dir + "/" + engine), "ok") << engine;
    EXPECT_EQ(last_metric(dir + "/" + engine, "rejected_messages"), 4) << engine;
    EXPECT_EQ(last_metric(dir + "/" + engine, "nonfinite_messages"), 1) << engine;
    EXPECT_THAT(r.output, ::testing::HasSubstr("expected d = "));
    EXPECT_THAT(r.output, ::testing::HasSubstr("holds NaN or Inf"));
    EXPECT_THAT(r.output, ::testing::HasSubstr("claims iteration index"));
    EXPECT_THAT(r.output, ::testing::HasSubstr("expected float32"));
  }
}

TEST(Distributed, WorkersLeaveWithAClearErrorWhenTheServerDies) {
  const std::string dir = temp_dir("dist_server_kill"), cfg = config_file(dir);
  for (const std::string engine : {"async", "sync"}) {
    Outcome r = phalanx("launch -n 5 " + cfg + " --set engine.name=" + engine + " --out " + dir + "/" + engine,
                    "PHALANX_FAULT=0:crash@30", 60);
    EXPECT_NE(r.code, 0) << r.output;
    EXPECT_NE(r.code, 124) << "launch hung:\n" << r.output;
    EXPECT_THAT(r.output, ::testing::HasSubstr("server (rank 0) was killed"));
    EXPECT_THAT(r.output, ::testing::HasSubstr("lost the server (rank 0)"));
  }
}

TEST(Distributed, InterruptStopsEveryProcessAndLeavesACheckpoint) {
  const std::string dir = temp_dir("dist_interrupt"), cfg = config_file(dir), out = dir + "/run";
  // A long run, interrupted once it has written a metrics row.
  write_file(dir + "/interrupt.sh",
             "timeout -k 5 90 " + test::phalanx_binary() + " launch -n 5 " + cfg +
                 " --set engine.name=async --set 'training.budget={steps: 1000000}' --set training.eval_every=50 --out " +
                 out + " &\npid=$!\nfor i in $(seq 600); do\n  [ \"$(wc -l < " + out +
                 "/metrics.csv 2>/dev/null || echo 0)\" -ge 2 ] && break\n  sleep 0.1\ndone\nkill -INT $pid\nwait $pid\n"
                 "echo exit=$?\n");
  std::string output;
  run_command("bash " + dir + "/interrupt.sh", &output);
  EXPECT_THAT(output, ::testing::HasSubstr("exit=130"));
  EXPECT_EQ(status_of(out), "interrupted") << output;
  EXPECT_THAT(read_file(out + "/summary.json"), ::testing::HasSubstr("checkpoint.pt"));
  EXPECT_FALSE(read_file(out + "/checkpoint.pt").empty());
  EXPECT_EQ(processes_mentioning(out), 0) << "processes left behind";
}

/// The values of `columns` in every row of DIR/metrics.csv.
std::vector<std::vector<double>> metric_rows(const std::string& dir, const std::vector<std::string>& columns) {
  std::stringstream in(read_file(dir + "/metrics.csv"));
  std::string header, line;
  std::getline(in, header);
  std::vector<std::string> names;
  std::stringstream h(header);
  for (std::string name; std::getline(h, name, ',');) names.push_back(name);
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> values;
    std::stringstream v(line);
    for (std::string value; std::getline(v, value, ',');) values.push_back(value);
    std::vector<double> row;
    for (const auto& column : columns) {
      const auto at = std::find(names.begin(), names.end(), column) - names.begin();
      row.push_back(at < static_cast<long>(values.size()) ? std::stod(values[at]) : std::nan(""));
    }
    rows.push_back(row);
  }
  return rows;
}

TEST(Distributed, ByzantineProcessesComputeNoGradientTheAttackNeverReads) {
  // A Byzantine worker whose server-side attack reads only the shape of its messages (Need::ByzantineShapeOnly)
  // sends zeros and computes no gradient, as the simulation skips it; the same attack without the promise gets
  // the worker's true messages. The probes (tests/test_plugins/context_probe.cpp) record what they were handed
  // and both send the honest mean, so both runs must end with the same metrics.
  const std::string dir = temp_dir("dist_unread"), cfg = config_file(dir);
  std::filesystem::create_directories(dir + "/plugins");  // the test plugin folder also holds broken ones
  std::filesystem::copy_file(test::test_plugin_dir() + "/test_context_probe.so", dir + "/plugins/test_context_probe.so");
  for (const std::string attack : {"shape_probe", "content_probe"}) {
    const std::string record = dir + "/" + attack + ".txt";
    Outcome dist = phalanx("launch -n 5 " + cfg + " --set workers.byzantine=1 --set 'attack={name: " + attack +
                               ", record: " + record + "}' --out " + dir + "/" + attack,
                           "PHALANX_PLUGIN_PATH=" + dir + "/plugins");
    ASSERT_EQ(dist.code, 0) << dist.output;
    EXPECT_EQ(status_of(dir + "/" + attack), "ok");
    const std::string rounds = read_file(record);
    const auto count = [&](const std::string& text) { return count_occurrences(rounds, text); };
    const bool promised = attack == "shape_probe";
    // 120 rounds, after the server's preflight call on zero rows (core/src/engine/preflight.cpp).
    EXPECT_EQ(count("zero_rows=1"), promised ? 121u : 1u) << attack << ":\n" << rounds;
    EXPECT_EQ(count("zero_rows=0"), promised ? 0u : 120u) << attack;
    EXPECT_EQ(dist.output.find("no gradients (the attack reads only its messages' shape)") != std::string::npos,
              promised)
        << dist.output;
  }
  for (const std::string column : {"train_loss", "test_loss", "test_accuracy"})
    EXPECT_EQ(last_metric(dir + "/shape_probe", column), last_metric(dir + "/content_probe", column)) << column;
}

// Named Interrupted... so that .ci/sanitize.sh's slow_end_to_end pattern (Interrupt) skips it under ASan.
TEST(Distributed, InterruptedSyncRunResumesWithTheUninterruptedMetrics) {
  // Worker momentum (byzsgdnm), a Byzantine worker attacked by the server (alie), batches drawn per worker:
  // all of it must come back from the checkpoint for the resumed run to equal the uninterrupted one.
  const std::string dir = temp_dir("dist_resume"), cfg = config_file(dir);
  const std::string more = " --set workers.count=3 --set workers.byzantine=1 --set attack=alie --set aggregator=cc"
                           " --set 'optimizer={name: byzsgdnm, lr: 0.1, beta: 0.9}'"
                           " --set 'training.budget={steps: 60}' --set training.eval_every=20";
  Outcome whole = phalanx("launch -n 4 " + cfg + more + " --out " + dir + "/whole");
  ASSERT_EQ(whole.code, 0) << whole.output;
  // The server checkpoints every 20 rounds and is killed at round 30 (SIGKILL: no chance to save more).
  Outcome crashed = phalanx("launch -n 4 " + cfg + more + " --checkpoint-every 20 --out " + dir + "/cut",
                            "PHALANX_FAULT=0:crash@30");
  ASSERT_NE(crashed.code, 0) << crashed.output;
  ASSERT_FALSE(read_file(dir + "/cut/checkpoint.pt").empty()) << crashed.output;
  Outcome resumed = phalanx("launch -n 4 --resume " + dir + "/cut");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_EQ(status_of(dir + "/cut"), "ok");
  const std::string log = read_file(dir + "/cut/log.txt");
  EXPECT_THAT(log, ::testing::HasSubstr("checkpoint after round 20 (server and 3 of 3 workers)"));
  EXPECT_THAT(log, ::testing::HasSubstr("resumed at round 20"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/cut/checkpoint.pt")) << "a finished run keeps no checkpoint";

  const std::vector<std::string> columns{"step", "gradients", "train_loss", "test_loss", "test_accuracy",
                                         "rejected_messages", "missing_messages"};
  const auto expected = metric_rows(dir + "/whole", columns), got = metric_rows(dir + "/cut", columns);
  ASSERT_EQ(expected.size(), 3u);
  ASSERT_EQ(got.size(), expected.size()) << "rows lost or duplicated:\n" << read_file(dir + "/cut/metrics.csv");
  for (std::size_t r = 0; r < expected.size(); ++r)
    for (std::size_t c = 0; c < columns.size(); ++c)
      EXPECT_NEAR(got[r][c], expected[r][c], 1e-6 * (1 + std::abs(expected[r][c])))
          << columns[c] << " in row " << r;
}

// An async run's arrival order is not reproducible, so "equal" here means what docs/distributed.md
// ("Checkpoint and resume") promises: the resumed run completes to the configured steps, its metrics rows
// fall at exactly the evaluation steps, none lost or repeated, every accepted message counted once
// (gradients = 16 x step with one honest message per update), the wall clock goes on, every worker gets
// its state back, and the run learns (uninterrupted runs of this config end at 66-72 % test accuracy).
TEST(Distributed, InterruptedAsyncRunResumesToTheEnd) {
  const std::string dir = temp_dir("dist_resume_async"), cfg = config_file(dir);
  const std::string more = " --set engine.name=async --set 'optimizer={name: ormo, lr: 0.05, beta: 0.9}'"
                           " --set 'training.budget={steps: 200}' --set training.eval_every=50";
  // A checkpoint at update 100 (plus the answers in flight), then the server is killed at update 150.
  Outcome crashed = phalanx("launch -n 5 " + cfg + more + " --checkpoint-every 100 --out " + dir + "/cut",
                            "PHALANX_FAULT=0:crash@150");
  ASSERT_NE(crashed.code, 0) << crashed.output;
  ASSERT_FALSE(read_file(dir + "/cut/checkpoint.pt").empty()) << crashed.output;
  Outcome resumed = phalanx("launch -n 5 --resume " + dir + "/cut");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_EQ(status_of(dir + "/cut"), "ok");
  const std::string log = read_file(dir + "/cut/log.txt");
  EXPECT_THAT(log, ::testing::HasSubstr("(server and 4 of 4 workers)"));
  EXPECT_THAT(log, ::testing::HasSubstr("resumed at update 10"));  // 100 + the 0-4 answers drained
  EXPECT_THAT(resumed.output, ::testing::HasSubstr("worker 3: resumed from the state the server saved"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/cut/checkpoint.pt")) << "a finished run keeps no checkpoint";

  const auto rows = metric_rows(dir + "/cut", {"step", "gradients", "sim_time", "rejected_messages",
                                               "missing_messages", "test_accuracy"});
  ASSERT_EQ(rows.size(), 4u) << "rows lost or repeated:\n" << read_file(dir + "/cut/metrics.csv");
  for (std::size_t r = 0; r < rows.size(); ++r) {
    EXPECT_EQ(rows[r][0], 50.0 * (r + 1)) << "row " << r;
    EXPECT_EQ(rows[r][1], 16 * rows[r][0]) << "row " << r << ": an update lost or counted twice";
    if (r > 0) EXPECT_GE(rows[r][2], rows[r - 1][2]) << "sim_time went back in row " << r;
    EXPECT_EQ(rows[r][3], 0);
    EXPECT_EQ(rows[r][4], 0);
  }
  EXPECT_GT(rows.back()[5], 0.5);
}

TEST(Distributed, CheckpointEveryInSimulatedTimeIsRefused) {
  const std::string dir = temp_dir("dist_every_sim"), cfg = config_file(dir);
  // One process is enough: the server refuses before it waits for anyone.
  Outcome every = phalanx("launch --rank 0 --world-size 5 --master-port 29999 " + cfg +
                          " --checkpoint-every sim:10 --out " + dir + "/every");
  EXPECT_NE(every.code, 0);
  EXPECT_THAT(every.output, ::testing::HasSubstr("counts simulated time, which a distributed run does not have"));
}

// The multi-machine instructions of docs/distributed.md, executed as written on a private network this test
// makes: two network namespaces joined by a veth pair, 10.200.0.1 (the server and worker 0) and 10.200.0.2
// (workers 1-2), a key file shared by both, MASTER_ADDR=10.200.0.1, GLOO_SOCKET_IFNAME naming each side's
// link. Only addresses inside these namespaces are used. Named SyncRun... so that .ci/sanitize.sh's
// slow_end_to_end pattern skips it under ASan.
TEST(Distributed, SyncRunAcrossNetworkNamespaces) {
  const std::string ns = "phx" + std::to_string(::getpid() % 100000);
  std::string probe;
  if (run_command("ip netns add " + ns + "p 2>&1 && ip netns delete " + ns + "p", &probe) != 0)
    GTEST_SKIP() << "creating a network namespace (`ip netns add`) is not permitted here: it needs root or "
                    "CAP_SYS_ADMIN + CAP_NET_ADMIN, and iproute2's `ip`. Output: " << probe;
  const std::string dir = temp_dir("dist_netns"), cfg = config_file(dir), out = dir + "/run";
  const std::string bin = test::phalanx_binary(), s = ns + "s", w = ns + "w", a = ns + "a", b = ns + "b";
  write_file(dir + "/netns.sh",
             "cleanup() { ip netns delete " + s + " 2>/dev/null; ip netns delete " + w + " 2>/dev/null; }\n"
             "trap cleanup EXIT\nset -e\n"
             "ip netns add " + s + "\nip netns add " + w + "\n"
             "ip link add " + a + " type veth peer name " + b + "\n"
             "ip link set " + a + " netns " + s + "\nip link set " + b + " netns " + w + "\n"
             "ip -n " + s + " addr add 10.200.0.1/24 dev " + a + "\nip -n " + w + " addr add 10.200.0.2/24 dev " + b + "\n"
             "for n in " + s + ":" + a + " " + w + ":" + b + "; do ip -n ${n%:*} link set lo up; "
             "ip -n ${n%:*} link set ${n#*:} up; done\n"
             "(umask 077; openssl rand -hex 32 > " + dir + "/run.key)\n"
             "export MASTER_ADDR=10.200.0.1 MASTER_PORT=29500 WORLD_SIZE=4 PHALANX_KEY_FILE=" + dir + "/run.key\n"
             "set +e\n"
             "for r in 0 1; do RANK=$r GLOO_SOCKET_IFNAME=" + a + " ip netns exec " + s + " timeout -k 5 90 " + bin +
             " launch " + cfg + " --set workers.count=3 --set 'training.budget={steps: 40}' --out " + out + " & done\n"
             "for r in 2 3; do RANK=$r GLOO_SOCKET_IFNAME=" + b + " ip netns exec " + w + " timeout -k 5 90 " + bin +
             " launch " + cfg + " --set workers.count=3 --set 'training.budget={steps: 40}' & done\n"
             "failed=0\nfor job in $(jobs -p); do wait $job || failed=1; done\necho failed=$failed\n");
  std::string output;
  run_command("bash " + dir + "/netns.sh 2>&1", &output);
  EXPECT_THAT(output, ::testing::HasSubstr("failed=0"));
  EXPECT_EQ(status_of(out), "ok") << output;
  EXPECT_DOUBLE_EQ(last_metric(out, "step"), 40) << output;
  EXPECT_EQ(last_metric(out, "missing_messages"), 0);
  EXPECT_EQ(last_metric(out, "rejected_messages"), 0);
  EXPECT_THAT(read_file(out + "/log.txt"), ::testing::HasSubstr("connected through 10.200.0.1:29500"));
  std::string left;
  run_command("ip netns list", &left);
  EXPECT_THAT(left, ::testing::Not(::testing::HasSubstr(ns))) << "namespaces left behind";
}

TEST(Distributed, ForgedReplayedAndAlteredMessagesAreRejectedAndCounted) {
  // Each faulty worker sends its true message too, so every round still completes on time.
  // 120 updates: in async mode a worker that starts late under load still sends its first five messages.
  const std::string dir = temp_dir("dist_wire"), cfg = config_file(dir);
  for (const std::string engine : {"sync", "async"}) {
    Outcome r = phalanx("launch -n 5 " + cfg + " --set engine.name=" + engine + " --set 'training.budget={steps: 120}'" +
                            " --out " + dir + "/" + engine,
                        "PHALANX_FAULT=2:forge@3,3:replay@4,4:alter@5");
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_EQ(status_of(dir + "/" + engine), "ok") << engine;
    EXPECT_DOUBLE_EQ(last_metric(dir + "/" + engine, "step"), 120) << engine;
    EXPECT_EQ(last_metric(dir + "/" + engine, "rejected_messages"), 3) << engine;
    EXPECT_EQ(last_metric(dir + "/" + engine, "missing_messages"), 0) << engine;
    const std::string log = read_file(dir + "/" + engine + "/log.txt");
    EXPECT_THAT(log, ::testing::HasSubstr("worker 1 (rank 2): it fails authentication (bad MAC")) << engine;  // forged
    EXPECT_THAT(log, ::testing::HasSubstr("worker 3 (rank 4): it fails authentication (bad MAC")) << engine;  // altered
    EXPECT_THAT(log, ::testing::HasSubstr("worker 2 (rank 3): it is replayed or out of order")) << engine;
  }
}

TEST(Distributed, UninvitedProcessesAreRefusedAndTheRunCompletes) {
  // Ranks 0-2 hold the run's key; rank 3 has another key and rank 4 none (authentication off). Both
  // are refused at the handshake, leave with a clear message and exit 3 (a failed run), and the two invited
  // workers finish the run.
  const std::string dir = temp_dir("dist_uninvited"), cfg = config_file(dir), out = dir + "/run";
  write_file(dir + "/run.key", "the run's shared secret, 32 bytes");
  write_file(dir + "/other.key", "somebody else's key, long enough");
  ASSERT_EQ(run_command("chmod 600 " + dir + "/run.key " + dir + "/other.key", nullptr), 0);
  std::string script = "export WORLD_SIZE=5 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + "\n";
  for (int rank = 0; rank < 5; ++rank) {
    const std::string key = rank == 3 ? "PHALANX_KEY_FILE=" + dir + "/other.key"
                                      : rank == 4 ? "PHALANX_KEY_FILE=" : "PHALANX_KEY_FILE=" + dir + "/run.key";
    const std::string more = rank == 4 ? " --set engine.authentication=off" : "";
    script += "RANK=" + std::to_string(rank) + " " + key + " timeout -k 5 60 " + test::phalanx_binary() + " launch " + cfg +
              more + " --set 'training.budget={steps: 40}' --out " + out + " > " + dir + "/rank" + std::to_string(rank) + ".txt 2>&1 &\npid" +
              std::to_string(rank) + "=$!\n";
  }
  for (int rank = 0; rank < 5; ++rank)
    script += "wait $pid" + std::to_string(rank) + "; echo rank" + std::to_string(rank) + "=$?\n";
  write_file(dir + "/uninvited.sh", script);
  std::string output;
  run_command("bash " + dir + "/uninvited.sh", &output);
  EXPECT_THAT(output, ::testing::HasSubstr("rank0=0"));
  EXPECT_THAT(output, ::testing::HasSubstr("rank1=0"));
  EXPECT_THAT(output, ::testing::HasSubstr("rank3=3"));
  EXPECT_THAT(output, ::testing::HasSubstr("rank4=3"));
  EXPECT_EQ(status_of(out), "ok") << read_file(dir + "/rank0.txt");
  EXPECT_DOUBLE_EQ(last_metric(out, "step"), 40);
  EXPECT_EQ(last_metric(out, "rejected_messages"), 2);
  EXPECT_THAT(read_file(dir + "/rank0.txt"), ::testing::HasSubstr("rank 3): it failed authentication"));
  EXPECT_THAT(read_file(dir + "/rank3.txt"), ::testing::HasSubstr("the server refused this process"));
  EXPECT_THAT(read_file(dir + "/rank4.txt"), ::testing::HasSubstr("the server requires authentication"));
}

// A worker killed mid-run and started again with --rejoin takes its rank back: the server forms a fresh
// link with it (handshake included), sends it the current parameters, and the run counts one missing
// message per round it was gone. The run is long and stopped with Ctrl-C once the worker is back, so a
// slow start of the new process cannot make the test flaky. Named Interrupted... so that
// .ci/sanitize.sh's slow_end_to_end pattern skips it under ASan.
TEST(Distributed, InterruptedRunTakesBackAKilledWorkerThatRejoins) {
  const std::string dir = temp_dir("dist_rejoin"), cfg = config_file(dir), out = dir + "/run";
  write_file(dir + "/run.key", "the run's shared secret, 32 bytes");
  ASSERT_EQ(run_command("chmod 600 " + dir + "/run.key", nullptr), 0);
  const std::string launch = "timeout -k 5 90 " + test::phalanx_binary() + " launch " + cfg +
                             " --set 'training.budget={steps: 1000000}' --set training.eval_every=100"
                             " --set engine.timeout=1";
  write_file(dir + "/rejoin.sh",
             "export WORLD_SIZE=5 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) +
             " PHALANX_KEY_FILE=" + dir + "/run.key\n"
             "rows() { cat " + out + "/metrics.csv 2>/dev/null | wc -l; }\n"
             "for r in 0 1 2 3 4; do RANK=$r " + launch + " --out " + out + " > " + dir + "/rank$r.txt 2>&1 & "
             "eval pid$r=$!; done\n"
             "for i in $(seq 600); do [ $(rows) -ge 2 ] && break; sleep 0.1; done\n"
             "kill -9 $(cat /proc/$pid2/task/$pid2/children)\n"  // the phalanx process under `timeout`
             "for i in $(seq 600); do grep -q 'worker 1 (rank 2) is gone' " + out + "/log.txt && break; sleep 0.1; done\n"
             "RANK=2 " + launch + " --rejoin > " + dir + "/again.txt 2>&1 & again=$!\n"
             "for i in $(seq 600); do grep -q rejoined " + out + "/log.txt && break; sleep 0.1; done\n"
             "n=$(rows); for i in $(seq 600); do [ $(rows) -gt $n ] && break; sleep 0.1; done\n"
             "kill -INT $(cat /proc/$pid0/task/$pid0/children)\n"
             "wait $pid0; echo server=$?\nwait $again; echo again=$?\n");
  std::string output;
  run_command("bash " + dir + "/rejoin.sh 2>&1", &output);
  EXPECT_THAT(output, ::testing::HasSubstr("server=130"));
  EXPECT_THAT(output, ::testing::HasSubstr("again=0")) << read_file(dir + "/again.txt");
  EXPECT_EQ(status_of(out), "interrupted") << read_file(dir + "/rank0.txt");
  // "rejoined at round A; it was gone since round B": rounds B..A-1 went without it.
  const std::string log = read_file(out + "/log.txt");
  const auto at = log.find("rejoined at round ");
  ASSERT_NE(at, std::string::npos) << log.substr(0, 3000);
  long back = 0, since = 0;
  ASSERT_EQ(std::sscanf(log.c_str() + at, "rejoined at round %ld; it was gone since round %ld", &back, &since), 2);
  EXPECT_GT(back, since);
  EXPECT_GE(last_metric(out, "missing_messages"), back - since);
  EXPECT_EQ(last_metric(out, "rejected_messages"), 0);
  // The new process contributed: it answered rounds until the server stopped the run.
  const std::string again = read_file(dir + "/again.txt");
  const auto ended = again.find("the server ended the run after ");
  ASSERT_NE(ended, std::string::npos) << again;
  EXPECT_GT(std::atol(again.c_str() + ended + 31), 0) << again;
}

TEST(Distributed, RejoinIsRefusedForTheServerAndWithLaunchN) {
  const std::string dir = temp_dir("dist_rejoin_usage"), cfg = config_file(dir);
  Outcome server = phalanx("launch --rank 0 --world-size 5 --master-port 29999 --rejoin " + cfg);
  EXPECT_EQ(server.code, 2);
  EXPECT_THAT(server.output, ::testing::HasSubstr("--rejoin is for a restarted worker"));
  Outcome all = phalanx("launch -n 5 --rejoin " + cfg);
  EXPECT_EQ(all.code, 2);
  EXPECT_THAT(all.output, ::testing::HasSubstr("give it --rank (or RANK), not -n"));
}

TEST(Distributed, LaunchRefusesAProcessCountThatDoesNotFitTheConfig) {
  const std::string dir = temp_dir("dist_count"), cfg = config_file(dir);
  Outcome r = phalanx("launch -n 3 " + cfg + " --out " + dir + "/run");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, ::testing::HasSubstr("use -n 5 or --set workers.count=2"));
}

}  // namespace
}  // namespace phalanx::test
