// Checkpoints: the file format refuses damaged files; every plugin's saved state is all of its state; a
// simulated run killed with SIGKILL (or stopped with SIGTERM) and resumed writes exactly the metrics of an
// uninterrupted run.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <ATen/ATen.h>

#include "phalanx/attack.hpp"
#include "phalanx/core/run/checkpoint.hpp"
#include "phalanx/core/run/run_control.hpp"
#include "phalanx/optimizer.hpp"
#include "support.hpp"

extern char** environ;

namespace phalanx::test {
namespace {

namespace fs = std::filesystem;
using core::Checkpoint;

// ---- the file ----

TEST(CheckpointFile, RoundTripsTensorsNumbersAndTextExactly) {
  const std::string file = temp_dir("ck_roundtrip") + "/c.pt";
  Checkpoint c;
  c.put("x", at::arange(5, at::kFloat));
  c.put_int("n", -42);
  c.put_double("t", 0.1 + 0.2);
  c.put_text("s", std::string("a\0b\n", 4));
  c.put_state("plugin", {{"m", at::ones({2, 2})}});
  c.write(file);
  Checkpoint r = Checkpoint::read(file);
  EXPECT_TRUE(at::equal(r.get("x"), at::arange(5, at::kFloat)));
  EXPECT_EQ(r.get_int("n"), -42);
  EXPECT_EQ(r.get_double("t"), 0.1 + 0.2);
  EXPECT_EQ(r.get_text("s"), std::string("a\0b\n", 4));
  ASSERT_EQ(r.get_state("plugin").size(), 1u);
  EXPECT_TRUE(at::equal(r.get_state("plugin").at("m"), at::ones({2, 2})));
  EXPECT_ERROR_WITH(r.get("missing"), "c.pt", "no entry 'missing'");
  EXPECT_FALSE(fs::exists(file + ".tmp"));
}

TEST(CheckpointFile, RefusesTruncatedCorruptAndForeignFiles) {
  const std::string dir = temp_dir("ck_damaged"), file = dir + "/c.pt";
  Checkpoint c;
  c.put("x", at::randn({1000}));
  c.write(file);
  const std::string bytes = read_file(file);
  for (std::size_t keep : {bytes.size() - 1, bytes.size() / 2, std::size_t{30}}) {
    write_file(dir + "/cut.pt", bytes.substr(0, keep));
    EXPECT_ERROR_WITH(Checkpoint::read(dir + "/cut.pt"), "cut.pt", "truncated");
  }
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  write_file(dir + "/flip.pt", flipped);
  EXPECT_ERROR_WITH(Checkpoint::read(dir + "/flip.pt"), "flip.pt", "corrupt");
  write_file(dir + "/foreign.pt", "PK\x03\x04 a zip file, e.g. torch.save's");
  EXPECT_ERROR_WITH(Checkpoint::read(dir + "/foreign.pt"), "foreign.pt", "not a phalanx checkpoint");
  EXPECT_ERROR_WITH(Checkpoint::read(dir + "/absent.pt"), "absent.pt", "cannot read");
}

TEST(CheckpointFile, AFailedWriteLeavesThePreviousCheckpointIntact) {
  const std::string dir = temp_dir("ck_atomic"), file = dir + "/c.pt";
  Checkpoint first;
  first.put_int("generation", 1);
  first.write(file);
  fs::create_directory(file + ".tmp");  // the temporary file cannot be created
  Checkpoint second;
  second.put_int("generation", 2);
  EXPECT_ERROR_WITH(second.write(file), "cannot write checkpoint", "previous checkpoint");
  EXPECT_EQ(Checkpoint::read(file).get_int("generation"), 1);
}

TEST(CheckpointFile, CheckpointEveryParsesStepsAndSimulatedTime) {
  core::RunControl c;
  core::parse_checkpoint_every("250", c);
  EXPECT_EQ(c.checkpoint_every_steps, 250);
  core::parse_checkpoint_every("sim:12.5", c);
  EXPECT_EQ(c.checkpoint_every_sim_time, 12.5);
  for (const char* bad : {"", "0", "-3", "2.5", "sim:", "sim:0", "ten", "10s"})
    EXPECT_ERROR_WITH(core::parse_checkpoint_every(bad, c), "--checkpoint-every");
}

// ---- every plugin's state is all its state ----
// A plugin that keeps something between calls without saving it would resume differently. For every
// built-in plugin: instance A runs 6 rounds; instance B runs 3, saves, and a fresh instance C loads that
// and runs rounds 4-6. C must give A's outputs bit for bit.

constexpr std::int64_t kN = 12, kB = 2, kD = 40;

at::Tensor round_input(std::int64_t round, std::int64_t rows) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1000 + round);
  return at::randn({rows, kD}, g);
}

// Bit for bit, NaN included (a NaN attack's output equals itself here, unlike with at::equal).
bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  const auto as = a.scalar_type() == at::kDouble ? at::kLong : at::kInt;
  return at::equal(a.contiguous().view(as), b.contiguous().view(as));
}

// What an engine hands a defence in round r: worker ids, zero staleness and a server gradient (fltrust's g0).
RoundContext round_context(std::int64_t round) {
  RoundContext c;
  c.round = round;
  for (std::int64_t i = 0; i < kN; ++i) c.worker_ids.push_back(i);
  c.staleness.assign(kN, 0);
  c.server_gradient = round_input(100 + round, 1)[0];
  return c;
}

// The defence an attack that searches against it (opt_alie, agr_minmax, ...) queries: the plain mean.
class MeanOracle : public DefenceOracle {
 public:
  at::Tensor evaluate(const at::Tensor& rows) const override { return rows.mean(0); }
};

// Parameters a plugin has no default for.
std::string required_params(const std::string& name) { return name == "clip" ? "{c: 1.0}" : "{}"; }

template <class Make, class Step>
void expect_resumes_identically(const std::string& who, Make make, Step step) {
  auto a = make(), b = make(), c = make();
  std::vector<at::Tensor> want, got;
  for (std::int64_t r = 0; r < 6; ++r) want.push_back(step(*a, r).clone());
  for (std::int64_t r = 0; r < 3; ++r) step(*b, r);
  State saved;
  for (const auto& [k, v] : b->save_state()) saved[k] = v.clone();
  c->load_state(saved);
  for (std::int64_t r = 3; r < 6; ++r) got.push_back(step(*c, r).clone());
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(same_bits(got[i], want[i + 3])) << who << ": round " << i + 3 << " differs after load_state";
}

TEST(PluginState, EveryAggregatorAndPreAggregatorResumesIdentically) {
  const auto& registry = builtin_registry();
  auto ctx = make_context(kN, kB);
  for (const auto* e : registry.list(core::Kind::Aggregator)) {
    const std::string name = e->info.name;
    expect_resumes_identically(
        "aggregator " + name,
        [&] { return registry.make_aggregator(name, params_for(core::Kind::Aggregator, name), *ctx); },
        [](Aggregator& agg, std::int64_t r) { return agg.aggregate_with_context(round_input(r, kN), round_context(r)); });
  }
  for (const auto* e : registry.list(core::Kind::PreAggregator)) {
    const std::string name = e->info.name;
    expect_resumes_identically(
        "pre-aggregator " + name,
        [&] { return registry.make_preaggregator(name, params_for(core::Kind::PreAggregator, name, required_params(name)), *ctx); },
        [](PreAggregator& pre, std::int64_t r) { return pre.transform(round_input(r, kN)); });
  }
}

TEST(PluginState, EveryAttackResumesIdentically) {
  const auto& registry = builtin_registry();
  auto ctx = make_context(kN, kB);
  for (const auto* e : registry.list(core::Kind::Attack)) {
    const std::string name = e->info.name;
    expect_resumes_identically(
        "attack " + name, [&] { return registry.make_attack(name, params_for(core::Kind::Attack, name), *ctx); },
        [](Attack& attack, std::int64_t r) {
          at::Tensor all = round_input(r, kN);
          const MeanOracle mean;
          AttackRound round{all.narrow(0, 0, kN - kB), all.narrow(0, kN - kB, kB).clone(), r};
          round.defence = &mean;
          return attack.craft(round);
        });
  }
}

// An optimizer's server half and one worker's half together, as one asynchronous worker sees them.
struct OptimizerPair : Stateful {
  std::shared_ptr<Optimizer> server;
  std::unique_ptr<WorkerRule> worker;
  at::Tensor params = at::zeros({kD});
  State save_state() const override {
    State s{{"params", params}};
    for (const auto& [k, v] : server->save_state()) s["server/" + k] = v;
    for (const auto& [k, v] : worker->save_state()) s["worker/" + k] = v;
    return s;
  }
  void load_state(const State& s) override {
    State server_state, worker_state;
    for (const auto& [k, v] : s) {
      if (k.rfind("server/", 0) == 0) server_state[k.substr(7)] = v;
      if (k.rfind("worker/", 0) == 0) worker_state[k.substr(7)] = v;
    }
    params = s.at("params").clone();
    server->load_state(server_state);
    worker->load_state(worker_state);
  }
};

TEST(PluginState, EveryOptimizerResumesIdentically) {
  const auto& registry = builtin_registry();
  auto ctx = make_context(kN, kB);
  for (const auto* e : registry.list(core::Kind::Optimizer)) {
    const std::string name = e->info.name;
    expect_resumes_identically(
        "optimizer " + name,
        [&] {
          auto pair = std::make_unique<OptimizerPair>();
          pair->server = registry.make_optimizer(name, params_for(core::Kind::Optimizer, name), *ctx);
          pair->worker = pair->server->make_worker_rule(3);
          return pair;
        },
        [](OptimizerPair& p, std::int64_t r) {
          const std::int64_t index = p.server->iteration() >= 0 ? p.server->iteration() : r;
          at::Tensor message = p.worker->message(round_input(r, 1)[0], index);
          Arrival arrival{3, index, index, static_cast<double>(r)};
          p.server->apply(p.params, message, arrival, 0.1);
          return at::cat({p.params, p.server->params_for_worker(p.params, 3)});
        });
  }
}

// ---- whole runs, killed and resumed ----

struct Process {
  pid_t pid = -1;
};

Process spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> a = args;
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  Process p;
  EXPECT_EQ(posix_spawn(&p.pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  return p;
}

int wait_for(const Process& p) {
  int status = 0;
  waitpid(p.pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::int64_t rows_in(const std::string& file) {
  std::ifstream in(file);
  std::int64_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

// metrics.jsonl without the wall_time field, which is the only thing allowed to differ.
std::string without_wall_time(const std::string& jsonl) {
  std::stringstream in(jsonl), out;
  for (std::string line; std::getline(in, line);) {
    const auto start = line.find("\"wall_time\": ");
    const auto end = line.find(", ", start);
    out << (start == std::string::npos ? line : line.substr(0, start) + line.substr(end + 2)) << "\n";
  }
  return out.str();
}

// A run long enough (about a second here) to be killed in the middle: synthetic data, an MLP, stateful
// pieces everywhere (worker momentum, bucketing's and the attack's generators, cc's last output), and
// evaluations that do not line up with checkpoints, so the resumed run must drop and rewrite rows.
constexpr const char* kSyncRun = R"(name: killed_sync
seed: 7
data: {name: synthetic, train_size: 4000, test_size: 500, features: 64, classes: 5}
model: {name: mlp, hidden: [64]}
workers: {count: 8, byzantine: 2}
optimizer: {name: byzsgdnm, lr: 0.05, schedule: cosine}
aggregator: {name: cc, tau: 1.0, iterations: 2, pre: [{name: bucketing, s: 2}]}
attack: {name: gaussian, sigma: 5}
training: {batch_size: 16, budget: {steps: 600}, eval_every: 7}
)";

constexpr const char* kAsyncRun = R"(name: killed_async
seed: 11
data: {name: synthetic, train_size: 4000, test_size: 500, features: 64, classes: 5}
model: {name: mlp, hidden: [64]}
workers: {count: 8}
engine: {name: async, speed: {name: gamma, shape: 2, spread: 0.5}}
optimizer: {name: ormo, lr: 0.02, beta: 0.9}
training: {batch_size: 16, budget: {steps: 1500}, eval_every: 13}
)";

// `stop` is how the run is interrupted: SIGKILL (it resumes from its last scheduled checkpoint) or SIGTERM
// (it finishes the step, saves and exits 143, and resumes from exactly there).
void kill_resume_and_compare(const char* config, int stop, const std::string& name) {
  const std::string dir = temp_dir(name), cfg = dir + "/run.yaml";
  write_file(cfg, config);
  const std::string bin = test::phalanx_binary();
  // The reference: the same config and seed, never interrupted.
  Process whole = spawn({bin, "run", cfg, "--out", dir + "/whole"}, dir + "/whole.log");
  ASSERT_EQ(wait_for(whole), 0) << read_file(dir + "/whole.log");
  const std::int64_t total_rows = rows_in(dir + "/whole/metrics.jsonl");
  ASSERT_GT(total_rows, 20);

  // Interrupted when a random number of evaluation rows are written (the draw is logged, to reproduce).
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  const std::int64_t target = std::uniform_int_distribution<std::int64_t>(3, total_rows / 2)(rng);
  SCOPED_TRACE("interrupted after row " + std::to_string(target) + " (seed " + std::to_string(seed) + ")");
  Process cut = spawn({bin, "run", cfg, "--out", dir + "/cut", "--checkpoint-every", "5"}, dir + "/cut.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (rows_in(dir + "/cut/metrics.jsonl") < target && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  ::kill(cut.pid, stop);
  const int code = wait_for(cut);
  ASSERT_EQ(code, 128 + stop) << "the run ended before it could be interrupted:\n" << read_file(dir + "/cut.log");
  ASSERT_TRUE(fs::exists(dir + "/cut/checkpoint.pt"));
  const std::int64_t rows_at_kill = rows_in(dir + "/cut/metrics.jsonl");
  EXPECT_LT(rows_at_kill, total_rows);
  if (stop == SIGTERM) EXPECT_THAT(read_file(dir + "/cut/summary.json"), ::testing::HasSubstr("interrupted"));

  Process resumed = spawn({bin, "run", "--resume", dir + "/cut"}, dir + "/resume.log");
  ASSERT_EQ(wait_for(resumed), 0) << read_file(dir + "/resume.log");
  EXPECT_THAT(read_file(dir + "/resume.log"), ::testing::HasSubstr("resumed from"));
  EXPECT_EQ(without_wall_time(read_file(dir + "/cut/metrics.jsonl")),
            without_wall_time(read_file(dir + "/whole/metrics.jsonl")));
  EXPECT_THAT(read_file(dir + "/cut/summary.json"), ::testing::HasSubstr("\"status\": \"ok\""));
  EXPECT_FALSE(fs::exists(dir + "/cut/checkpoint.pt")) << "a finished run keeps no checkpoint";
}

TEST(KilledRun, SyncRunKilledWithSigkillResumesBitForBit) {
  kill_resume_and_compare(kSyncRun, SIGKILL, "killed_sync");
}

TEST(KilledRun, AsyncRunKilledWithSigkillResumesBitForBit) {
  kill_resume_and_compare(kAsyncRun, SIGKILL, "killed_async");
}

TEST(KilledRun, SigtermSavesMidStepStateAndResumesBitForBit) {
  kill_resume_and_compare(kSyncRun, SIGTERM, "term_sync");
  // Asynchronous with a buffer of 3: a stop between two arrivals saves a half-full buffer.
  std::string buffered = kAsyncRun;
  buffered.replace(buffered.find("engine: {name: async,"), 21, "engine: {name: async, buffer: 3,");
  buffered += "aggregator: {name: cm}\n";
  kill_resume_and_compare(buffered.c_str(), SIGTERM, "term_async");
}

TEST(KilledRun, ResumeRefusesWhatItCannotContinue) {
  const std::string dir = temp_dir("resume_refusals"), cfg = dir + "/run.yaml";
  std::string small = kSyncRun;
  small.replace(small.find("steps: 600"), 10, "steps: 30");
  write_file(cfg, small);
  std::string out;
  const std::string bin = test::phalanx_binary();
  EXPECT_EQ(run_command(bin + " run " + cfg + " --out " + dir + "/done", &out), 0) << out;
  EXPECT_NE(run_command(bin + " run --resume " + dir + "/done", &out), 0);
  EXPECT_THAT(out, ::testing::HasSubstr("already ended (status ok"));
  EXPECT_NE(run_command(bin + " run --resume " + dir + "/nowhere", &out), 0);
  EXPECT_THAT(out, ::testing::HasSubstr("no such run folder"));
  EXPECT_NE(run_command(bin + " run " + cfg + " --checkpoint-every soon", &out), 0);
  EXPECT_THAT(out, ::testing::HasSubstr("--checkpoint-every expects"));

  // A folder whose run was killed before its first checkpoint has nothing to resume from.
  fs::create_directories(dir + "/early");
  fs::copy_file(dir + "/done/config.yaml", dir + "/early/config.yaml");
  EXPECT_NE(run_command(bin + " run --resume " + dir + "/early", &out), 0);
  EXPECT_THAT(out, ::testing::HasSubstr("no checkpoint.pt"));

  // A damaged checkpoint, and one from an edited config, are refused by name.
  Checkpoint fake;
  fake.put_text("run/engine", "sync");
  fake.put_text("run/config", "name: something else\n");
  fake.write(dir + "/early/checkpoint.pt");
  EXPECT_NE(run_command(bin + " run --resume " + dir + "/early", &out), 0);
  EXPECT_THAT(out, ::testing::HasSubstr("another config"));
  const std::string bytes = read_file(dir + "/early/checkpoint.pt");
  write_file(dir + "/early/checkpoint.pt", bytes.substr(0, bytes.size() - 3));
  EXPECT_NE(run_command(bin + " run --resume " + dir + "/early", &out), 0);
  EXPECT_THAT(out, ::testing::HasSubstr("truncated"));
}

}  // namespace
}  // namespace phalanx::test
