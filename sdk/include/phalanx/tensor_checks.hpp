// Kept so sources written before the helpers moved keep compiling; new code includes the helpers/ path.
#pragma once
#include "phalanx/helpers/tensor_checks.hpp"
