#include "phalanx/core/engine/flat_model.hpp"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <ATen/ATen.h>

#include "phalanx/error.hpp"

namespace phalanx::core {

FlatModel::FlatModel(std::shared_ptr<Network> network) : network_(std::move(network)) {
  if (!network_) throw Error("model plugin returned no network");
  parameters_ = network_->parameters();
  std::int64_t d = 0;
  for (const auto& p : parameters_) d += p.numel();
  if (d == 0) throw Error("model has no trainable parameters");
  flat_ = at::empty({d}, at::kFloat);
  at::NoGradGuard no_grad;
  std::int64_t offset = 0;
  for (auto& p : parameters_) {
    if (p.scalar_type() != at::kFloat) throw Error("model parameters must be float32");
    const std::int64_t n = p.numel();
    flat_.narrow(0, offset, n).copy_(p.reshape(-1));
    p.set_(flat_.storage(), offset, p.sizes(), at::detail::defaultStrides(p.sizes()));
    offset += n;
  }
}

FlatModel::FlatModel(std::shared_ptr<Network> network, FlatModel& shared) : network_(std::move(network)) {
  if (!network_) throw Error("model plugin returned no network");
  parameters_ = network_->parameters();
  if (parameters_.size() != shared.parameters_.size())
    throw Error("model plugin built two networks with different parameters; a model's build() must depend only on "
                "its parameters and the data's shape");
  flat_ = shared.flat_;
  at::NoGradGuard no_grad;
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    at::Tensor& p = parameters_[i];
    if (p.sizes() != shared.parameters_[i].sizes() || p.scalar_type() != at::kFloat)
      throw Error("model plugin built two networks with different parameters; a model's build() must depend only "
                  "on its parameters and the data's shape");
    p.set_(flat_.storage(), offset, p.sizes(), at::detail::defaultStrides(p.sizes()));
    offset += p.numel();
  }
}

std::vector<at::Tensor> FlatModel::buffers() const { return network_->buffers(); }

std::pair<double, at::Tensor> FlatModel::loss_and_gradient(const at::Tensor& x, const at::Tensor& y) {
  network_->train();
  at::Tensor logits = network_->forward(x);
  at::Tensor loss = at::cross_entropy_loss(logits, y);
  std::vector<at::Tensor> grads = torch::autograd::grad({loss}, parameters_, /*grad_outputs=*/{},
                                                        /*retain_graph=*/false, /*create_graph=*/false,
                                                        /*allow_unused=*/true);
  std::vector<at::Tensor> flat_parts;
  flat_parts.reserve(grads.size());
  for (std::size_t i = 0; i < grads.size(); ++i)
    flat_parts.push_back(grads[i].defined() ? grads[i].reshape(-1) : at::zeros({parameters_[i].numel()}));
  return {loss.item<double>(), at::cat(flat_parts)};
}

FlatModel::BatchScore FlatModel::score_batch(const at::Tensor& x, const at::Tensor& y) {
  at::NoGradGuard no_grad;
  network_->eval();
  at::Tensor logits = network_->forward(x);
  return {at::cross_entropy_loss(logits, y, {}, at::Reduction::Sum).item<double>(),
          logits.argmax(1).eq(y).sum().item<std::int64_t>()};
}

}  // namespace phalanx::core
