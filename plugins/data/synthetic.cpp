// synthetic: seeded Gaussian classification data, for tests and quick experiments without files.
//
// Each class c has a centre mu_c ~ N(0, separation^2 I); a sample of class c is mu_c + N(0, I). Train and
// test sets come from the same distribution; everything is drawn from the plugin's seed.
//
// | parameter  | default | meaning                         |
// |------------|---------|---------------------------------|
// | train_size | 4000    | training samples                |
// | test_size  | 1000    | test samples                    |
// | features   | 20      | input dimension                 |
// | classes    | 4       | number of classes               |
// | separation | 1.0     | scale of the class centres      |
#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

class Synthetic : public DataSource {
 public:
  Synthetic(const Params& p, const Context& c)
      : train_(p.get_int("train_size")),
        test_(p.get_int("test_size")),
        features_(p.get_int("features")),
        classes_(p.get_int("classes")),
        separation_(p.get_double("separation")),
        seed_(c.seed()) {}

  Dataset load() override {
    at::Generator gen = make_generator(seed_);
    at::Tensor centres = at::randn({classes_, features_}, gen).mul_(separation_);
    auto draw = [&](std::int64_t n, at::Tensor& x, at::Tensor& y) {
      y = at::randint(classes_, {n}, gen, at::kLong);
      x = centres.index_select(0, y).add_(at::randn({n, features_}, gen));
    };
    Dataset d;
    draw(train_, d.train_x, d.train_y);
    draw(test_, d.test_x, d.test_y);
    d.sample_shape = {features_};
    d.classes = classes_;
    d.description = "synthetic Gaussian classes";
    return d;
  }

 private:
  std::int64_t train_, test_, features_, classes_;
  double separation_;
  std::uint64_t seed_;
};

}  // namespace

PHALANX_PLUGIN("synthetic", "1.0") {
  registrar.add_data({"synthetic",
                      "seeded Gaussian classification data",
                      {{"train_size", ParamType::Int, 4000, "training samples", 1},
                       {"test_size", ParamType::Int, 1000, "test samples", 1},
                       {"features", ParamType::Int, 20, "input dimension", 1},
                       {"classes", ParamType::Int, 4, "number of classes", 2},
                       {"separation", ParamType::Double, 1.0, "scale of the class centres", 0.0}}},
                     [](const Params& p, const Context& c) { return std::make_unique<Synthetic>(p, c); });
}
