// logreg: multinomial logistic regression, logits = W x + b on the flattened input.
#include <torch/nn/modules/linear.h>

#include "phalanx/model.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class LogisticRegression : public Network {
 public:
  LogisticRegression(std::int64_t inputs, std::int64_t classes)
      : linear_(register_module("linear", torch::nn::Linear(inputs, classes))) {}
  at::Tensor forward(const at::Tensor& x) override { return linear_->forward(x.flatten(1)); }

 private:
  torch::nn::Linear linear_;
};

class LogregModel : public Model {
 public:
  std::shared_ptr<Network> build(const std::vector<std::int64_t>& shape, std::int64_t classes) override {
    std::int64_t inputs = 1;
    for (auto s : shape) inputs *= s;
    return std::make_shared<LogisticRegression>(inputs, classes);
  }
};

}  // namespace

PHALANX_PLUGIN("logreg", "1.0") {
  registrar.add_model({"logreg", "multinomial logistic regression on the flattened input", {}},
                      [](const Params&, const Context&) { return std::make_unique<LogregModel>(); });
}
