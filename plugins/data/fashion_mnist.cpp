// fashion_mnist: Zalando's Fashion-MNIST (Xiao, Rasul, Vollgraf 2017), 60k/10k 28x28 grey images, 10 classes.
//
// Reads the four IDX files (gzip or plain) from `path`; Debian's dataset-fashion-mnist package installs
// them in /usr/share/datasets/fashion-mnist. Pixels are scaled to [0, 1] and then standardised with the
// training set's mean and standard deviation.
//
// | parameter   | default                              | meaning                                     |
// |-------------|--------------------------------------|---------------------------------------------|
// | path        | /usr/share/datasets/fashion-mnist    | folder with the IDX files                   |
//
// To use fewer samples, set the core's data.limit ({train: N, test: M}), which cuts every data source
// after it loads (docs/configs.md).
#include <filesystem>

#include <ATen/ATen.h>

#include "idx_reader.hpp"
#include "phalanx/plugin.hpp"
#include "sample_blocks.hpp"

namespace {

using namespace phalanx;

std::string find_file(const std::string& dir, const std::string& stem) {
  for (const char* suffix : {".gz", ""}) {
    std::string candidate = dir + "/" + stem + suffix;
    if (std::filesystem::exists(candidate)) return candidate;
  }
  throw Error("Fashion-MNIST file '" + stem + "[.gz]' not found in '" + dir +
              "'. Install it with `sudo apt-get install dataset-fashion-mnist` (files land in "
              "/usr/share/datasets/fashion-mnist) or set data.path to a folder holding the four IDX files.");
}

class FashionMnist : public DataSource {
 public:
  explicit FashionMnist(const Params& p)
      : dir_(p.get_string("path")) {}

  Dataset load() override {
    Dataset d;
    d.train_x = read_images("train-images-idx3-ubyte");
    d.train_y = read_labels("train-labels-idx1-ubyte", d.train_x.size(0));
    d.test_x = read_images("t10k-images-idx3-ubyte");
    d.test_y = read_labels("t10k-labels-idx1-ubyte", d.test_x.size(0));
    const double mean = d.train_x.mean().item<double>(), std = d.train_x.std().item<double>();
    data::standardise(d.train_x, mean, std);
    data::standardise(d.test_x, mean, std);
    d.sample_shape = {1, d.train_x.size(2), d.train_x.size(3)};
    d.classes = 10;
    d.description = "Fashion-MNIST from " + dir_;
    return d;
  }

 private:
  at::Tensor read_images(const std::string& stem) {
    std::string file = find_file(dir_, stem);
    return idx::images_to_tensor(idx::read_idx(file), file);
  }
  at::Tensor read_labels(const std::string& stem, std::int64_t expected) {
    std::string file = find_file(dir_, stem);
    at::Tensor labels = idx::labels_to_tensor(idx::read_idx(file), file, 10);
    if (labels.size(0) != expected)
      throw Error(file + ": holds " + std::to_string(labels.size(0)) + " labels for " + std::to_string(expected) +
                  " images; the files do not belong together");
    return labels;
  }
  std::string dir_;
};

}  // namespace

PHALANX_PLUGIN("fashion_mnist", "1.0") {
  registrar.add_data(
      {"fashion_mnist",
       "Fashion-MNIST from IDX files (Debian: dataset-fashion-mnist)",
       {{"path", ParamType::String, "/usr/share/datasets/fashion-mnist", "folder with the four IDX files (.gz or plain)"}}},
      [](const Params& p, const Context&) { return std::make_unique<FashionMnist>(p); });
}
