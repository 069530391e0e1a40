#!/usr/bin/env bash
# Installs the built kseg into a scratch prefix and builds a separate project against it with
# find_package(kseg), then runs that project: the install rules and package config must work.
set -euo pipefail
build_dir=$(dirname "$KSEG")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cmake --install "$build_dir" --prefix "$scratch/prefix" >/dev/null
test -x "$scratch/prefix/bin/kseg"
test -f "$scratch/prefix/include/kseg/kseg.h"
# A static libkseg built with sanitizers needs its consumer linked with the same runtime, so the
# consumer gets the build's compile and link flags.
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt"; }
cmake -S "$KSEG_SOURCE_DIR/tests/consumer" -B "$scratch/build" \
      -DCMAKE_PREFIX_PATH="$scratch/prefix" \
      -DCMAKE_C_FLAGS="$(cache_value CMAKE_C_FLAGS)" \
      -DCMAKE_EXE_LINKER_FLAGS="$(cache_value CMAKE_EXE_LINKER_FLAGS)" >/dev/null
cmake --build "$scratch/build" >/dev/null
"$scratch/build/consumer"
echo "1 passed, 0 failed"
