#!/usr/bin/env bash
# Placeholder until the operator work lands: fails loudly so nothing silently runs without helm.
echo "scripts/install-helm.sh: not written yet" >&2
exit 1
