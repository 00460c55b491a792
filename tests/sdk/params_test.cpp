// Params: typed values, defaults, unknown keys, wrong types and ranges, all with the config path.
#include "phalanx/params.hpp"

#include "phalanx/core/config/config.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

const std::vector<ParamSpec> kSpecs{
    {"tau", ParamType::Double, 0.1, "radius", 0.0},
    {"iterations", ParamType::Int, 1, "count", 1, 100},
    {"mode", ParamType::String, "fast", "mode", {}, {}, {"fast", "slow"}},
    {"hidden", ParamType::IntList, Value::list({200}), "sizes", 1},
    {"f", ParamType::Int, Value(), "auto"},
    {"flag", ParamType::Bool, false, "flag"}};

Value yaml(const std::string& text) { return core::parse_yaml(text, "cfg.yaml"); }

TEST(Params, DefaultsAreFilledAndTyped) {
  Params p = Params::validate(kSpecs, yaml("{}"), "aggregator");
  EXPECT_DOUBLE_EQ(p.get_double("tau"), 0.1);
  EXPECT_EQ(p.get_int("iterations"), 1);
  EXPECT_EQ(p.get_string("mode"), "fast");
  EXPECT_EQ(p.get_int_list("hidden"), (std::vector<std::int64_t>{200}));
  EXPECT_FALSE(p.has("f"));
  EXPECT_EQ(p.get_int_or("f", 3), 3);
  EXPECT_FALSE(p.get_bool("flag"));
}

TEST(Params, GivenValuesWinAndIntsPromoteToDoubles) {
  Params p = Params::validate(kSpecs, yaml("{tau: 2, iterations: 3, hidden: [10, 20], f: 1, flag: true}"), "agg");
  EXPECT_DOUBLE_EQ(p.get_double("tau"), 2.0);
  EXPECT_EQ(p.get_int("iterations"), 3);
  EXPECT_EQ(p.get_int_list("hidden"), (std::vector<std::int64_t>{10, 20}));
  EXPECT_EQ(p.get_int_or("f", 3), 1);
  EXPECT_TRUE(p.get_bool("flag"));
}

TEST(Params, UnknownKeyNamesPathLineAndSuggestion) {
  EXPECT_ERROR_WITH(Params::validate(kSpecs, yaml("\n\n{tua: 1}"), "aggregator"), "cfg.yaml:3", "aggregator.tua",
                    "unknown parameter 'tua'", "did you mean 'tau'?");
}

TEST(Params, WrongTypeIsAnError) {
  EXPECT_ERROR_WITH(Params::validate(kSpecs, yaml("{tau: big}"), "aggregator"), "aggregator.tau", "must be a number",
                    "'big'");
  EXPECT_ERROR_WITH(Params::validate(kSpecs, yaml("{iterations: 1.5}"), "aggregator"), "must be an integer");
  EXPECT_ERROR_WITH(Params::validate(kSpecs, yaml("{flag: 1}"), "x"), "x.flag", "boolean");
  EXPECT_ERROR_WITH(Params::validate(kSpecs, yaml("{hidden: [10, a]}"), "model"), "model.hidden element");
}

TEST(Params, OutOfRangeAndChoices) {
  EXPECT_ERROR_WITH(Params::validate(kSpecs, yaml("{tau: -1}"), "aggregator"), "aggregator.tau = -1",
                    "out of range [0.0, inf]");
  EXPECT_ERROR_WITH(Params::validate(kSpecs, yaml("{iterations: 0}"), "a"), "a.iterations = 0");
  EXPECT_ERROR_WITH(Params::validate(kSpecs, yaml("{mode: medium}"), "a"), "'medium' is not one of: fast, slow");
  EXPECT_ERROR_WITH(Params::validate(kSpecs, yaml("{tau: .nan}"), "a"), "must be finite");
}

TEST(Params, FailNamesTheParameterAndLine) {
  Params p = Params::validate(kSpecs, yaml("{\n  tau: 1,\n  iterations: 4}"), "aggregator");
  EXPECT_ERROR_WITH(p.fail("iterations", "must be <= 3"), "cfg.yaml:3", "aggregator.iterations: must be <= 3");
}

TEST(Params, ReadingAnUndeclaredParameterIsAnInternalError) {
  Params p = Params::validate(kSpecs, yaml("{}"), "aggregator");
  EXPECT_ERROR_WITH(p.get_double("nope"), "never declared");
}

}  // namespace
}  // namespace phalanx::test
