#!/bin/sh
# Compiles kernels/*.cu to kernels/*.ptx (or into the directory given) as
# PTX ISA 7.0 for sm_75, which the driver JIT-compiles for newer GPUs too
# (sm_80, sm_90), with Debian's clang (14 or later), without NVIDIA's
# headers or libraries. Run by go generate ./gpu/cuda; the PTX is
# committed, so building needs no clang. CI compiles into a temporary
# directory and compares.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
out="$(cd "${1:-$here/kernels}" && pwd)"
CLANG="${CLANG:-clang}"
cd "$here/kernels"
for cu in *.cu; do
  ptx="$out/${cu%.cu}.ptx"
  "$CLANG" -x cuda --cuda-device-only -nocudainc -nocudalib --cuda-gpu-arch=sm_75 \
    -Xclang -target-feature -Xclang +ptx70 -O3 -S -o "$ptx.tmp" "$cu"
  # The header the package promises: ISA 7.0 (ptxas 11.8 reads ≤ 7.8), sm_75.
  if ! grep -qx '.version 7.0' "$ptx.tmp" || ! grep -qx '.target sm_75' "$ptx.tmp"; then
    echo "gen.sh: $ptx: want .version 7.0 and .target sm_75, got:" >&2
    grep -E '^\.(version|target)' "$ptx.tmp" >&2
    rm -f "$ptx.tmp"; exit 1
  fi
  { echo "// From kernels/$cu by gen.sh with $("$CLANG" --version | head -1)."; cat "$ptx.tmp"; } >"$ptx"
  rm -f "$ptx.tmp"
done
