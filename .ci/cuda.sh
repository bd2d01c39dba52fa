#!/usr/bin/env bash
# The CUDA checks of package gpu/cuda on a machine without a GPU: vet,
# staticcheck and a test build with -tags cuda, against NVIDIA's cuda.h and
# stub libcuda.so from Debian's nvidia-cuda-dev 11.8 (non-free), fetched
# through a private apt configuration into a cache outside the repository
# (never installed, never committed); the test binary's skip without a GPU
# and its tests on a stand-in driver that runs the kernels on the CPU (or,
# where a GPU is, on it); the committed PTX against its source (where
# clang is installed); and, with ptxas from Debian's nvidia-cuda-toolkit
# 11.8 (fetched the same way), every PTX assembled for sm_75 and sm_90.
#
# Where apt, the mirror or the packages cannot be had, it says why and
# exits 0: a mirror outage must not fail CI. A failing check fails.
#
# The cache: $PENSTOCK_CUDA_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/penstock-cuda;
# delete it to fetch again. The mirror: $PENSTOCK_CUDA_MIRROR, else
# deb.debian.org.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"

cache="${PENSTOCK_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/penstock-cuda}"
suite=bookworm          # Debian 12: nvidia-cuda-dev 11.8 (cu breaks on CUDA 13's cuda.h)
version=11.8            # the version the packages must have
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
mirror="${PENSTOCK_CUDA_MIRROR:-http://deb.debian.org/debian}"

unavailable() { echo "cuda: $*; the CUDA checks are skipped"; exit 0; }

case "$cache" in
  "$(pwd)"/*) echo "cuda: the cache $cache lies inside the repository; NVIDIA files must stay out of it"; exit 1 ;;
esac

# fetch PACKAGE PATH...: download PACKAGE with the private apt configuration
# and extract the PATHs (as in the package: ./usr/...) into $cache/root.
fetch() {
  local pkg="$1"; shift
  local apt="$cache/apt"
  mkdir -p "$apt/etc/sources.list.d" "$apt/etc/preferences.d" "$apt/state/lists/partial" \
    "$apt/cache/archives/partial" "$apt/debs" "$cache/root"
  cat >"$apt/etc/sources.list" <<LIST
deb [signed-by=$keyring] $mirror $suite main contrib non-free non-free-firmware
deb [signed-by=$keyring] $mirror $suite-updates main contrib non-free non-free-firmware
LIST
  local opts=(-o "Dir::Etc::sourcelist=$apt/etc/sources.list" -o "Dir::Etc::sourceparts=$apt/etc/sources.list.d"
    -o "Dir::Etc::preferencesparts=$apt/etc/preferences.d" -o "Dir::State=$apt/state"
    -o "Dir::State::status=$apt/state/status" -o "Dir::Cache=$apt/cache" -o "Debug::NoLocking=true"
    -o "APT::Sandbox::User=$(id -un)")
  touch "$apt/state/status"
  timeout 300 apt-get -q "${opts[@]}" update >"$apt/update.log" 2>&1 \
    || { tail -3 "$apt/update.log"; return 1; }
  local have
  have=$(apt-cache "${opts[@]}" show "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -1)
  case "$have" in
    "") echo "cuda: $pkg is not in the lists of $mirror $suite (unreachable?):"; grep -E '^(W|E):' "$apt/update.log" | head -3
        return 1 ;;
    *"~$version".*) ;;
    *) echo "cuda: $pkg in $suite is version '${have:-none}', want $version.x"; return 1 ;;
  esac
  rm -f "$apt/debs/"*.deb
  (cd "$apt/debs" && timeout 900 apt-get -q "${opts[@]}" download "$pkg" >"$apt/download.log" 2>&1) \
    || { tail -3 "$apt/download.log"; return 1; }
  # (Called in an || list, where set -e does not apply: each step checks.)
  dpkg-deb --fsys-tarfile "$apt/debs/${pkg}_"*.deb | tar -x -C "$cache/root" "$@" \
    || { echo "cuda: $pkg has not $* (the package changed?)"; rm -f "$apt/debs/"*.deb; return 1; }
  rm -f "$apt/debs/"*.deb   # hundreds of MB; only the extracted files are kept
}

inc="$cache/root/usr/include"
stubs="$cache/root/usr/lib/x86_64-linux-gnu/stubs"
if [ ! -f "$inc/cuda.h" ] || [ ! -f "$stubs/libcuda.so" ]; then
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || unavailable "no apt-get or dpkg-deb (not Debian)"
  [ -f "$keyring" ] || unavailable "no Debian archive keyring at $keyring"
  [ "$(dpkg --print-architecture)" = amd64 ] || unavailable "the cached paths are amd64's"
  echo "cuda: fetching nvidia-cuda-dev $version into $cache"
  fetch nvidia-cuda-dev ./usr/include/cuda.h ./usr/lib/x86_64-linux-gnu/stubs/libcuda.so \
    || unavailable "nvidia-cuda-dev could not be fetched"
fi
# The stub's soname is libcuda.so.1: the link that lets a test binary start
# without a driver (and skip), via LD_LIBRARY_PATH.
ln -sf libcuda.so "$stubs/libcuda.so.1"
echo "cuda: cuda.h and the stub libcuda.so from $cache"

export CGO_ENABLED=1
export CGO_CFLAGS="-I$inc"
export CGO_LDFLAGS="-L$stubs"

echo "== cuda: no NVIDIA files in the repository"
if git ls-files | grep -E '(^|/)(cuda\.h|libcuda[^/]*|ptxas)$'; then
  echo "cuda: NVIDIA files are tracked (above); remove them"; exit 1
fi

# Only gpu/cuda/...: the tag cuda is gorgonia's too, and package gpu's
# tests import steps/mlp, whose gorgonia built with -tags cuda needs
# cuDNN's and cuBLAS's headers (package gpu itself has no tagged file; the
# main CI vets it).
echo "== cuda: go vet -tags cuda"
go vet -tags cuda ./gpu/cuda/...

echo "== cuda: staticcheck -tags cuda"
if ! command -v staticcheck >/dev/null 2>&1; then
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
staticcheck -tags cuda ./gpu/cuda/...

echo "== cuda: go test -tags cuda -c"
go test -tags cuda -c -o /dev/null ./gpu/cuda/

if [ -e /dev/nvidia0 ]; then
  # A GPU (and its driver's libcuda.so.1): the tests run on it.
  echo "== cuda: go test -tags cuda on the GPU"
  PENSTOCK_CUDA_REQUIRE=1 go test -tags cuda -count=1 -timeout 10m ./gpu/cuda/
else
  echo "== cuda: the test binary skips without a GPU (stub libcuda)"
  bin=$(mktemp -d)
  trap 'rm -rf "$bin"' EXIT
  go test -tags cuda -c -o "$bin/cuda.test" ./gpu/cuda/
  out=$(LD_LIBRARY_PATH="$stubs" "$bin/cuda.test" -test.v 2>&1) \
    || { echo "$out"; echo "cuda: the test binary failed without a GPU; want a skip"; exit 1; }
  echo "$out"
  case "$out" in *"no GPU"*) ;; *) echo "cuda: no skip message"; exit 1 ;; esac
  if LD_LIBRARY_PATH="$stubs" PENSTOCK_CUDA_REQUIRE=1 "$bin/cuda.test" >/dev/null 2>&1; then
    echo "cuda: with PENSTOCK_CUDA_REQUIRE=1 and no GPU the test binary passed; want a failure"; exit 1
  fi

  # The device's code end to end without a GPU: a stand-in libcuda.so.1
  # (internal/emu/driver) that runs kernels.cu's kernels on the CPU.
  echo "== cuda: the tests on the emulated driver"
  if command -v g++ >/dev/null 2>&1; then
    g++ -std=c++20 -O2 -shared -fPIC -I"$inc" -o "$bin/libcuda.so.1" gpu/cuda/internal/emu/driver/fakecuda.cc
    (cd gpu/cuda && LD_LIBRARY_PATH="$bin" PENSTOCK_CUDA_EMULATED=1 timeout 600 "$bin/cuda.test" \
      -test.count=1 -test.bench . -test.benchtime 1x) \
      || { echo "cuda: the tests failed on the emulated driver"; exit 1; }
  else
    echo "cuda: no g++: the tests do not run on the emulated driver"
  fi
fi

echo "== cuda: the committed PTX is the kernels' source compiled"
if command -v clang >/dev/null 2>&1; then
  gen=$(mktemp -d)
  sh gpu/cuda/gen.sh "$gen"
  for p in gpu/cuda/kernels/*.ptx; do
    if [ "$(head -1 "$p")" != "$(head -1 "$gen/$(basename "$p")")" ]; then
      echo "cuda: $p was made by another clang ($(head -1 "$p")): not compared"
    elif ! cmp -s "$p" "$gen/$(basename "$p")"; then
      diff "$p" "$gen/$(basename "$p")" | head -20
      echo "cuda: $p differs from its .cu compiled by $(clang --version | head -1); run go generate ./gpu/cuda"
      rm -rf "$gen"; exit 1
    fi
  done
  rm -rf "$gen"
else
  echo "cuda: no clang: the PTX is not compared with its source"
fi

echo "== cuda: ptxas for sm_75 and sm_90"
ptxas="$cache/root/usr/bin/ptxas"
if [ ! -x "$ptxas" ]; then
  echo "cuda: fetching nvidia-cuda-toolkit $version (ptxas) into $cache"
  fetch nvidia-cuda-toolkit ./usr/bin/ptxas || true
fi
if [ -x "$ptxas" ]; then
  for p in gpu/cuda/kernels/*.ptx; do
    for arch in sm_75 sm_90; do
      "$ptxas" -arch="$arch" -o /dev/null "$p"
      echo "cuda: $p assembles for $arch"
    done
  done
else
  echo "cuda: no ptxas (nvidia-cuda-toolkit could not be fetched): the PTX is not assembled"
fi
