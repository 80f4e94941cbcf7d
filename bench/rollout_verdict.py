"""Time from "rollout started" to verdict: `python -m deployer wait` against `kubectl rollout status`.

Both run in the same session against the local stack (`eval "$(scripts/stack env)"` first), on the
same Deployment, alternating, each round triggered by a fresh template change. Reported as medians
and as ratios ours/kubectl — never as absolute pass/fail thresholds.

    .venv/bin/python bench/rollout_verdict.py [--rounds 5]

Scenarios:
- green: 3 replicas that become Ready 2 s after creation — both tools should end together
  (ratio ≈ 1: our watch adds no latency);
- crash-loop / image-pull-not-found / init-fail: kubectl ends only at the progress deadline
  (set to 30 s here; Kubernetes' default is 600 s), we end at the first fatal pod state.
- job-fail: a migrate-shaped Job (backoffLimit 0) whose pod exits 3 after 1 s. kubectl has no
  rollout status for Jobs; `kubectl wait --for=condition=complete` (what a deploy script waits
  on) never sees Complete and ends at its --timeout (`--kubectl-timeout`, 60 s); we end at the
  Job controller's FailureTarget. `kubectl wait --for=condition=failed`, the answer known in
  advance, is timed too as the floor.
- statefulset-crash-loop: a new StatefulSet whose first pod crash-loops. StatefulSets have no
  progress deadline: `kubectl rollout status` ends only at its --timeout; we end at the crash loop.
Each round of these two uses a fresh object (a Job cannot be re-run, and a StatefulSet stuck on a
broken pod needs that pod deleted by hand before it rolls again).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRESS_DEADLINE_S = 30


def sh(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


def manifest(name: str, behavior: str | None, round_id: str) -> str:
    annotations = {"bench/round": round_id, "deploy.test/ready-after": "2s"}
    if behavior:
        annotations["deploy.test/behavior"] = behavior
    ann = "\n".join(f'        {k}: "{v}"' for k, v in annotations.items())
    init = ""
    if behavior == "init-fail":
        init = (
            "      initContainers:\n      - name: migrate\n        image: example.invalid/app:1\n"
        )
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 3
  progressDeadlineSeconds: {PROGRESS_DEADLINE_S}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations:
{ann}
    spec:
{init}      containers:
      - name: app
        image: example.invalid/app:{round_id}
"""


def start_rollout(namespace: str, name: str, behavior: str | None) -> None:
    text = manifest(name, behavior, uuid.uuid4().hex[:8])
    subprocess.run(
        ["kubectl", "apply", "--server-side", "-n", namespace, "-f", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )


def timed(cmd: list[str]) -> tuple[float, int]:
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    return time.monotonic() - started, result.returncode


def settle(namespace: str, name: str) -> None:
    """Return to a healthy state between rounds so each round is one fresh rollout."""
    start_rollout(namespace, name, None)
    sh(
        "kubectl",
        "rollout",
        "status",
        "-n",
        namespace,
        f"deployment/{name}",
        "--timeout=120s",
        check=False,
    )


KUBECTL_TIMEOUT_S = 60


def fresh_object_manifest(scenario: str, name: str) -> str:
    if scenario == "job-fail":
        return f"""apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
        deploy.test/behavior: fail-exit-3
        deploy.test/duration: 1s
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: example.invalid/app:1
"""
    return f"""apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
spec:
  replicas: 2
  serviceName: {name}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations:
        deploy.test/behavior: crash-loop
    spec:
      containers:
      - name: app
        image: example.invalid/app:1
"""


# `--settle` for our tool: the action's default; `--settle 0` is kubectl's done (set by main).
OURS = {"settle": "10s"}


def ours_wait(namespace: str, *target: str) -> list[str]:
    """`python -m deployer wait` for one rollout (`--deployment NAME` or `--workload KIND/NAME`)."""
    return [
        sys.executable,
        "-m",
        "deployer",
        "wait",
        "--namespace",
        namespace,
        "--timeout",
        "5m",
        "--settle",
        OURS["settle"],
        *target,
    ]


def fresh_object_round(
    namespace: str, scenario: str, tool: str, kubectl_timeout: int
) -> tuple[float, int]:
    """One new Job / StatefulSet per measurement; the tool starts right after the apply."""
    kind = "job" if scenario == "job-fail" else "statefulset"
    name = f"b-{scenario[:3]}-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["kubectl", "apply", "--server-side", "-n", namespace, "-f", "-"],
        input=fresh_object_manifest(scenario, name),
        capture_output=True,
        text=True,
        check=True,
    )
    timeout = f"--timeout={kubectl_timeout}s"
    if tool == "ours":
        cmd = ours_wait(namespace, "--workload", f"{kind}/{name}")
    elif tool == "kubectl-failed":
        cmd = ["kubectl", "wait", "-n", namespace, "--for=condition=failed", f"job/{name}", timeout]
    elif kind == "job":
        cmd = [
            "kubectl",
            "wait",
            "-n",
            namespace,
            "--for=condition=complete",
            f"job/{name}",
            timeout,
        ]
    else:
        cmd = ["kubectl", "rollout", "status", "-n", namespace, f"statefulset/{name}", timeout]
    try:
        return timed(cmd)
    finally:
        sh("kubectl", "delete", "-n", namespace, kind, name, "--wait=false", check=False)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--scenarios",
        default="green,crash-loop,image-pull-not-found,init-fail,job-fail,statefulset-crash-loop",
    )
    parser.add_argument("--kubectl-timeout", type=int, default=KUBECTL_TIMEOUT_S)
    parser.add_argument(
        "--settle",
        default=OURS["settle"],
        help="our settle window (default the action's 10s; 0: green when kubectl says done)",
    )
    args = parser.parse_args()
    OURS["settle"] = args.settle
    if "KUBECONFIG" not in os.environ:
        print('run `eval "$(scripts/stack env)"` first', file=sys.stderr)
        return 2
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    sh("kubectl", "create", "namespace", namespace)
    results = {}
    try:
        for scenario in args.scenarios.split(","):
            if scenario in ("job-fail", "statefulset-crash-loop"):
                tools = ["kubectl", "ours"] + (["kubectl-failed"] if scenario == "job-fail" else [])
                runs: dict[str, list[tuple[float, int]]] = {tool: [] for tool in tools}
                for _ in range(args.rounds):
                    for tool in tools:
                        runs[tool].append(
                            fresh_object_round(namespace, scenario, tool, args.kubectl_timeout)
                        )
                medians = {t: statistics.median(s for s, _ in r) for t, r in runs.items()}
                results[scenario] = {
                    "ours_median_s": round(medians["ours"], 2),
                    "kubectl_median_s": round(medians["kubectl"], 2),
                    "kubectl_timeout_s": args.kubectl_timeout,
                    "ratio_ours_over_kubectl": round(medians["ours"] / medians["kubectl"], 3),
                    "exit_codes": {t: sorted({c for _, c in r}) for t, r in runs.items()},
                    "rounds": args.rounds,
                }
                if "kubectl-failed" in medians:
                    results[scenario]["kubectl_wait_failed_median_s"] = round(
                        medians["kubectl-failed"], 2
                    )
                print(
                    f"{scenario:22} ours {medians['ours']:6.2f}s  kubectl {medians['kubectl']:6.2f}s  "
                    f"ratio {medians['ours'] / medians['kubectl']:5.2f}  "
                    + "  ".join(f"{t}={sorted({c for _, c in r})}" for t, r in runs.items())
                    + (
                        f"  kubectl wait --for=condition=failed {medians['kubectl-failed']:.2f}s"
                        if "kubectl-failed" in medians
                        else ""
                    ),
                    flush=True,
                )
                continue
            behavior = None if scenario == "green" else scenario
            name = f"b-{scenario}"[:40]
            settle(namespace, name)
            times: dict[str, list[float]] = {"ours": [], "kubectl": []}
            codes: dict[str, set[int]] = {"ours": set(), "kubectl": set()}
            for _ in range(args.rounds):
                for tool in ("kubectl", "ours"):
                    start_rollout(namespace, name, behavior)
                    cmd = (
                        [
                            "kubectl",
                            "rollout",
                            "status",
                            "-n",
                            namespace,
                            f"deployment/{name}",
                            "--timeout=5m",
                        ]
                        if tool == "kubectl"
                        else ours_wait(namespace, "--deployment", name)
                    )
                    seconds, code = timed(cmd)
                    times[tool].append(seconds)
                    codes[tool].add(code)
                    if behavior:
                        settle(namespace, name)
            ours, theirs = statistics.median(times["ours"]), statistics.median(times["kubectl"])
            results[scenario] = {
                "ours_median_s": round(ours, 2),
                "kubectl_median_s": round(theirs, 2),
                "ratio_ours_over_kubectl": round(ours / theirs, 3),
                "exit_codes": {k: sorted(v) for k, v in codes.items()},
                "rounds": args.rounds,
            }
            print(
                f"{scenario:22} ours {ours:6.2f}s  kubectl {theirs:6.2f}s  ratio {ours / theirs:5.2f}  "
                f"exit codes ours={sorted(codes['ours'])} kubectl={sorted(codes['kubectl'])}",
                flush=True,
            )
    finally:
        sh("kubectl", "delete", "namespace", namespace, "--wait=false", check=False)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"rollout_verdict-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(
        json.dumps({"progress_deadline_s": PROGRESS_DEADLINE_S, "results": results}, indent=2)
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
