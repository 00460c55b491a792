// The layering docs/architecture.md draws, checked on the sources: an include of phalanx/core/... only
// points to the file's own folder or one listed before it, and sdk/ and plugins/ include nothing of the core.
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support.hpp"

namespace phalanx::test {
namespace {

namespace fs = std::filesystem;

// Lowest layer first; "engine.hpp" is the engine API between run/ and engine/.
const std::map<std::string, int> kLayer = {{"plugins", 0}, {"config", 1}, {"run", 2}, {"engine.hpp", 3},
                                           {"engine", 4}, {"distributed", 5}, {"experiment", 6}};

// The phalanx/core/<first component> of every #include in `file`.
std::vector<std::string> core_includes(const fs::path& file) {
  static const std::regex include(R"re(#include\s+["<]phalanx/core/([a-z_]+(\.hpp)?)[/"">])re");
  std::ifstream in(file);
  std::vector<std::string> found;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, include)) found.push_back(m[1]);
  }
  return found;
}

std::vector<fs::path> sources_under(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::exists(dir)) return files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().extension() == ".cpp" || e.path().extension() == ".hpp") files.push_back(e.path());
  return files;
}

TEST(Layering, CoreIncludesPointOnlyToTheSameOrALowerLayer) {
  const fs::path root = test::source_dir();
  int checked = 0;
  for (const auto& [folder, layer] : kLayer) {
    if (folder == "engine.hpp") continue;
    for (const fs::path& base : {root / "core/src" / folder, root / "core/include/phalanx/core" / folder})
      for (const fs::path& file : sources_under(base)) {
        for (const std::string& target : core_includes(file)) {
          ASSERT_TRUE(kLayer.count(target)) << file << " includes phalanx/core/" << target
                                            << ", which is in no layer of docs/architecture.md";
          EXPECT_LE(kLayer.at(target), layer) << file << " (" << folder << ") includes the higher layer "
                                              << target;
        }
        ++checked;
      }
  }
  EXPECT_GT(checked, 40);  // the folders exist and were read
}

TEST(Layering, SdkAndPluginsIncludeNothingOfTheCore) {
  const fs::path root = test::source_dir();
  int checked = 0;
  for (const char* top : {"sdk", "plugins"})
    for (const fs::path& file : sources_under(root / top)) {
      EXPECT_TRUE(core_includes(file).empty()) << file << " includes a core header";
      ++checked;
    }
  EXPECT_GT(checked, 50);
}

}  // namespace
}  // namespace phalanx::test
