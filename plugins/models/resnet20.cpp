// resnet20: the CIFAR-style ResNet-20 of He, Zhang, Ren, Sun ("Deep Residual Learning for Image
// Recognition", CVPR 2016, section 4.2), the model of the ByzSGDnm paper's experiments.
//
// 3x3 conv (16) -> 3 stages of 3 basic blocks with 16, 32, 64 channels (stride 2 at the start of stages 2
// and 3) -> global average pooling -> linear. Shortcuts are option A of the paper: identity, subsampled
// and zero-padded in channels when the shape changes, so they add no parameters (0.27 M in total).
// Each block: conv3x3 - norm - ReLU - conv3x3 - norm, + shortcut, ReLU.
//
// Normalisation: BatchNorm (the paper's) or GroupNorm (the ByzSGDnm paper's non-i.i.d. appendix).
// BatchNorm's running statistics are buffers, not parameters: the engines exchange parameters only, so in
// simulation the statistics are those of the shared network, updated by every worker's forward pass.
//
// | parameter | default   | meaning                                  |
// |-----------|-----------|------------------------------------------|
// | norm      | batchnorm | batchnorm or groupnorm                   |
// | groups    | 8         | GroupNorm groups (must divide 16)        |
// | width     | 16        | channels of the first stage (x2, x4 after) |
#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "phalanx/model.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

struct NormChoice {
  bool group = false;
  std::int64_t groups = 8;
};

torch::nn::AnyModule make_norm(const NormChoice& n, std::int64_t channels) {
  if (n.group) return torch::nn::AnyModule(torch::nn::GroupNorm(torch::nn::GroupNormOptions(n.groups, channels)));
  return torch::nn::AnyModule(torch::nn::BatchNorm2d(channels));
}

torch::nn::Conv2d conv3x3(std::int64_t in, std::int64_t out, std::int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

class BasicBlock : public torch::nn::Module {
 public:
  BasicBlock(std::int64_t in, std::int64_t out, std::int64_t stride, const NormChoice& norm)
      : conv1_(register_module("conv1", conv3x3(in, out, stride))),
        conv2_(register_module("conv2", conv3x3(out, out, 1))),
        stride_(stride),
        pad_(out - in) {
    norm1_ = make_norm(norm, out);
    norm2_ = make_norm(norm, out);
    register_module("norm1", norm1_.ptr());
    register_module("norm2", norm2_.ptr());
  }

  at::Tensor forward(const at::Tensor& x) {
    at::Tensor h = norm1_.forward(conv1_->forward(x)).relu();
    h = norm2_.forward(conv2_->forward(h));
    at::Tensor shortcut = x;
    if (stride_ != 1) shortcut = shortcut.slice(2, 0, c10::nullopt, stride_).slice(3, 0, c10::nullopt, stride_);
    if (pad_ > 0) shortcut = at::constant_pad_nd(shortcut, {0, 0, 0, 0, pad_ / 2, pad_ - pad_ / 2});
    return h.add(shortcut).relu();
  }

 private:
  torch::nn::Conv2d conv1_, conv2_;
  torch::nn::AnyModule norm1_, norm2_;
  std::int64_t stride_, pad_;
};

class ResNet20 : public Network {
 public:
  ResNet20(std::int64_t channels, std::int64_t width, std::int64_t classes, const NormChoice& norm)
      : stem_(register_module("stem", conv3x3(channels, width, 1))),
        fc_(register_module("fc", torch::nn::Linear(4 * width, classes))) {
    stem_norm_ = make_norm(norm, width);
    register_module("stem_norm", stem_norm_.ptr());
    std::int64_t in = width;
    for (int stage = 0; stage < 3; ++stage) {
      const std::int64_t out = width << stage;
      for (int b = 0; b < 3; ++b) {
        auto block = std::make_shared<BasicBlock>(in, out, stage > 0 && b == 0 ? 2 : 1, norm);
        blocks_.push_back(register_module("block" + std::to_string(stage) + "_" + std::to_string(b), block));
        in = out;
      }
    }
    // He initialisation for the convolutions, as in the paper.
    for (auto& p : named_parameters())
      if (p.key().find("conv") != std::string::npos || p.key().rfind("stem.", 0) == 0)
        torch::nn::init::kaiming_normal_(p.value(), 0.0, torch::kFanOut, torch::kReLU);
  }

  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor h = stem_norm_.forward(stem_->forward(x)).relu();
    for (auto& block : blocks_) h = block->forward(h);
    return fc_->forward(h.mean({2, 3}));
  }

 private:
  torch::nn::Conv2d stem_;
  torch::nn::AnyModule stem_norm_;
  std::vector<std::shared_ptr<BasicBlock>> blocks_;
  torch::nn::Linear fc_;
};

class ResNet20Model : public Model {
 public:
  explicit ResNet20Model(const Params& p) : width_(p.get_int("width")) {
    norm_.group = p.get_string("norm") == "groupnorm";
    norm_.groups = p.get_int("groups");
    if (norm_.group && width_ % norm_.groups != 0)
      p.fail("groups", "must divide the first stage's width " + std::to_string(width_));
  }
  std::shared_ptr<Network> build(const std::vector<std::int64_t>& shape, std::int64_t classes) override {
    if (shape.size() != 3 || shape[1] < 8 || shape[2] < 8)
      throw Error("model 'resnet20' needs image data [channels, height >= 8, width >= 8]");
    return std::make_shared<ResNet20>(shape[0], width_, classes, norm_);
  }

 private:
  std::int64_t width_;
  NormChoice norm_;
};

}  // namespace

PHALANX_PLUGIN("resnet20", "1.0") {
  registrar.add_model(
      {"resnet20",
       "CIFAR-style ResNet-20 (0.27 M parameters), BatchNorm or GroupNorm",
       {{"norm", ParamType::String, "batchnorm", "normalisation layer", {}, {}, {"batchnorm", "groupnorm"}},
        {"groups", ParamType::Int, 8, "GroupNorm groups (must divide width)", 1},
        {"width", ParamType::Int, 16, "channels of the first stage", 1, 1024}}},
      [](const Params& p, const Context&) { return std::make_unique<ResNet20Model>(p); });
}
