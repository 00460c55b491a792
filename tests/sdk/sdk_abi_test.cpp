// The contract headers (sdk/include/phalanx, except the helpers/ folder) are the plugin ABI: changing them
// without bumping PHALANX_SDK_ABI_VERSION would let the host load plugins built against other headers.
// This test records one hash of those headers and the version number per ABI version, so a contract change
// fails it until the version is bumped and the new line recorded (docs/plugins.md, "When to bump the ABI
// version"). Helper headers (distances, row_math, ...) are ordinary library functions, not part of the gate.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "phalanx/abi.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

namespace fs = std::filesystem;

const fs::path kSdkHeaders = fs::path(test::source_dir()) / "sdk" / "include" / "phalanx";

bool is_helper(const fs::path& file) {
  const auto relative = fs::relative(file, kSdkHeaders);
  return !relative.empty() && *relative.begin() == "helpers";
}

std::vector<fs::path> contract_headers() {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(kSdkHeaders))
    if (e.is_regular_file() && !is_helper(e.path())) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string contract_hash() {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over the version, then names and contents
  auto add = [&h](const std::string& text) {
    for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  };
  add(std::to_string(PHALANX_SDK_ABI_VERSION));
  for (const auto& f : contract_headers()) add(fs::relative(f, kSdkHeaders).string() + read_file(f.string()));
  std::ostringstream out;
  out << std::hex << h;
  return out.str();
}

TEST(SdkAbi, ContractHeadersMatchTheRecordedHashOfThisAbiVersion) {
  std::ifstream in(test::source_dir() + "/tests/sdk/sdk_abi_hashes.txt");
  ASSERT_TRUE(in) << "tests/sdk/sdk_abi_hashes.txt is missing";
  std::string recorded;
  int version = 0;
  std::string hash;
  while (in >> version >> hash)  // the last line of a version is its current hash
    if (version == PHALANX_SDK_ABI_VERSION) recorded = hash;
  EXPECT_EQ(recorded, contract_hash())
      << "The SDK contract headers changed. Bump PHALANX_SDK_ABI_VERSION in sdk/include/phalanx/abi.hpp (see "
         "docs/plugins.md, 'When to bump the ABI version'); then add the line '<new version> <hash this test "
         "prints with the new version>' to tests/sdk/sdk_abi_hashes.txt. Never re-record the hash of a released "
         "version; a change every compiled plugin survives gets a new line of the same version (docs/plugins.md).";
}

TEST(SdkAbi, HelpersAreOutsideTheContractAndTheContractIsHashed) {
  const auto files = contract_headers();
  auto has = [&files](const std::string& name) {
    return std::any_of(files.begin(), files.end(), [&](const fs::path& f) { return f.filename() == name; });
  };
  EXPECT_TRUE(has("aggregator.hpp"));
  EXPECT_TRUE(has("abi.hpp"));
  EXPECT_TRUE(fs::exists(kSdkHeaders / "helpers" / "distances.hpp"));
  for (const auto& f : files) EXPECT_FALSE(is_helper(f)) << f;
}

TEST(SdkAbi, TheEntrySymbolCarriesTheVersion) {
  EXPECT_EQ(std::string(PHALANX_HANDSHAKE_SYMBOL),
            "phalanx_plugin_handshake_v" + std::to_string(PHALANX_SDK_ABI_VERSION));
}

}  // namespace
}  // namespace phalanx::test
