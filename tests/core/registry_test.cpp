// The loader and registry: handshake refusals, duplicates, unknown names, failing plugins.
#include "phalanx/core/plugins/registry.hpp"

#include <ATen/ATen.h>

#include "phalanx/abi.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/plugins/plugin_guard.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

const std::string kTestPlugins = test::test_plugin_dir();

TEST(Loader, RefusesWrongAbiVersionNamingFileAndBothVersions) {
  core::Registry r;
  // Named, not a temporary: EXPECT_ERROR_WITH keeps only the char pointers (ASan: stack-use-after-scope).
  const std::string ours = "ABI version " + std::to_string(PHALANX_SDK_ABI_VERSION);
  EXPECT_ERROR_WITH(r.load_library(kTestPlugins + "/test_wrong_abi.so"), "test_wrong_abi.so", "ABI version 999",
                    ours.c_str(), "Rebuild");
  EXPECT_TRUE(r.loaded_files().empty());
}

TEST(Loader, RefusesWrongBuildFingerprint) {
  core::Registry r;
  EXPECT_ERROR_WITH(r.load_library(kTestPlugins + "/test_wrong_fingerprint.so"), "test_wrong_fingerprint.so",
                    "othercc cxx11abi=0 torch=0.1", PHALANX_BUILD_FINGERPRINT);
}

TEST(Loader, RefusesLibraryWithoutHandshake) {
  core::Registry r;
  EXPECT_ERROR_WITH(r.load_library(kTestPlugins + "/test_no_handshake.so"), "test_no_handshake.so",
                    PHALANX_HANDSHAKE_SYMBOL, "not a phalanx plugin");
}

TEST(Loader, RefusesAVersion1LibraryNamingTheFileAndSayingToRebuild) {
  core::Registry r;
  EXPECT_ERROR_WITH(r.load_library(kTestPlugins + "/test_v1_only.so"), "test_v1_only.so", "ABI version 1",
                    "'phalanx_plugin_handshake'", "Rebuild the plugin");
  EXPECT_TRUE(r.loaded_files().empty());
}

TEST(Loader, RefusesATruncatedHandshakeByItsSize) {
  core::Registry r;
  EXPECT_ERROR_WITH(r.load_library(kTestPlugins + "/test_truncated_handshake.so"), "test_truncated_handshake.so",
                    "truncated handshake (size 8 bytes", "Rebuild");
  EXPECT_TRUE(r.loaded_files().empty());
}

TEST(Loader, AThrowingRegisterFunctionRegistersNothing) {
  core::Registry r;
  EXPECT_ERROR_WITH(r.load_library(kTestPlugins + "/test_throwing_register.so"), "test_throwing_register.so",
                    "failed while registering", "configuration file missing");
  EXPECT_FALSE(r.contains(core::Kind::Aggregator, "registered_before_failure"));
  EXPECT_TRUE(r.loaded_files().empty());
  // Nothing half-registered blocks a later, correct library with the same names.
  r.register_inline("later", [](void* registrar) {
    static_cast<Registrar*>(registrar)->add_aggregator(
        {"registered_before_failure", "", {}},
        [](const Params&, const Context&) -> std::unique_ptr<Aggregator> { return nullptr; });
  });
  EXPECT_TRUE(r.contains(core::Kind::Aggregator, "registered_before_failure"));
}

TEST(Loader, ADuplicateNameRegistersNothingOfThatLibrary) {
  core::Registry r;
  r.load_library(test::builtin_plugin_dir() + "/aggregators_mean.so");
  EXPECT_ERROR_WITH(r.load_library(kTestPlugins + "/test_duplicate_register.so"), "duplicate aggregator 'mean'",
                    "test_duplicate_register.so");
  EXPECT_FALSE(r.contains(core::Kind::Aggregator, "registered_before_failure"));
  EXPECT_EQ(r.find(core::Kind::Aggregator, "mean").origin.find("aggregators_mean.so") != std::string::npos, true);
}

TEST(Loader, ANameRegisteredTwiceByOneLibraryIsADuplicate) {
  core::Registry r;
  EXPECT_ERROR_WITH(r.register_inline("twice",
                                      [](void* registrar) {
                                        auto* reg = static_cast<Registrar*>(registrar);
                                        for (int i = 0; i < 2; ++i)
                                          reg->add_aggregator({"same", "", {}},
                                                              [](const Params&, const Context&)
                                                                  -> std::unique_ptr<Aggregator> { return nullptr; });
                                      }),
                    "duplicate aggregator 'same'", "(twice)");
  EXPECT_FALSE(r.contains(core::Kind::Aggregator, "same"));
}

TEST(Loader, RefusesFileThatIsNotALibrary) {
  const std::string dir = temp_dir("not_a_library");
  write_file(dir + "/fake.so", "this is text, not ELF");
  core::Registry r;
  EXPECT_ERROR_WITH(r.load_library(dir + "/fake.so"), "fake.so", "cannot load plugin library");
}

TEST(Loader, LoadsEveryBuiltinKind) {
  const auto& r = builtin_registry();
  for (core::Kind kind : {core::Kind::Aggregator, core::Kind::Attack, core::Kind::Optimizer, core::Kind::Data,
                          core::Kind::Model})
    EXPECT_FALSE(r.list(kind).empty()) << core::kind_name(kind);
  EXPECT_TRUE(r.contains(core::Kind::Aggregator, "cc"));
  EXPECT_TRUE(r.contains(core::Kind::Optimizer, "byzsgdnm"));
}

TEST(Loader, LoadingTheSameFileTwiceIsHarmless) {
  core::Registry r;
  r.load_library(test::builtin_plugin_dir() + "/aggregators_mean.so");
  r.load_library(test::builtin_plugin_dir() + "/aggregators_mean.so");
  EXPECT_EQ(r.loaded_files().size(), 1u);
}

TEST(Registry, DuplicateNameNamesBothLibraries) {
  core::Registry r;
  r.load_library(test::builtin_plugin_dir() + "/aggregators_mean.so");
  EXPECT_ERROR_WITH(r.load_library(kTestPlugins + "/test_duplicate_mean.so"), "duplicate aggregator 'mean'",
                    "aggregators_mean.so", "test_duplicate_mean.so");
}

TEST(Registry, UnknownNameSuggestsNearestAndListsAvailable) {
  EXPECT_ERROR_WITH(builtin_registry().find(core::Kind::Aggregator, "cmm"), "unknown aggregator 'cmm'",
                    "did you mean 'cm'?", "Available:", "mean");
  EXPECT_ERROR_WITH(builtin_registry().find(core::Kind::Optimizer, "byzsgdmn"), "did you mean 'byzsgdm");
}

TEST(Registry, UnknownNameWithNothingCloseHasNoSuggestion) {
  try {
    builtin_registry().find(core::Kind::Attack, "zzzzzzzzzz");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::Not(::testing::HasSubstr("did you mean")));
  }
}

TEST(Registry, ThrowingConstructorBecomesErrorNamingThePlugin) {
  core::Registry r;
  r.load_library(kTestPlugins + "/test_throwing.so");
  auto ctx = make_context(4, 1);
  Params none = r.validate(core::Kind::Aggregator, "throws_on_create", Value::map({}), "aggregator");
  EXPECT_ERROR_WITH(r.make_aggregator("throws_on_create", none, *ctx), "aggregator 'throws_on_create'",
                    "test_throwing.so", "cannot open /dev/imaginary");
  EXPECT_ERROR_WITH(r.make_aggregator("returns_null", none, *ctx), "'returns_null'", "returned no object");
}

TEST(Registry, AnExceptionFromAggregateNamesThePluginAndItsLibrary) {
  core::Registry r;
  r.load_library(kTestPlugins + "/test_throwing.so");
  auto ctx = make_context(4, 1);
  Params none = r.validate(core::Kind::Aggregator, "throws_on_aggregate", Value::map({}), "aggregator");
  core::EnginePlugins plugins;
  plugins.aggregator = r.make_aggregator("throws_on_aggregate", none, *ctx);
  plugins.labels.aggregator = core::plugin_label(r, core::Kind::Aggregator, "throws_on_aggregate");
  core::PipelineSpec spec;
  spec.aggregator.name = "throws_on_aggregate";
  EXPECT_ERROR_WITH(core::aggregate_rows(spec, plugins, at::zeros({4, 3})), "aggregator 'throws_on_aggregate'",
                    "test_throwing.so", "vector::_M_range_check");
}

TEST(Registry, ObjectsKeepTheirLibraryAlive) {
  std::shared_ptr<Aggregator> agg;
  {
    core::Registry r;
    r.load_library(test::builtin_plugin_dir() + "/aggregators_mean.so");
    auto ctx = make_context(2, 0);
    agg = r.make_aggregator("mean", r.validate(core::Kind::Aggregator, "mean", Value::map({}), "aggregator"), *ctx);
  }  // registry gone; the aggregator's code must still be mapped
  at::Tensor out = agg->aggregate(at::ones({2, 3}));
  EXPECT_FLOAT_EQ(out[0].item<float>(), 1.0f);
}

TEST(Registry, InlineRegistrationWorksLikeALibrary) {
  core::Registry r;
  r.register_inline("tests", [](void* registrar) {
    static_cast<Registrar*>(registrar)->add_attack({"inline_attack", "test", {}}, [](const Params&, const Context&) {
      return std::unique_ptr<Attack>();
    });
  });
  EXPECT_TRUE(r.contains(core::Kind::Attack, "inline_attack"));
  EXPECT_EQ(r.find(core::Kind::Attack, "inline_attack").origin, "<builtin:tests>");
}


}  // namespace
}  // namespace phalanx::test
