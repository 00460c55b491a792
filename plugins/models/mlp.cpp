// mlp: fully connected network on the flattened input, ReLU between layers.
//
// | parameter | default | meaning                    |
// |-----------|---------|----------------------------|
// | hidden    | [200]   | sizes of the hidden layers |
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include "phalanx/model.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class Mlp : public Network {
 public:
  Mlp(std::int64_t inputs, const std::vector<std::int64_t>& hidden, std::int64_t classes) {
    std::int64_t width = inputs;
    for (std::size_t i = 0; i < hidden.size(); ++i) {
      layers_.push_back(register_module("fc" + std::to_string(i), torch::nn::Linear(width, hidden[i])));
      width = hidden[i];
    }
    layers_.push_back(register_module("out", torch::nn::Linear(width, classes)));
  }
  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor h = x.flatten(1);
    for (std::size_t i = 0; i + 1 < layers_.size(); ++i) h = layers_[i]->forward(h).relu();
    return layers_.back()->forward(h);
  }

 private:
  std::vector<torch::nn::Linear> layers_;
};

class MlpModel : public Model {
 public:
  explicit MlpModel(std::vector<std::int64_t> hidden) : hidden_(std::move(hidden)) {}
  std::shared_ptr<Network> build(const std::vector<std::int64_t>& shape, std::int64_t classes) override {
    std::int64_t inputs = 1;
    for (auto s : shape) inputs *= s;
    return std::make_shared<Mlp>(inputs, hidden_, classes);
  }

 private:
  std::vector<std::int64_t> hidden_;
};

}  // namespace

PHALANX_PLUGIN("mlp", "1.0") {
  registrar.add_model({"mlp",
                       "fully connected ReLU network",
                       {{"hidden", ParamType::IntList, Value::list({200}), "hidden layer sizes", 1, 1e6}}},
                      [](const Params& p, const Context&) { return std::make_unique<MlpModel>(p.get_int_list("hidden")); });
}
