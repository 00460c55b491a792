// The core's config keys as data (core_params.hpp): every key the resolver reads is declared and
// printable, checked like a plugin parameter; and the data keys the core owns for every source:
// data.seed, data.limit and the shards partition.
#include "phalanx/core/config/core_params.hpp"

#include <sstream>

#include <ATen/ATen.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/engine/training_parts.hpp"

#include "support.hpp"

namespace phalanx::test {
namespace {

const char* kBase = R"(name: t
seed: 3
data: {name: synthetic, train_size: 300, test_size: 60, classes: 6}
model: {name: logreg}
workers: {count: 6, byzantine: 1}
training: {batch_size: 8, budget: {steps: 5}, eval_every: 5}
)";

core::PipelineSpec resolve_with(const std::vector<std::string>& overrides) {
  Value root = core::parse_yaml(kBase, "pipe.yaml");
  for (const auto& o : overrides) core::apply_override(root, o);
  return core::resolve_pipeline(root, builtin_registry());
}

TEST(CoreParams, EveryResolvedCoreKeyIsDeclared) {
  // config.yaml holds each core section with every key filled in: each must be a declared core key
  // (or a plugin's parameter, for the sections shared with a plugin).
  const core::PipelineSpec s = resolve_with({"data.seed=4", "data.limit={train: 10}", "server_data={samples: 5}"});
  for (const auto& section : core::core_param_specs()) {
    if (section.path.empty() || section.path == "training.budget") continue;
    const Value* v = &s.resolved;
    std::stringstream parts(section.path);
    for (std::string part; std::getline(parts, part, '.');) v = v ? v->find(part) : nullptr;
    ASSERT_NE(v, nullptr) << section.path;
    for (const auto& p : section.params) EXPECT_NE(v->find(p.name), nullptr) << section.path << "." << p.name;
  }
}

TEST(CoreParams, CoreKeysGetPluginStyleErrors) {
  EXPECT_ERROR_WITH(resolve_with({"workers.cuont=4"}), "workers.cuont", "did you mean 'count'?");
  EXPECT_ERROR_WITH(resolve_with({"data.limit.tset=4"}), "data.limit.tset", "did you mean 'test'?");
  EXPECT_ERROR_WITH(resolve_with({"data.seed=-1"}), "data.seed = -1 is out of range");
  EXPECT_ERROR_WITH(resolve_with({"data.partition={name: shards, per_worker: zero}"}),
                    "data.partition.per_worker must be an integer");
}

TEST(CoreParams, PrintsEverySectionWithTypesDefaultsAndHelp) {
  std::ostringstream out;
  EXPECT_EQ(core::print_core_params(out), 0);
  for (const auto& section : core::core_param_specs()) {
    if (!section.path.empty()) EXPECT_NE(out.str().find("  " + section.path + "  -  "), std::string::npos);
    for (const auto& p : section.params) EXPECT_NE(out.str().find(core::describe_param(p)), std::string::npos);
  }
  EXPECT_NE(out.str().find("per_worker (integer, default 2) in [1.0, 1000.0]"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("seed (integer, default auto)"), std::string::npos);
}

TEST(CoreParams, OldDataLimitKeysSayWhereTheyMoved) {
  EXPECT_ERROR_WITH(resolve_with({"data.train_limit=100"}), "data.train_limit has moved",
                    "`limit: {train: 100}`", "data.limit.train");
}

std::vector<at::Tensor> partition_for(const core::PipelineSpec& spec) {
  at::Tensor y = at::arange(300, at::kLong).remainder(6);
  return core::partition_of(spec, y, 6);
}

bool same_partition(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  bool same = a.size() == b.size();
  for (std::size_t i = 0; same && i < a.size(); ++i) same = at::equal(a[i], b[i]);
  return same;
}

TEST(DataSeed, SeedsThePartitionApartFromTheRunSeed) {
  for (const char* partition : {"iid", "{name: dirichlet, alpha: 0.5}", "{name: shards, per_worker: 2}"}) {
    const std::string p = std::string("data.partition=") + partition;
    const auto a = partition_for(resolve_with({p, "data.seed=10"}));
    EXPECT_TRUE(same_partition(a, partition_for(resolve_with({p, "data.seed=10", "seed=99"})))) << partition;
    EXPECT_FALSE(same_partition(a, partition_for(resolve_with({p, "data.seed=11"})))) << partition;
    // Without data.seed the run seed decides, as before data.seed existed.
    EXPECT_FALSE(same_partition(partition_for(resolve_with({p, "seed=1"})), partition_for(resolve_with({p, "seed=2"}))));
    EXPECT_EQ(core::data_seed(resolve_with({p}), "partition"), core::derive_seed(3, "partition"));
  }
}

TEST(DataSeed, SeedsTheDataSourceAndTheBatchOrders) {
  const core::PipelineSpec a = resolve_with({"data.seed=10"}), b = resolve_with({"data.seed=10", "seed=99"}),
                           c = resolve_with({"data.seed=11"});
  const Dataset da = core::load_data(a, builtin_registry(), core::run_info(a, ""), nullptr);
  const Dataset db = core::load_data(b, builtin_registry(), core::run_info(b, ""), nullptr);
  const Dataset dc = core::load_data(c, builtin_registry(), core::run_info(c, ""), nullptr);
  EXPECT_TRUE(at::equal(da.train_x, db.train_x));
  EXPECT_FALSE(at::equal(da.train_x, dc.train_x));
  auto sa = core::make_streams(a, da), sb = core::make_streams(b, db);
  for (std::size_t w = 0; w < sa.size(); ++w) EXPECT_TRUE(at::equal(sa[w].next(20), sb[w].next(20)));
}

// data.limit is the core's, so it cuts every data source alike: each one that loads here.
TEST(DataLimit, AppliesToEveryDataSource) {
  for (const std::string data : {"{name: synthetic, train_size: 300, test_size: 60}", "{name: fashion_mnist}"}) {
    const core::PipelineSpec s = resolve_with({"data=" + data, "data.limit={train: 120, test: 30}"});
    const Dataset d = core::load_data(s, builtin_registry(), core::run_info(s, ""), nullptr);
    EXPECT_EQ(d.train_x.size(0), 120) << data;
    EXPECT_EQ(d.train_y.size(0), 120) << data;
    EXPECT_EQ(d.test_x.size(0), 30) << data;
    EXPECT_EQ(d.test_y.size(0), 30) << data;
  }
  for (const auto& entry : builtin_registry().list(core::Kind::Data))
    for (const auto& p : entry->info.params)
      EXPECT_EQ(p.name.find("limit"), std::string::npos) << entry->info.name << " still declares " << p.name;
}

TEST(DataLimit, ZeroOrMoreThanTheSetKeepsEverySample) {
  const core::PipelineSpec s = resolve_with({"data.limit={train: 0, test: 5000}"});
  const Dataset d = core::load_data(s, builtin_registry(), core::run_info(s, ""), nullptr);
  EXPECT_EQ(d.train_x.size(0), 300);
  EXPECT_EQ(d.test_x.size(0), 60);
}

}  // namespace
}  // namespace phalanx::test
