// Shared helpers for the test suites.
#pragma once

#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "phalanx/core/registry.hpp"
#include "phalanx/core/run_output.hpp"
#include "phalanx/error.hpp"

namespace phalanx::test {

/// A registry holding every built-in plugin of this build (loaded through the real loader).
const core::Registry& builtin_registry();

/// A context for a run with n workers of which b are Byzantine.
std::unique_ptr<core::RunContext> make_context(std::int64_t n, std::int64_t b, std::uint64_t seed = 1);

/// Params for plugin (kind, name) from a YAML flow map such as "{tau: 0.5}".
Params params_for(core::Kind kind, const std::string& name, const std::string& yaml = "{}");

/// A fresh empty folder under the test temp dir.
std::string temp_dir(const std::string& name);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);

/// Runs a shell command, returns its exit code and (stdout+stderr) output.
int run_command(const std::string& command, std::string* output);

}  // namespace phalanx::test

/// EXPECT that `statement` throws phalanx::Error whose message contains every listed substring.
#define EXPECT_ERROR_WITH(statement, ...)                                               \
  do {                                                                                  \
    try {                                                                               \
      statement;                                                                        \
      ADD_FAILURE() << "expected phalanx::Error from: " #statement;                    \
    } catch (const ::phalanx::Error& e) {                                               \
      for (const char* part : {__VA_ARGS__}) EXPECT_THAT(e.what(), ::testing::HasSubstr(part)); \
    }                                                                                   \
  } while (0)
