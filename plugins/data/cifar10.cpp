// cifar10: CIFAR-10 (Krizhevsky 2009), 50k/10k 32x32 colour images, 10 classes, from the "binary version"
// files data_batch_1.bin .. data_batch_5.bin and test_batch.bin (each record: 1 label byte, then 3072
// pixel bytes, channel-major). There is no Debian package and phalanx never downloads: give the folder.
// Pixels are scaled to [0, 1] and standardised per channel with the training set's statistics.
//
// | parameter   | default  | meaning                                        |
// |-------------|----------|------------------------------------------------|
// | path        | (needed) | folder holding the .bin files                  |
//
// To use fewer samples, set the core's data.limit ({train: N, test: M}), which cuts every data source
// after it loads (docs/configs.md).
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"
#include "sample_blocks.hpp"

namespace {

using namespace phalanx;

constexpr std::int64_t kRecord = 1 + 3 * 32 * 32;

// Reads one .bin file into (images [N, 3, 32, 32] uint8, labels [N] int64).
std::pair<at::Tensor, at::Tensor> read_batch(const std::string& file) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in)
    throw Error("CIFAR-10 file '" + file + "' not found. Download the binary version of CIFAR-10 "
                "(cifar-10-binary.tar.gz) on a machine with network access, unpack it, and set data.path to the "
                "folder holding data_batch_1.bin ... test_batch.bin.");
  const std::int64_t size = in.tellg();
  if (size == 0 || size % kRecord != 0)
    throw Error(file + ": " + std::to_string(size) + " bytes is not a whole number of 3073-byte CIFAR-10 records; "
                "the file is truncated or not CIFAR-10's binary version");
  in.seekg(0);
  const std::int64_t n = size / kRecord;
  at::Tensor raw = at::empty({n, kRecord}, at::kByte);
  in.read(reinterpret_cast<char*>(raw.data_ptr<std::uint8_t>()), size);
  if (!in) throw Error(file + ": read failed");
  at::Tensor labels = raw.select(1, 0).to(at::kLong);
  if (labels.max().item<std::int64_t>() > 9)
    throw Error(file + ": label " + std::to_string(labels.max().item<std::int64_t>()) + " is outside 0..9; not CIFAR-10");
  return {raw.narrow(1, 1, kRecord - 1).reshape({n, 3, 32, 32}), labels};
}

class Cifar10 : public DataSource {
 public:
  explicit Cifar10(const Params& p)
      : dir_(p.get_string("path")) {}

  Dataset load() override {
    std::vector<at::Tensor> xs, ys;
    for (int i = 1; i <= 5; ++i) {
      auto [x, y] = read_batch(dir_ + "/data_batch_" + std::to_string(i) + ".bin");
      xs.push_back(x);
      ys.push_back(y);
    }
    auto [test_x, test_y] = read_batch(dir_ + "/test_batch.bin");
    Dataset d;
    // Converted and standardised in blocks of samples on the threads lent to the load (sample_blocks.hpp);
    // the statistics stay one reduction each over the whole training set.
    d.train_x = data::unit_floats(xs);
    d.train_y = at::cat(ys);
    d.test_x = data::unit_floats({test_x});
    d.test_y = test_y;
    const at::Tensor mean = d.train_x.mean({0, 2, 3}, /*keepdim=*/true);
    const at::Tensor std = d.train_x.std({0, 2, 3}, /*unbiased=*/true, /*keepdim=*/true).clamp_min_(1e-6);
    data::standardise(d.train_x, mean, std);
    data::standardise(d.test_x, mean, std);
    d.sample_shape = {3, 32, 32};
    d.classes = 10;
    d.description = "CIFAR-10 from " + dir_;
    return d;
  }

 private:
  std::string dir_;
};

}  // namespace

PHALANX_PLUGIN("cifar10", "1.0") {
  registrar.add_data(
      {"cifar10",
       "CIFAR-10 binary version from a folder you provide",
       {{"path", ParamType::String, Value(), "folder with data_batch_1..5.bin and test_batch.bin (required)"}}},
      [](const Params& p, const Context&) { return std::make_unique<Cifar10>(p); });
}
