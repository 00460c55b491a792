// cnn: a small LeNet-style convolutional network for 1- or 3-channel images.
//
// conv(c -> c1, 5x5, pad 2) - ReLU - maxpool 2 - conv(c1 -> c2, 5x5, pad 2) - ReLU - maxpool 2 - fc(hidden) - ReLU - fc(classes).
// No BatchNorm, so all state is in the trainable parameters (the engines exchange flat parameter vectors).
//
// | parameter | default | meaning                        |
// |-----------|---------|--------------------------------|
// | channels  | [16, 32]| output channels of the convs   |
// | hidden    | 128     | width of the fully connected layer |
#include <ATen/ATen.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "phalanx/model.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class SmallCnn : public Network {
 public:
  SmallCnn(const std::vector<std::int64_t>& shape, std::int64_t c1, std::int64_t c2, std::int64_t hidden,
           std::int64_t classes)
      : conv1_(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(shape[0], c1, 5).padding(2)))),
        conv2_(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(c1, c2, 5).padding(2)))),
        fc_(register_module("fc", torch::nn::Linear(c2 * (shape[1] / 4) * (shape[2] / 4), hidden))),
        out_(register_module("out", torch::nn::Linear(hidden, classes))) {}

  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor h = at::max_pool2d(conv1_->forward(x).relu(), {2, 2});
    h = at::max_pool2d(conv2_->forward(h).relu(), {2, 2});
    return out_->forward(fc_->forward(h.flatten(1)).relu());
  }

 private:
  torch::nn::Conv2d conv1_, conv2_;
  torch::nn::Linear fc_, out_;
};

class CnnModel : public Model {
 public:
  explicit CnnModel(const Params& p) : channels_(p.get_int_list("channels")), hidden_(p.get_int("hidden")) {
    if (channels_.size() != 2) p.fail("channels", "needs exactly two values (one per convolution), e.g. [16, 32]");
  }
  std::shared_ptr<Network> build(const std::vector<std::int64_t>& shape, std::int64_t classes) override {
    if (shape.size() != 3 || shape[1] < 4 || shape[2] < 4)
      throw Error("model 'cnn' needs image data [channels, height >= 4, width >= 4]; this data has " +
                  std::to_string(shape.size()) + " dimensions per sample (use mlp or logreg)");
    return std::make_shared<SmallCnn>(shape, channels_[0], channels_[1], hidden_, classes);
  }

 private:
  std::vector<std::int64_t> channels_;
  std::int64_t hidden_;
};

}  // namespace

PHALANX_PLUGIN("cnn", "1.0") {
  registrar.add_model({"cnn",
                       "LeNet-style CNN (two 5x5 conv + pool, one hidden fc layer)",
                       {{"channels", ParamType::IntList, Value::list({16, 32}), "output channels of the two convs", 1, 4096},
                        {"hidden", ParamType::Int, 128, "width of the fully connected layer", 1}}},
                      [](const Params& p, const Context&) { return std::make_unique<CnnModel>(p); });
}
