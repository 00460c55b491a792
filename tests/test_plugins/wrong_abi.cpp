// A plugin compiled with a different ABI version or fingerprint (set on the command line by
// tests/CMakeLists.txt). The loader must refuse it before calling anything in it.
#include "phalanx/plugin.hpp"

PHALANX_PLUGIN("wrong_abi", "0.0") {
  throw phalanx::Error("the loader called a plugin it should have refused");
}
