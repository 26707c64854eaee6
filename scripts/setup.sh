#!/usr/bin/env bash
# Installs the Debian packages ayf needs (idempotent: packages already present are skipped).
#   scripts/setup.sh            library, tests, examples
#   scripts/setup.sh --bench    also the comparison peers (PyTorch, OpenBLAS)
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libeigen3-dev xtensor-dev xtl-dev libtbb-dev
  catch2 libbenchmark-dev libstb-dev nlohmann-json3-dev libcli11-dev
  gnuplot-nox dataset-fashion-mnist zlib1g-dev
  libopenmpi-dev openmpi-bin   # ayf::mpi and its tests (docs/distributed.md)
  libopenblas-dev   # the Eigen backend's gemm through OpenBLAS (AYF_WITH_OPENBLAS, docs/performance.md)
  libdnnl-dev       # the Eigen backend's float gemm through oneDNN (AYF_WITH_ONEDNN, docs/performance.md)
  clang libclang-rt-14-dev   # libFuzzer harnesses (scripts/fuzz.sh)
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-torch python3-numpy)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
