// A small run and config resolution for the end-to-end tests (defined in support.cpp). Its own header, so
// the many tests that include support.hpp do not depend on the pipeline's spec.
#pragma once

#include <string>
#include <vector>

#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/plugins/registry.hpp"

namespace phalanx::test {

const core::Registry& builtin_registry();

/// A small synchronous run for end-to-end checks of what the engines hand the plugins: 600 synthetic samples,
/// an MLP, 6 workers of which 2 Byzantine, plain sgd, 3 steps and one evaluation. Tests vary it with overrides.
extern const char* const kSmallRun;

/// `yaml` (named `file` in error messages) with each `--set`-style override ("key=value") applied in order,
/// resolved against `registry`.
core::PipelineSpec resolve_config(const std::string& yaml, const std::vector<std::string>& overrides = {},
                                  const core::Registry& registry = builtin_registry(),
                                  const std::string& file = "test.yaml");

}  // namespace phalanx::test
