// Pipeline configs: YAML syntax errors and validation errors carry file:line; overrides; resolved output.
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"

#include <filesystem>

#include "support.hpp"

namespace phalanx::test {
namespace {

const char* kGood = R"(name: t
seed: 3
data: {name: synthetic, train_size: 200, test_size: 50}
model: {name: logreg}
workers: {count: 4, byzantine: 1}
optimizer: {name: byzsgdnm, lr: 0.5, schedule: cosine}
aggregator: {name: cc, tau: 0.2, pre: []}
attack: {name: bitflip}
training: {batch_size: 8, budget: {steps: 5}, eval_every: 5}
)";

core::PipelineSpec resolve(const std::string& text) {
  return core::resolve_pipeline(core::parse_yaml(text, "pipe.yaml"), builtin_registry());
}

// Replaces line `line` (1-based) of kGood.
std::string with_line(int line, const std::string& replacement) {
  std::stringstream in(kGood);
  std::string out, l;
  for (int i = 1; std::getline(in, l); ++i) out += (i == line ? replacement : l) + "\n";
  return out;
}

TEST(Config, GoodConfigResolvesWithDefaults) {
  core::PipelineSpec s = resolve(kGood);
  EXPECT_EQ(s.name, "t");
  EXPECT_EQ(s.seed, 3u);
  EXPECT_EQ(s.workers, 4);
  EXPECT_EQ(s.byzantine, 1);
  EXPECT_EQ(s.aggregator.name, "cc");
  EXPECT_DOUBLE_EQ(s.aggregator.params.get_double("tau"), 0.2);
  EXPECT_EQ(s.aggregator.params.get_int("iterations"), 1);  // default
  EXPECT_DOUBLE_EQ(s.lr, 0.5);
  EXPECT_EQ(s.schedule.name, "cosine");
  EXPECT_EQ(s.budget.unit, "steps");
  // The resolved tree holds plugin defaults too.
  const Value* beta = core::get_path(s.resolved, "optimizer.beta");
  ASSERT_NE(beta, nullptr);
  EXPECT_DOUBLE_EQ(beta->as_double(), 0.9);
  ASSERT_NE(core::get_path(s.resolved, "attack.scale"), nullptr);
}

TEST(Config, ResolvedConfigReadsBackToTheSameSpec) {
  core::PipelineSpec s = resolve(kGood);
  core::PipelineSpec again = resolve(core::to_yaml(s.resolved));
  EXPECT_EQ(core::to_yaml(again.resolved), core::to_yaml(s.resolved));
}

TEST(Config, YamlSyntaxErrorHasFileAndLine) {
  EXPECT_ERROR_WITH(core::parse_yaml("a: 1\nb: [1, 2\nc: 3\n", "broken.yaml"), "broken.yaml:", "invalid YAML");
}

TEST(Config, MissingFileIsClear) {
  EXPECT_ERROR_WITH(core::load_yaml_file("/nonexistent/x.yaml"), "cannot read config file '/nonexistent/x.yaml'");
}

TEST(Config, DuplicateKeyIsAnError) {
  EXPECT_ERROR_WITH(core::parse_yaml("a: 1\na: 2\n", "dup.yaml"), "dup.yaml:2", "appears twice");
}

TEST(Config, UnknownSectionNamesLineAndSuggests) {
  EXPECT_ERROR_WITH(resolve(std::string(kGood) + "trainng: {}\n"), "pipe.yaml:10", "unknown section 'trainng'",
                    "did you mean 'training'?");
}

TEST(Config, UnknownPluginParameterHasLine) {
  EXPECT_ERROR_WITH(resolve(with_line(7, "aggregator: {name: cc, tua: 0.2}")), "pipe.yaml:7", "aggregator.tua",
                    "did you mean 'tau'?");
}

TEST(Config, UnknownPluginNameHasLineAndSuggestion) {
  EXPECT_ERROR_WITH(resolve(with_line(8, "attack: {name: bitfilp}")), "pipe.yaml:8", "attack.name",
                    "unknown attack 'bitfilp'", "did you mean 'bitflip'?");
}

TEST(Config, WrongTypeInCoreSectionHasLine) {
  EXPECT_ERROR_WITH(resolve(with_line(9, "training: {batch_size: many, budget: {steps: 5}}")), "pipe.yaml:9",
                    "training.batch_size must be an integer");
}

TEST(Config, TooManyByzantineWorkers) {
  EXPECT_ERROR_WITH(resolve(with_line(5, "workers: {count: 4, byzantine: 4}")), "pipe.yaml:5", "workers.byzantine",
                    "no honest worker");
}

TEST(Config, BadBudget) {
  EXPECT_ERROR_WITH(resolve(with_line(9, "training: {budget: {stepz: 5}}")), "pipe.yaml:9", "training.budget.stepz",
                    "did you mean 'steps'?");
  EXPECT_ERROR_WITH(resolve(with_line(9, "training: {budget: {steps: -1}}")), "must be a positive number");
  EXPECT_ERROR_WITH(resolve(with_line(9, "training: {budget: {steps: 1, epochs: 2}}")), "exactly one");
}

TEST(Config, MissingRequiredSection) {
  EXPECT_ERROR_WITH(resolve("model: {name: mlp}\n"), "no 'data' section");
}

TEST(Config, BadPartitionAndSchedule) {
  EXPECT_ERROR_WITH(resolve(with_line(3, "data: {name: synthetic, partition: {name: dirichlet, alpha: -1}}")),
                    "pipe.yaml:3", "data.partition.alpha");
  EXPECT_ERROR_WITH(resolve(with_line(6, "optimizer: {name: sgd, schedule: cosinus}")), "optimizer.schedule.name",
                    "not one of");
}

TEST(Config, OverridesApplyAndParseYamlValues) {
  Value root = core::parse_yaml(kGood, "pipe.yaml");
  core::apply_override(root, "optimizer.lr=0.25");
  core::apply_override(root, "aggregator={name: cm}");
  core::apply_override(root, "model.hidden=[3, 4]");
  core::apply_override(root, "model.name=mlp");
  core::PipelineSpec s = core::resolve_pipeline(root, builtin_registry());
  EXPECT_DOUBLE_EQ(s.lr, 0.25);
  EXPECT_EQ(s.aggregator.name, "cm");
  EXPECT_EQ(s.model.params.get_int_list("hidden"), (std::vector<std::int64_t>{3, 4}));
}

TEST(Config, BadOverrideIsClear) {
  Value root = core::parse_yaml(kGood, "pipe.yaml");
  EXPECT_ERROR_WITH(core::apply_override(root, "optimizer.lr"), "--set expects key=value");
  EXPECT_ERROR_WITH(core::apply_override(root, "seed.x=1"), "'seed' is not a section");
  core::apply_override(root, "optimizer.lr=fast");
  EXPECT_ERROR_WITH(core::resolve_pipeline(root, builtin_registry()), "--set optimizer.lr", "must be a number");
}

TEST(Config, QuotedNumbersStayStrings) {
  Value v = core::parse_yaml("{a: '1', b: 1, c: 1.5, d: true, e: ~}", "x");
  EXPECT_EQ(v.find("a")->type(), Value::Type::String);
  EXPECT_EQ(v.find("b")->type(), Value::Type::Int);
  EXPECT_EQ(v.find("c")->type(), Value::Type::Double);
  EXPECT_EQ(v.find("d")->type(), Value::Type::Bool);
  EXPECT_TRUE(v.find("e")->is_null());
}

// The base pipeline of every config under configs/ (its compare or sweep grid is `phalanx validate`'s job:
// the benchmark grid alone is 5,168 runs).
TEST(Config, ShippedConfigsAreValid) {
  int checked = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(test::source_dir() + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    Value root = core::load_yaml_file(entry.path().string());
    EXPECT_NO_THROW(core::resolve_pipeline(root, builtin_registry())) << entry.path();
    ++checked;
  }
  EXPECT_GE(checked, 8);
}

}  // namespace
}  // namespace phalanx::test
