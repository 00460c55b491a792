// Key functions of the model interfaces, apart from interfaces.cpp because they need torch::nn.
#include "phalanx/model.hpp"

namespace phalanx {

Network::~Network() = default;
Model::~Model() = default;

}  // namespace phalanx
