#!/usr/bin/env bash
# Runs the end-to-end scenarios on a real AKS cluster (E2E_TARGET=aks): creates (or reuses) a resource group, an AKS
# cluster with the Azure Disk CSI driver and a container registry, builds and pushes the product's images, installs
# CloudNativePG and the product, runs the suite, collects artifacts when it fails, and deletes what it
# created. See e2e/README.md ("On AKS") for the inputs; `--help` lists them too.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: e2e/run-aks-e2e.sh [--dry-run] [--keep] [--help]

  --dry-run   print every command the run would execute, in order, and execute none
  --keep      keep what the run created (resource group, cluster, registry) at the end
  --help      this text

Inputs (environment variables):
  AZURE_SUBSCRIPTION     required: the subscription id or name
  AZURE_LOCATION         Azure region (default: eastus)
  AKS_RESOURCE_GROUP     resource group (default: cnpg-ds-e2e); reused when it exists, deleted only when created
  AKS_CLUSTER            AKS cluster name (default: cnpg-ds-e2e)
  AKS_REUSE              "true": use the existing AKS_CLUSTER as it is (nothing created, nothing deleted)
  AKS_NODE_SIZE          VM size of the nodes (default: Standard_D4s_v5)
  AKS_NODE_COUNT         number of nodes (default: 3)
  AKS_ZONES              availability zones of the nodes (default: "1 2 3"; empty: none; zonal disks make the drain
                         scenario hold)
  AKS_K8S_VERSION        Kubernetes version (default: the AKS default)
  REGISTRY               an existing registry to push to (e.g. myregistry.azurecr.io/team); the cluster must be able
                         to pull from it. Without it an Azure Container Registry ACR_NAME is created and attached.
  ACR_NAME               name of the registry to create when REGISTRY is empty (5-50 letters and digits, unique in Azure)
  IMAGE_TAG              tag of the built images (default: e2e-<UTC time>)
  CNPG_VERSION           CloudNativePG release to install (default: 1.27.1)
  ARTIFACTS_DIR          where logs, events and status go when the suite fails (default: e2e-artifacts/aks)
  E2E_MOCHA_ARGS         extra mocha arguments (e.g. "--grep growth")
EOF
}

dry_run=false
keep=false
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=true ;;
    --keep) keep=true ;;
    --help | -h) usage; exit 0 ;;
    *) echo "run-aks-e2e: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# ---------------------------------------------------------------------------------------------------------------------
# Inputs

missing=()
subscription="${AZURE_SUBSCRIPTION:-}"
[[ -n "$subscription" ]] || missing+=("AZURE_SUBSCRIPTION (the subscription id or name)")
location="${AZURE_LOCATION:-eastus}"
resource_group="${AKS_RESOURCE_GROUP:-cnpg-ds-e2e}"
cluster="${AKS_CLUSTER:-cnpg-ds-e2e}"
reuse="${AKS_REUSE:-false}"
node_size="${AKS_NODE_SIZE:-Standard_D4s_v5}"
node_count="${AKS_NODE_COUNT:-3}"
zones="${AKS_ZONES-1 2 3}"
k8s_version="${AKS_K8S_VERSION:-}"
registry="${REGISTRY:-}"
acr_name="${ACR_NAME:-}"
if [[ -z "$registry" && -z "$acr_name" ]]; then
  missing+=("REGISTRY (an existing registry) or ACR_NAME (a registry to create)")
fi
if [[ -z "$registry" && -n "$acr_name" && ! "$acr_name" =~ ^[a-zA-Z0-9]{5,50}$ ]]; then
  missing+=("ACR_NAME must be 5-50 letters and digits, got \"$acr_name\"")
fi
[[ "$node_count" =~ ^[1-9][0-9]*$ ]] || missing+=("AKS_NODE_COUNT must be a positive number, got \"$node_count\"")
[[ "$reuse" == true || "$reuse" == false ]] || missing+=("AKS_REUSE must be true or false, got \"$reuse\"")
image_tag="${IMAGE_TAG:-}"
if [[ -z "$image_tag" ]]; then printf -v image_tag 'e2e-%(%Y%m%d%H%M%S)T' -1; fi
cnpg_version="${CNPG_VERSION:-1.27.1}"
artifacts_dir="${ARTIFACTS_DIR:-e2e-artifacts/aks}"
read -r -a mocha_args <<<"${E2E_MOCHA_ARGS:-}"

if ((${#missing[@]} > 0)); then
  echo "run-aks-e2e: missing or invalid inputs:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  echo "see e2e/run-aks-e2e.sh --help" >&2
  exit 2
fi

if [[ -z "$registry" ]]; then registry="${acr_name}.azurecr.io"; fi
agent_image="${registry}/cnpg-dynamic-storage/agent:${image_tag}"
controller_image="${registry}/cnpg-dynamic-storage/controller:${image_tag}"
cnpg_minor="${cnpg_version%.*}"
cnpg_manifest="https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/release-${cnpg_minor}/releases/cnpg-${cnpg_version}.yaml"
kubeconfig="${artifacts_dir}/kubeconfig"

# ---------------------------------------------------------------------------------------------------------------------
# Running (or printing) commands

# Prints a command as it would be typed; runs it unless this is a dry run.
run() {
  local line
  printf -v line '%q ' "$@"
  echo "+ ${line% }"
  if [[ "$dry_run" == false ]]; then "$@"; fi
}

# The same for a pipeline or a redirection, given as one shell line.
run_sh() {
  echo "+ $1"
  if [[ "$dry_run" == false ]]; then bash -o pipefail -c "$1"; fi
}

# A question whose answer decides what to run: false in a dry run (so it shows everything a fresh run does).
probe() {
  local line
  printf -v line '%q ' "$@"
  echo "+ ${line% }"
  if [[ "$dry_run" == true ]]; then return 1; fi
  "$@" >/dev/null 2>&1
}

created_group=false
created_cluster=false
created_registry=false
cleaned=false

cleanup() {
  local status=$?
  if [[ "$cleaned" == true ]]; then return; fi
  cleaned=true
  if [[ "$keep" == true ]]; then
    echo "run-aks-e2e: --keep: leaving resource group ${resource_group}, cluster ${cluster} and registry ${registry} in place"
    return
  fi
  echo "run-aks-e2e: deleting what this run created"
  if [[ "$created_group" == true ]]; then
    run az group delete --subscription "$subscription" --name "$resource_group" --yes --no-wait || true
    return
  fi
  if [[ "$created_cluster" == true ]]; then
    run az aks delete --subscription "$subscription" --resource-group "$resource_group" --name "$cluster" --yes --no-wait || true
  fi
  if [[ "$created_registry" == true ]]; then
    run az acr delete --subscription "$subscription" --resource-group "$resource_group" --name "$acr_name" --yes || true
  fi
  return "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

collect_artifacts() {
  echo "run-aks-e2e: collecting logs, events and status into ${artifacts_dir}"
  run mkdir -p "$artifacts_dir"
  local k="kubectl --kubeconfig ${kubeconfig}"
  run_sh "$k get dynamicstorages.dynamicstorage.cnpg.io -A -o yaml > ${artifacts_dir}/dynamicstorages.yaml || true"
  run_sh "$k get clusters.postgresql.cnpg.io -A -o yaml > ${artifacts_dir}/clusters.yaml || true"
  run_sh "$k get pvc,pv -A -o wide > ${artifacts_dir}/volumes.txt || true"
  run_sh "$k get pods,nodes -A -o wide > ${artifacts_dir}/pods.txt || true"
  run_sh "$k get events -A --sort-by=.lastTimestamp > ${artifacts_dir}/events.txt || true"
  run_sh "$k logs -n cnpg-system -l app.kubernetes.io/name=cnpg-dynamic-storage-controller --all-containers --prefix --tail=-1 > ${artifacts_dir}/controller.log || true"
  run_sh "$k logs -n cnpg-system -l app.kubernetes.io/name=cnpg-dynamic-storage-agent --all-containers --prefix --tail=-1 > ${artifacts_dir}/agents.log || true"
  run_sh "$k logs -n cnpg-system -l app.kubernetes.io/name=cloudnative-pg --all-containers --prefix --tail=-1 > ${artifacts_dir}/cnpg-operator.log || true"
}

if [[ "$dry_run" == false ]]; then
  for tool in az kubectl docker npx; do
    command -v "$tool" >/dev/null || { echo "run-aks-e2e: $tool is not on PATH" >&2; exit 2; }
  done
fi

cd "$repo_root"

# ---------------------------------------------------------------------------------------------------------------------
# Azure: resource group, registry, cluster

run mkdir -p "$artifacts_dir"
run az account set --subscription "$subscription"
if [[ "$reuse" == true ]]; then
  echo "run-aks-e2e: AKS_REUSE=true: using the cluster ${resource_group}/${cluster} as it is"
else
  if ! probe az group show --subscription "$subscription" --name "$resource_group"; then
    # Marked before it runs: a create that fails half-way still leaves something to delete.
    created_group=true
    run az group create --subscription "$subscription" --name "$resource_group" --location "$location"
  fi
  if [[ -z "${REGISTRY:-}" ]] && ! probe az acr show --subscription "$subscription" --resource-group "$resource_group" --name "$acr_name"; then
    created_registry=true
    run az acr create --subscription "$subscription" --resource-group "$resource_group" --name "$acr_name" --sku Basic
  fi
  if ! probe az aks show --subscription "$subscription" --resource-group "$resource_group" --name "$cluster"; then
    create=(az aks create --subscription "$subscription" --resource-group "$resource_group" --name "$cluster" --location "$location"
      --node-count "$node_count" --node-vm-size "$node_size" --generate-ssh-keys --enable-disk-driver)
    read -r -a zone_list <<<"$zones"
    if ((${#zone_list[@]} > 0)); then create+=(--zones "${zone_list[@]}"); fi
    if [[ -n "$k8s_version" ]]; then create+=(--kubernetes-version "$k8s_version"); fi
    if [[ -z "${REGISTRY:-}" ]]; then create+=(--attach-acr "$acr_name"); fi
    created_cluster=true
    run "${create[@]}"
  fi
fi
run az aks get-credentials --subscription "$subscription" --resource-group "$resource_group" --name "$cluster" --file "$kubeconfig" --overwrite-existing
export KUBECONFIG="$kubeconfig"

# ---------------------------------------------------------------------------------------------------------------------
# Images

if [[ -z "${REGISTRY:-}" ]]; then
  run az acr login --subscription "$subscription" --name "$acr_name"
fi
run docker build -f Dockerfile.agent -t "$agent_image" .
run docker build -f Dockerfile.controller -t "$controller_image" .
run docker push "$agent_image"
run docker push "$controller_image"

# ---------------------------------------------------------------------------------------------------------------------
# CloudNativePG, the product (the webhooks included: the controller makes their certificate, no cert-manager)

run kubectl apply --server-side -f "$cnpg_manifest"
run kubectl -n cnpg-system rollout status deployment/cnpg-controller-manager --timeout=300s
run kubectl apply -f crds/
run_sh "kubectl kustomize daemonset/ | sed -e 's|ghcr.io/cnpg-dynamic-storage/agent:[^\"[:space:]]*|${agent_image}|' -e 's|ghcr.io/cnpg-dynamic-storage/controller:[^\"[:space:]]*|${controller_image}|' | kubectl apply -f -"
run kubectl -n cnpg-system rollout status deployment/cnpg-dynamic-storage-controller --timeout=300s
run kubectl -n cnpg-system rollout status daemonset/cnpg-dynamic-storage-agent --timeout=300s

# ---------------------------------------------------------------------------------------------------------------------
# The suite

suite=(env E2E_TARGET=aks "KUBECONFIG=$kubeconfig" npx mocha --config e2e/.mocharc.json --timeout 3600000)
if ((${#mocha_args[@]} > 0)); then suite+=("${mocha_args[@]}"); fi
if [[ "$dry_run" == true ]]; then
  run "${suite[@]}"
  echo "# when the suite fails:"
  collect_artifacts
elif run "${suite[@]}"; then
  echo "run-aks-e2e: the suite passed"
else
  status=$?
  collect_artifacts
  echo "run-aks-e2e: the suite failed (exit ${status}); artifacts in ${artifacts_dir}" >&2
  exit "$status"
fi
