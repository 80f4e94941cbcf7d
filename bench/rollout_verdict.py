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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scenarios", default="green,crash-loop,image-pull-not-found,init-fail")
    args = parser.parse_args()
    if "KUBECONFIG" not in os.environ:
        print('run `eval "$(scripts/stack env)"` first', file=sys.stderr)
        return 2
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    sh("kubectl", "create", "namespace", namespace)
    ours_cmd = [
        sys.executable,
        "-m",
        "deployer",
        "wait",
        "--namespace",
        namespace,
        "--timeout",
        "5m",
        "--deployment",
    ]
    results = {}
    try:
        for scenario in args.scenarios.split(","):
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
                        else [*ours_cmd, name]
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
