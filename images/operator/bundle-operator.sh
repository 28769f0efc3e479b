#!/bin/sh
# Bundles the operator (or another entry) into one ES module with esbuild, as the operator image runs it.
#   images/operator/bundle-operator.sh <esbuild binary> <entry .ts> <outfile>
# Why: run from its .ts sources the operator idled at ~180 MB RSS (~197 MB in a cluster, against a
# 256 Mi limit): Node loads all 25 MB of @kubernetes/client-node's JavaScript (every API group, and
# keeps their sources in the heap) plus the TypeScript type stripper. The bundle keeps only what the
# operator reaches and idles at ~95 MB (e2e/operator-bundle.test.ts measures both).
# The outfile must sit two directories below the image root (/app/operator/dist/main.mjs): modules find
# proto/ as ../../proto from their own directory. The few requires esbuild cannot see (optional ones:
# ws's bufferutil, protobufjs's inquire) go through the banner's `require`, resolved from the bundle's
# directory, so /app/node_modules still answers them as it did for the sources.
set -eu
"$1" "$2" --bundle --platform=node --format=esm --target=node24 \
  --minify-whitespace --minify-syntax --keep-names --legal-comments=none \
  --banner:js="import { createRequire as __synodCreateRequire } from 'node:module'; const require = __synodCreateRequire(import.meta.url);" \
  --log-level=warning --outfile="$3"
