# Recipes for people who have `just`; each wraps a script that works without it.

default:
    @just --list

# Run the whole test suite (provisions a local control plane if needed).
test:
    bash hack/test.sh

# Start / stop / inspect the local control plane.
cluster-up:
    bash hack/cluster.sh up
cluster-down:
    bash hack/cluster.sh down
cluster-status:
    bash hack/cluster.sh status
cluster-env:
    @bash hack/cluster.sh env

# The scale benchmark (1,000 objects) on a control plane of its own: a table, JSON and a plot.
bench:
    bash hack/bench.sh

# The chaos soak for longer than CI runs it: just soak 300 [seed].
soak rounds="300" seed="":
    bash hack/soak.sh --rounds {{rounds}} {{ if seed != "" { "--seed " + seed } else { "" } }}

# Regenerate the CRDs in crds/ and every file derived from them or from the Argo CD health script.
generate:
    bash hack/generate.sh

# Run the simulator on 127.0.0.1:8085.
simulate:
    cargo run -p databricks-account-sim

# With Docker (not available on the project's CI machines): a k3d cluster and the same tests.
e2e:
    k3d cluster create dbx-operator-e2e --wait
    KUBECONFIG="$(k3d kubeconfig write dbx-operator-e2e)" bash hack/test.sh
    k3d cluster delete dbx-operator-e2e
