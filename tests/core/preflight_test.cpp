// The memory preflight (core/src/engine/preflight.cpp) and the guard it measures with (core/src/run/memory_guard.cpp).
#include <ATen/ATen.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/run/memory_guard.hpp"
#include "phalanx/core/engine/data_cache.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/engine/preflight.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

core::PipelineSpec spec_from(const std::string& yaml) {
  return core::resolve_pipeline(core::parse_yaml(yaml, "preflight.yaml"), builtin_registry());
}

constexpr const char* kSmallRun = R"(name: small
data: {name: synthetic, train_size: 2000, test_size: 200, features: 50}
model: {name: mlp, hidden: [400]}
workers: {count: 20, byzantine: 2}
optimizer: {name: byzsgdnm, lr: 0.1}
aggregator: cm
attack: alie
training: {batch_size: 16, budget: {steps: 5}, eval_every: 5, threads: 2}
)";

TEST(MemoryLimit, ParsesUnitsAndRefusesNonsense) {
  EXPECT_EQ(core::memory_limit("512M").bytes, 512LL << 20);
  EXPECT_EQ(core::memory_limit("1.5GiB").bytes, 3LL << 29);
  EXPECT_EQ(core::memory_limit("4096").bytes, 4096);
  EXPECT_GT(core::memory_limit("").bytes, 0);
  EXPECT_THAT(core::memory_limit("").source, ::testing::HasSubstr("available"));
  EXPECT_THROW(core::memory_limit("lots"), Error);
  EXPECT_THROW(core::memory_limit("-1G"), Error);
  EXPECT_THROW(core::memory_limit("3 parsecs"), Error);
}

TEST(MemoryGuard, CountsLiveBytesAndRefusesAnAllocationAboveTheCap) {
  core::MemoryGuard guard(64 << 20);
  {
    at::Tensor a = at::zeros({1 << 20});  // 4 MiB
    EXPECT_GE(guard.live(), 4 << 20);
    EXPECT_THROW(at::empty({int64_t{1} << 30}), core::MemoryCapExceeded);  // 4 GiB
  }
  EXPECT_LT(guard.live(), 4 << 20);
  EXPECT_GE(guard.peak(), 4 << 20);
}

TEST(Preflight, CountsTheMessageMatrixAndPerWorkerState) {
  const core::PipelineSpec spec = spec_from(kSmallRun);
  const core::MemoryEstimate e = core::preflight(spec, builtin_registry(), core::memory_limit(""));
  const double d = 50 * 400 + 400 + 400 * 4 + 4, row = 4 * d;
  auto item = [&](const std::string& prefix) {
    for (const auto& i : e.items)
      if (i.what.rfind(prefix, 0) == 0) return i.bytes;
    ADD_FAILURE() << "no item " << prefix;
    return 0.0;
  };
  EXPECT_DOUBLE_EQ(item("message matrix"), 20 * row);
  EXPECT_DOUBLE_EQ(item("model 'mlp'"), row);
  // ByzSGDnm keeps one momentum vector per worker (plugins/optimizers/byzsgdnm.cpp): measured, not assumed.
  // The synchronous engine keeps an honest worker's in its row of the message matrix, so what is left is the
  // 2 Byzantine workers' and, for a moment, one first message per gradient thread (2).
  EXPECT_NEAR(item("optimizer 'byzsgdnm' state on the workers"), 4 * row, 0.05 * 4 * row);
  // The asynchronous engine has no per-worker rows: there every worker's momentum is its own.
  std::string async_run = kSmallRun;
  async_run.insert(async_run.find("data:"), "engine: {name: async, buffer: 4}\n");
  const core::MemoryEstimate a = core::preflight(spec_from(async_run), builtin_registry(), core::memory_limit(""));
  double async_state = 0;
  for (const auto& i : a.items)
    if (i.what.rfind("optimizer 'byzsgdnm' state on the workers", 0) == 0) async_state = i.bytes;
  EXPECT_NEAR(async_state, 20 * row, 0.05 * 20 * row);
  EXPECT_DOUBLE_EQ(item("data 'synthetic'"), (2000.0 + 200.0) * (50 * 4 + 8));
  EXPECT_GT(e.peak(), 24 * row);
  EXPECT_LT(e.peak(), 54 * row);  // plus the data (5 rows) and the largest phase (an evaluation, 8 rows)
}

TEST(Preflight, RefusesWhatDoesNotFitNamingTheLargestItemAndItsKeys) {
  const core::PipelineSpec spec = spec_from(kSmallRun);
  try {
    core::preflight(spec, builtin_registry(), core::memory_limit("2M"));
    FAIL() << "a run of about 4 MiB fitted in 2 MiB";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("run 'small' would not fit in memory"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("(--max-memory 2M)"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("<- workers.count, model.hidden"));
  }
}

TEST(Preflight, RefusesABatchLargerThanAWorkersShare) {
  std::string yaml = kSmallRun;
  yaml.replace(yaml.find("batch_size: 16"), 14, "batch_size: 101");
  EXPECT_ERROR_WITH(core::preflight(spec_from(yaml), builtin_registry(), core::memory_limit("")),
                    "training.batch_size = 101 is larger than a worker's share of the training set (2000 samples / "
                    "20 workers = 100); use training.batch_size <= 100");
}

std::int64_t logged(const std::string& log, const std::string& key) {
  const auto pos = log.find(key + "=");
  if (pos == std::string::npos) return -1;
  return std::stoll(log.substr(pos + key.size() + 1));
}

// The estimate against the measured peak of a real run: its resident memory at the peak minus what the
// process held before the run (LibTorch, the plugins). 64 workers and a 250 k-parameter model, so the
// n x d matrices (64 MiB each) dominate as they do in large runs. docs/reliability.md states the factor.
// A sweep's runs differ in partition, workers and seed around a few data sets: validating it must not load
// the data once per run (a 5,168-run grid took minutes per thousand runs before data sets were cached), and
// the runs it forks inherit what it loaded (data_cache.hpp).
TEST(Preflight, DataCacheLoadsEachDataSetOnceAcrossPartitionsAndWorkerCounts) {
  core::data_cache().clear();
  const auto limit = core::memory_limit("");
  const std::string with_partition = std::string(kSmallRun) + "seed: 3\n";
  const core::PipelineSpec first_spec = spec_from(with_partition);
  core::preflight(first_spec, builtin_registry(), limit);
  ASSERT_EQ(core::data_cache().size(), 1u);
  const at::Tensor first = core::data_cache().find(core::data_cache_key(first_spec))->train_x;
  Value skewed = core::parse_yaml(with_partition, "preflight.yaml");
  core::set_path(skewed, "data.partition", core::parse_yaml("{name: dirichlet, alpha: 0.5}", "inline"));
  core::set_path(skewed, "workers.count", Value(std::int64_t{12}));
  core::set_path(skewed, "data.limit", core::parse_yaml("{train: 1200}", "inline"));
  const core::PipelineSpec skewed_spec = core::resolve_pipeline(skewed, builtin_registry());
  core::preflight(skewed_spec, builtin_registry(), limit);
  ASSERT_EQ(core::data_cache().size(), 1u) << "a new partition, worker count or limit reloaded the same data";
  EXPECT_TRUE(core::data_cache().find(core::data_cache_key(skewed_spec))->train_x.is_same(first));
  // The run takes the cached data set and cuts its own limit from it, leaving the cached one whole.
  const Dataset limited = core::load_data(skewed_spec, builtin_registry(), core::run_info(skewed_spec, ""), nullptr);
  EXPECT_EQ(limited.train_x.size(0), 1200);
  EXPECT_EQ(core::data_cache().find(core::data_cache_key(skewed_spec))->train_x.size(0), first.size(0));

  // Another data seed is another data set (synthetic draws its samples from it); both stay cached.
  core::set_path(skewed, "seed", Value(std::int64_t{4}));
  core::preflight(core::resolve_pipeline(skewed, builtin_registry()), builtin_registry(), limit);
  EXPECT_EQ(core::data_cache().size(), 2u);
}

TEST(Preflight, EstimateIsWithinAFactorOfTheMeasuredPeakOfARealRun) {
  const std::string dir = temp_dir("preflight_rss");
  write_file(dir + "/big.yaml", R"(name: big
data: {name: synthetic, train_size: 4000, test_size: 500, features: 500}
model: {name: mlp, hidden: [500]}
workers: {count: 64, byzantine: 4}
optimizer: {name: byzsgdnm, lr: 0.1}
aggregator: cm
attack: bitflip
training: {batch_size: 16, budget: {steps: 3}, eval_every: 3}
)");
  std::string out;
  const int code = run_command(test::phalanx_binary() + " run " + dir + "/big.yaml --out " + dir + "/run", &out);
  ASSERT_EQ(code, 0) << out;
  const std::string log = read_file(dir + "/run/log.txt");
  const double estimate = static_cast<double>(logged(log, "estimate_bytes"));
  const double used = static_cast<double>(logged(log, "peak_rss_bytes") - logged(log, "start_rss_bytes"));
  ASSERT_GT(estimate, 0) << log;
  // The message matrix (64 MB) alone; the honest workers' momenta live in its rows.
  EXPECT_GT(estimate, 64.0 * (1 << 20)) << log;
  EXPECT_GT(used / estimate, 0.67) << log;
  EXPECT_LT(used / estimate, 1.5) << log;
}

}  // namespace
}  // namespace phalanx::test
