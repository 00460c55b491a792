// What every libFuzzer harness of tests/fuzz/ shares: a scratch folder for inputs that the code under test
// reads by path, and the one rule the harnesses check. A phalanx::Error with a message that names the
// input is the expected way to refuse bad bytes; anything else (another exception type, an empty or
// anonymous message) is a finding, reported by abort() so libFuzzer saves the input.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>
#include <vector>

#include "phalanx/error.hpp"

namespace phalanx::fuzz {

/// A folder private to this process, emptied by nobody: each input overwrites the files it uses.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/phalanx-fuzz-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    return std::filesystem::path(buf.data());
  }();
  return dir;
}

/// Writes `size` bytes to `path` (creating its folder) and returns the path as a string.
inline std::string write_file(const std::filesystem::path& path, const std::uint8_t* data, std::size_t size) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path.string();
}

/// The input split at NUL bytes, for harnesses that feed several files from one input.
inline std::vector<std::string> split_at_nul(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> parts(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) parts.emplace_back();
    else parts.back() += static_cast<char>(data[i]);
  }
  return parts;
}

[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "\nFUZZ FINDING: %s\n", what.c_str());
  std::abort();
}

/// Runs `body`; a phalanx::Error must carry a message containing `must_name` (the file or origin the user
/// has to fix; empty: any non-empty message). Every other exception is a finding.
template <class Body>
void expect_clean(const std::string& must_name, Body&& body) {
  try {
    body();
  } catch (const phalanx::Error& e) {
    const std::string message = e.what();
    if (message.empty()) finding("phalanx::Error with an empty message");
    if (!must_name.empty() && message.find(must_name) == std::string::npos)
      finding("phalanx::Error that does not name '" + must_name + "': " + message);
  } catch (const std::exception& e) {
    finding(std::string("exception that is not a phalanx::Error (") + typeid(e).name() + "): " + e.what());
  } catch (...) {
    finding("exception of an unknown type");
  }
}

}  // namespace phalanx::fuzz
