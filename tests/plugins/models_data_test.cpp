// Model shapes and sizes; the CIFAR-10 reader on small generated files.
#include <filesystem>

#include <ATen/ATen.h>

#include "phalanx/core/engine/flat_model.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

std::shared_ptr<Network> build(const std::string& model, const std::string& params, std::vector<std::int64_t> shape,
                               std::int64_t classes = 10) {
  static auto ctx = make_context(1, 0);
  return builtin_registry()
      .make_model(model, params_for(core::Kind::Model, model, params), *ctx)
      ->build(shape, classes);
}

std::int64_t parameter_count(const std::shared_ptr<Network>& net) {
  std::int64_t n = 0;
  for (const auto& p : net->parameters()) n += p.numel();
  return n;
}

TEST(Models, OutputShapes) {
  for (const auto& [model, shape] : std::vector<std::pair<std::string, std::vector<std::int64_t>>>{
           {"logreg", {1, 28, 28}}, {"mlp", {1, 28, 28}}, {"cnn", {1, 28, 28}}, {"resnet20", {3, 32, 32}}}) {
    auto net = build(model, "{}", shape);
    std::vector<std::int64_t> batch{2};
    batch.insert(batch.end(), shape.begin(), shape.end());
    EXPECT_EQ(net->forward(at::randn(batch)).sizes(), (at::IntArrayRef{2, 10})) << model;
  }
}

TEST(Models, MlpSizeFollowsHiddenLayers) {
  // 784*200 + 200 + 200*10 + 10 = 159010
  EXPECT_EQ(parameter_count(build("mlp", "{hidden: [200]}", {1, 28, 28})), 159010);
}

TEST(Models, ResNet20HasThePapers027MParameters) {
  // He et al. 2016, option A shortcuts: 269,722 parameters for 10 classes (BatchNorm and GroupNorm alike).
  EXPECT_EQ(parameter_count(build("resnet20", "{}", {3, 32, 32})), 269722);
  EXPECT_EQ(parameter_count(build("resnet20", "{norm: groupnorm}", {3, 32, 32})), 269722);
}

TEST(Models, ResNet20TrainsThroughTheFlatParameterVector) {
  core::FlatModel model(build("resnet20", "{norm: groupnorm}", {3, 32, 32}));
  at::Tensor x = at::randn({4, 3, 32, 32}), y = at::tensor({0, 1, 2, 3}, at::kLong);
  auto [loss, grad] = model.loss_and_gradient(x, y);
  EXPECT_EQ(grad.numel(), 269722);
  for (int i = 0; i < 20; ++i) model.params().sub_(model.loss_and_gradient(x, y).second, 0.05);
  EXPECT_LT(model.loss_and_gradient(x, y).first, loss);
}

TEST(Models, BadShapesAreClearErrors) {
  EXPECT_ERROR_WITH(build("cnn", "{}", {20}), "model 'cnn' needs image data");
  EXPECT_ERROR_WITH(build("resnet20", "{}", {20}), "model 'resnet20' needs image data");
  EXPECT_ERROR_WITH(params_for(core::Kind::Model, "resnet20", "{norm: layernorm}"), "not one of");
}

void write_cifar_batch(const std::string& file, int records, int label_offset) {
  std::string bytes;
  for (int r = 0; r < records; ++r) {
    bytes += static_cast<char>((r + label_offset) % 10);
    for (int i = 0; i < 3072; ++i) bytes += static_cast<char>((r * 7 + i) % 256);
  }
  write_file(file, bytes);
}

std::shared_ptr<DataSource> cifar(const std::string& yaml) {
  static auto ctx = make_context(1, 0);
  return builtin_registry().make_data("cifar10", params_for(core::Kind::Data, "cifar10", yaml), *ctx);
}

TEST(Cifar10, ReadsTheBinaryVersion) {
  const std::string dir = temp_dir("cifar_ok");
  for (int i = 1; i <= 5; ++i) write_cifar_batch(dir + "/data_batch_" + std::to_string(i) + ".bin", 4, i);
  write_cifar_batch(dir + "/test_batch.bin", 3, 0);
  Dataset d = cifar("{path: '" + dir + "'}")->load();
  EXPECT_EQ(d.train_x.sizes(), (at::IntArrayRef{20, 3, 32, 32}));
  EXPECT_EQ(d.test_y.sizes(), (at::IntArrayRef{3}));
  EXPECT_EQ(d.train_y[0].item<std::int64_t>(), 1);  // first record of data_batch_1 has label 1
  EXPECT_EQ(d.sample_shape, (std::vector<std::int64_t>{3, 32, 32}));
  EXPECT_NEAR(d.train_x.select(1, 2).mean().item<double>(), 0.0, 1e-4);  // standardised per channel
}

// The conversion and the per-channel standardisation run in blocks of samples (on the threads lent to the
// load, which SampleBlocks.* exercises with real threads): the whole-tensor expressions' bits.
TEST(Cifar10, ImagesAreTheWholeTensorExpressionsBits) {
  const std::string dir = temp_dir("cifar_bits");
  for (int i = 1; i <= 5; ++i) write_cifar_batch(dir + "/data_batch_" + std::to_string(i) + ".bin", 7, i);
  write_cifar_batch(dir + "/test_batch.bin", 5, 3);
  std::vector<at::Tensor> batches;
  for (int i = 1; i <= 6; ++i) {
    const std::string bytes = read_file(dir + (i <= 5 ? "/data_batch_" + std::to_string(i) : "/test_batch") + ".bin");
    const at::Tensor records = at::from_blob(const_cast<char*>(bytes.data()),
                                             {static_cast<std::int64_t>(bytes.size()) / 3073, 3073}, at::kByte);
    batches.push_back(records.narrow(1, 1, 3072).reshape({-1, 3, 32, 32}).clone());
  }
  const at::Tensor test_images = batches.back();
  batches.pop_back();
  at::Tensor train = at::cat(batches).to(at::kFloat).div_(255.0f), test = test_images.to(at::kFloat).div_(255.0f);
  const at::Tensor mean = train.mean({0, 2, 3}, true), std = train.std({0, 2, 3}, true, true).clamp_min_(1e-6);
  train.sub_(mean).div_(std);
  test.sub_(mean).div_(std);
  const Dataset d = cifar("{path: '" + dir + "'}")->load();
  EXPECT_TRUE(at::equal(d.train_x.view(at::kInt), train.view(at::kInt)));
  EXPECT_TRUE(at::equal(d.test_x.view(at::kInt), test.view(at::kInt)));
}

TEST(Cifar10, MissingTruncatedAndForeignFiles) {
  const std::string dir = temp_dir("cifar_bad");
  EXPECT_ERROR_WITH(cifar("{path: '" + dir + "'}")->load(), "data_batch_1.bin", "not found", "data.path");
  write_cifar_batch(dir + "/data_batch_1.bin", 2, 0);
  write_file(dir + "/data_batch_1.bin", read_file(dir + "/data_batch_1.bin").substr(0, 5000));
  EXPECT_ERROR_WITH(cifar("{path: '" + dir + "'}")->load(), "5000 bytes is not a whole number");
  write_file(dir + "/data_batch_1.bin", std::string(3073, '\x20'));
  EXPECT_ERROR_WITH(cifar("{path: '" + dir + "'}")->load(), "label 32 is outside 0..9");
}

TEST(Cifar10, PathIsRequired) {
  EXPECT_ERROR_WITH(cifar("{}")->load(), "data.path has no value");
}

}  // namespace
}  // namespace phalanx::test
