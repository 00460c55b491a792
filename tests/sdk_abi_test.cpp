// The SDK headers are the plugin ABI: changing them without bumping PHALANX_SDK_ABI_VERSION would let the
// host load plugins built against other headers. This test records a hash of sdk/include per ABI version.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "phalanx/abi.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

std::string headers_hash() {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(test::source_dir() + "/sdk/include"))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over names and contents
  for (const auto& f : files) {
    for (unsigned char c : f.filename().string() + read_file(f.string())) h = (h ^ c) * 1099511628211ULL;
  }
  std::ostringstream out;
  out << std::hex << h;
  return out.str();
}

TEST(SdkAbi, HeadersMatchTheRecordedHashOfThisAbiVersion) {
  std::ifstream in(test::source_dir() + "/tests/sdk_abi_hashes.txt");
  ASSERT_TRUE(in) << "tests/sdk_abi_hashes.txt is missing";
  std::string recorded;
  int version = 0;
  std::string hash;
  while (in >> version >> hash)
    if (version == PHALANX_SDK_ABI_VERSION) recorded = hash;
  EXPECT_EQ(recorded, headers_hash())
      << "The SDK headers changed. If plugins built against the old headers would break, bump "
         "PHALANX_SDK_ABI_VERSION in sdk/include/phalanx/abi.hpp; then add the line '"
      << PHALANX_SDK_ABI_VERSION << " " << headers_hash() << "' (with the new version) to tests/sdk_abi_hashes.txt.";
}

}  // namespace
}  // namespace phalanx::test
