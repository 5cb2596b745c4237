#!/usr/bin/env bash
# What CI does, by hand: clone the committed tree to a temporary directory and run .ci/run
# there, so nothing that only exists in this work tree can make it pass.
set -euo pipefail
top=$(git rev-parse --show-toplevel)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
git clone --quiet "$top" "$dir/repo"
cd "$dir/repo"
CI=true bash .ci/run
