#!/usr/bin/env bash
# Installs everything phalanx needs to build, test and run, from Debian 12 packages only.
# Runs as root (CI) or through sudo (a developer's machine).
set -euo pipefail

packages=(
  g++ cmake ninja-build ccache pkg-config
  libtorch-dev libgloo-dev            # tensors, autograd, models; c10d/Gloo for the distributed mode
  libopenblas0-pthread                # fast BLAS for LibTorch (the default reference BLAS is 3-20x slower)
  libyaml-cpp-dev libspdlog-dev libboost-dev libboost-filesystem-dev zlib1g-dev
  libcli11-dev                        # the command line's flags (header-only)
  libssl-dev                          # OpenSSL: HMAC-SHA256 authentication of the distributed mode
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist               # /usr/share/datasets/fashion-mnist
  gnuplot-nox                         # plots of `phalanx report`
  chromium                            # renders report.html in the test tests/report_render_test.sh
  clang-14 libclang-rt-14-dev         # libFuzzer and the sanitizers of .ci/fuzz.sh (tests/fuzz)
)

if [[ $(id -u) -eq 0 ]]; then as_root=(); else as_root=(sudo); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}"
fi
