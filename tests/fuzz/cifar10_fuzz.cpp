// Fuzzes the CIFAR-10 data plugin (plugins/data/cifar10.cpp, linked into this harness) through its real
// entry point: the plugin registers itself through its handshake, and load() reads a folder whose six
// batch files (data_batch_1..5.bin, test_batch.bin) all hold the input bytes.
#include <cstdint>
#include <memory>

#include <ATen/ATen.h>

#include "fuzz_support.hpp"
#include "phalanx/abi.hpp"
#include "phalanx/registrar.hpp"

extern "C" const phalanx_handshake* PHALANX_HANDSHAKE_FUNCTION();

namespace {

using namespace phalanx;

// Keeps the data factory the plugin registers; the fuzzer needs nothing else.
class DataOnly : public Registrar {
 public:
  Factory<DataSource> data;
  void add_aggregator(PluginInfo, Factory<Aggregator>) override {}
  void add_preaggregator(PluginInfo, Factory<PreAggregator>) override {}
  void add_attack(PluginInfo, Factory<Attack>) override {}
  void add_optimizer(PluginInfo, Factory<Optimizer>) override {}
  void add_data(PluginInfo info, Factory<DataSource> make) override {
    specs = info.params;
    data = std::move(make);
  }
  void add_model(PluginInfo, Factory<Model>) override {}
  std::vector<ParamSpec> specs;
};

class QuietContext : public Context {
 public:
  const RunInfo& run() const override { return info_; }
  std::uint64_t seed() const override { return 1; }
  void log(LogLevel, const std::string&) const override {}

 private:
  RunInfo info_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static DataOnly plugin = [] {
    DataOnly r;
    PHALANX_HANDSHAKE_FUNCTION()->register_plugins(static_cast<Registrar*>(&r));
    return r;
  }();
  static const QuietContext context;
  const auto dir = fuzz::scratch_dir() / "cifar";
  for (const char* f : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                        "data_batch_5.bin", "test_batch.bin"})
    fuzz::write_file(dir / f, data, size);
  fuzz::expect_clean(dir.string(), [&] {
    const Params params = Params::validate(plugin.specs, Value::map({{"path", Value(dir.string())}}), "data");
    const Dataset d = plugin.data(params, context)->load();
    const std::int64_t records = static_cast<std::int64_t>(size) / 3073;
    if (d.train_x.size(0) != 5 * records || d.test_x.size(0) != records || d.train_y.size(0) != 5 * records)
      fuzz::finding("the dataset's size does not match the files");
    if (d.train_y.numel() > 0 && (d.train_y.min().item<std::int64_t>() < 0 || d.train_y.max().item<std::int64_t>() > 9))
      fuzz::finding("a label outside 0..9 was accepted");
  });
  return 0;
}
