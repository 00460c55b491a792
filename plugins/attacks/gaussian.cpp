// gaussian: every Byzantine worker sends an independent draw from N(0, sigma^2 I) (the Gaussian
// Byzantine vectors of Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries:
// Byzantine Tolerant Gradient Descent", NeurIPS 2017; sigma = 200 as in Allouah et al., AISTATS 2023).
//
//   x_byz ~ N(0, sigma^2 I_d), one draw per Byzantine worker and round
//
// The draws come from a generator seeded with this plugin's own seed (Context::seed()); its position is
// saved by save_state() so a resumed run continues the same stream.
//
// | parameter | default | meaning                 |
// |-----------|---------|-------------------------|
// | sigma     | 200     | standard deviation (>= 0) |
#include <ATen/ATen.h>

#include "phalanx/generator_state.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class GaussianNoise : public Attack {
 public:
  GaussianNoise(double sigma, std::uint64_t seed) : sigma_(sigma), seed_(seed), generator_(make_generator(seed)) {}

  at::Tensor craft(const AttackRound& round) override {
    return at::randn(round.byzantine_true.sizes(), generator_, at::TensorOptions().dtype(at::kFloat)).mul_(sigma_);
  }

  State save_state() const override { return save_generator(generator_); }
  void load_state(const State& state) override { load_generator(state, generator_, seed_, "attack 'gaussian'"); }

 private:
  double sigma_;
  std::uint64_t seed_;
  at::Generator generator_;
};

}  // namespace

PHALANX_PLUGIN("gaussian", "1.0") {
  registrar.add_attack({"gaussian",
                        "send N(0, sigma^2 I) noise",
                        {{"sigma", ParamType::Double, 200.0, "standard deviation of the noise", 0.0}},
                        {},
                        {Need::ByzantineShapeOnly}},
                       [](const Params& p, const Context& c) {
                         return std::make_unique<GaussianNoise>(p.get_double("sigma"), c.seed());
                       });
}
