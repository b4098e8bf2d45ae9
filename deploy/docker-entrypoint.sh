#!/bin/bash
# The image's roles: docker-entrypoint.sh data-platform | ai-platform | ray ARGS | COMMAND.
#
# A Ray driver attaches to the raylet of its own node, so a service that joins the cluster
# from a pod of its own (RAY_JOIN_ADDRESS set) first makes that pod a Ray node with no CPUs:
# no task or replica is placed there, and the service reaches the cluster through it.
set -euo pipefail

join_ray() {
    [[ -n "${RAY_JOIN_ADDRESS:-}" ]] || return 0
    # A small object store: a service's pod only holds what its driver puts (the data itself
    # travels through the lake), and Ray's default is 30% of the pod's memory.
    ray start --address="${RAY_JOIN_ADDRESS}" --num-cpus=0 --num-gpus=0 \
        --object-store-memory=268435456 --disable-usage-stats --log-style=record
}

role="${1:-data-platform}"
[[ $# -gt 0 ]] && shift
case "${role}" in
    data-platform) join_ray; exec python -m data_platform "$@" ;;
    ai-platform) join_ray; exec python -m ai_platform "$@" ;;
    ray) exec ray "$@" ;;  # KubeRay's pods replace the command with their own `ray start`
    *) exec "${role}" "$@" ;;
esac
