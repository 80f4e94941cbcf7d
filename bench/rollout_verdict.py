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

`--node real` measures on the stack's real node (a real kubelet with containerd; see
bench/README or docs/benchmarks.md) instead of kwok: each scenario is a fresh Deployment of
`tests/harness/real_node.py`'s probe image, pulled from the stack's registry, with Kubernetes'
default progress deadline (600 s). Every round applies all scenarios at once, then starts our
`wait` (settle 10 s) and `kubectl rollout status` (no --timeout: it ends at the deadline or
when done) side by side on each. kubectl is stopped after `--kubectl-wait` seconds (default 90)
and reported as "still waiting" then; `--kubectl-wait 660` lets it reach the 600 s deadline.
Scenarios: the rows of issue 17's table and the fast-red states (see REAL_SCENARIOS); a pod that
never becomes ready (`never-ready`) only when asked, as both tools wait for its deadline.

    .venv/bin/python bench/rollout_verdict.py --node real [--rounds 3] [--kubectl-wait 90]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
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


# -- the real node ------------------------------------------------------------------------------

KUBECTL_WAIT_S = 90
BROKEN = ["say", "broken commit", "3"]
REAL_SCENARIOS = (
    "green,crash-loop,exits-at-once,exits-after-3s,oom,exits-after-2s-never-ready,"
    "image-not-found,no-credentials,init-fail,configmap-key,unschedulable"
)
# Not by default: a pod that runs but never becomes ready is judged by the progress deadline by
# both tools (600 s here; ours ends first, "timed-out" at its own --timeout of 5 minutes).
REAL_ONLY_ASKED = ("never-ready",)


def real_deployment(scenario: str, name: str, image: str, registry: str) -> dict[str, Any]:
    """One fresh Deployment per scenario and round; the default progress deadline (600 s)."""
    from tests.harness.real_node import PULL_SECRET, container, deployment, tcp_probe

    def one(args: list[str], **extra: Any) -> list[dict[str, Any]]:
        return [container("app", args, image, **extra)]

    serving = ["serve", "8080"]
    shapes: dict[str, dict[str, Any]] = {
        "green": deployment(name, one(serving, readinessProbe=tcp_probe(8080)), replicas=2),
        "crash-loop": deployment(
            name, one(["say", "Traceback ...", "1"], readinessProbe=tcp_probe(8080))
        ),
        "exits-at-once": deployment(name, one(BROKEN), replicas=2),
        "exits-after-3s": deployment(name, one([*BROKEN, "3"])),
        "oom": deployment(
            name,
            one(["alloc", "200"], resources={"limits": {"memory": "50Mi"}}),
        ),
        "exits-after-2s-never-ready": deployment(
            name, one([*BROKEN, "2"], readinessProbe=tcp_probe(8080))
        ),
        "image-not-found": deployment(
            name, [container("app", serving, f"{registry}/verdicts/no-such-image:1.0")]
        ),
        "no-credentials": deployment(name, one(serving)),
        "init-fail": deployment(
            name,
            one(serving),
            init=[container("migrate", ["say", "migration failed", "1"], image)],
        ),
        "configmap-key": deployment(
            name,
            one(
                serving,
                env=[
                    {
                        "name": "DATABASE_URL",
                        "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "NOPE"}},
                    }
                ],
            ),
        ),
        "never-ready": deployment(name, one(serving, readinessProbe=tcp_probe(8081))),
        "unschedulable": deployment(name, one(serving, resources={"requests": {"cpu": "4000"}})),
    }
    doc = shapes[scenario]
    if scenario != "no-credentials":
        doc["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": PULL_SECRET}]
    return doc


def real_round(
    namespace: str,
    scenarios: list[str],
    image: str,
    registry: str,
    kubectl_wait: int,
    stagger_s: float,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Each scenario applied in turn, `stagger_s` apart (so that our processes do not all start
    at once on a small machine), and right after its apply ours and kubectl start side by side.
    A tool's time runs from its start to its exit."""
    out: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in scenarios}
    names: dict[str, str] = {}
    procs: dict[tuple[str, str], tuple[subprocess.Popen[str], float]] = {}
    pending: set[tuple[str, str]] = set()

    def poll() -> None:
        now = time.monotonic()
        for key in sorted(pending):
            (scenario, tool), (proc, started) = key, procs[key]
            if proc.poll() is None:
                cap = kubectl_wait if tool == "kubectl" else 360
                if now - started >= cap:
                    proc.kill()
                    proc.wait()
                    out[scenario][tool] = {"still_waiting_at_s": cap}
                    pending.discard(key)
                continue
            pending.discard(key)
            text = proc.stdout.read() if proc.stdout else ""
            lines = [line for line in text.splitlines() if line.strip()]
            mine = [
                line
                for line in lines
                if re.match(rf"deployment/{names[scenario]}: (succeeded|failed|timed-out)", line)
            ]
            verdict = (mine or lines or [""])[-1 if tool == "kubectl" else 0]
            entry: dict[str, Any] = {"s": now - started, "exit": proc.returncode}
            watched = re.search(r": (?:succeeded|failed|timed out) after ([0-9.]+)s", verdict)
            if watched:  # our own count, from the start of the watch (after connecting)
                entry["watch_s"] = float(watched.group(1))
            out[scenario][tool] = {**entry, "verdict": verdict}

    for scenario in scenarios:
        name = names[scenario] = f"{scenario[:40]}-{uuid.uuid4().hex[:5]}"
        doc = real_deployment(scenario, name, image, registry)
        applied = subprocess.run(
            ["kubectl", "apply", "--server-side", "-n", namespace, "-f", "-"],
            input=json.dumps(doc),
            capture_output=True,
            text=True,
            check=False,
        )
        if applied.returncode != 0:
            raise RuntimeError(f"kubectl apply: {applied.stderr.strip()}")
        for tool, cmd in (
            ("ours", ours_wait(namespace, "--deployment", name)),
            ("kubectl", ["kubectl", "rollout", "status", "-n", namespace, f"deployment/{name}"]),
        ):
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            procs[(scenario, tool)] = (proc, time.monotonic())
            pending.add((scenario, tool))
        until = time.monotonic() + stagger_s
        while time.monotonic() < until:
            poll()
            time.sleep(0.1)
    while pending:
        poll()
        time.sleep(0.1)
    return out


def real_main(args: argparse.Namespace) -> int:
    from tests.harness import real_node

    stack = dict(os.environ)
    if "DJK_REAL_NODE" not in stack:
        print("the stack runs no real node (DJK_REAL_NODE unset)", file=sys.stderr)
        return 2
    scenarios = args.scenarios.split(",") if args.scenarios else REAL_SCENARIOS.split(",")
    unknown = [s for s in scenarios if s not in (*REAL_SCENARIOS.split(","), *REAL_ONLY_ASKED)]
    if unknown:
        print(f"unknown real-node scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    image = f"{real_node.push_probe(stack)}:{real_node.PROBE_SHA}"
    namespace = real_node.namespace_name("bench", "verdicts")
    real_node.place_namespace(stack, namespace)
    # The pull secret is named by each pod, not the ServiceAccount: no-credentials names none.
    sh(
        "kubectl",
        "-n",
        namespace,
        "patch",
        "serviceaccount",
        "default",
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/imagePullSecrets"}]',
    )
    sh(
        "kubectl",
        "-n",
        namespace,
        "create",
        "configmap",
        "app-config",
        "--from-literal=DJANGO_SETTINGS_MODULE=antisocial.settings",
    )
    rounds: list[dict[str, dict[str, dict[str, Any]]]] = []
    try:
        for n in range(args.rounds):
            found = real_round(
                namespace, scenarios, image, stack["DJK_REGISTRY"], args.kubectl_wait, args.stagger
            )
            rounds.append(found)
            print(f"round {n + 1}:", flush=True)
            for scenario, tools in found.items():
                print(
                    f"  {scenario:28} "
                    + "  ".join(
                        f"{tool} "
                        + (
                            f"still waiting at {r['still_waiting_at_s']} s"
                            if "still_waiting_at_s" in r
                            else f"{r['s']:6.1f}s exit {r['exit']}: {r['verdict'][:90]}"
                        )
                        for tool, r in tools.items()
                    ),
                    flush=True,
                )
            sh(
                "kubectl",
                "-n",
                namespace,
                "delete",
                "deployments",
                "--all",
                "--wait=false",
                check=False,
            )
    finally:
        real_node.delete_namespace(stack, namespace)
    results: dict[str, Any] = {}
    for scenario in scenarios:
        summary: dict[str, Any] = {}
        for tool in ("ours", "kubectl"):
            runs = [r[scenario][tool] for r in rounds]
            ended = [x for x in runs if "s" in x]
            watched = [x["watch_s"] for x in ended if "watch_s" in x]
            summary[tool] = {
                "median_s": round(statistics.median(x["s"] for x in ended), 1) if ended else None,
                "median_watch_s": round(statistics.median(watched), 1) if watched else None,
                "ended": len(ended),
                "still_waiting_at_s": args.kubectl_wait if len(ended) < len(runs) else None,
                "exit_codes": sorted({x["exit"] for x in ended}),
                "verdicts": sorted({x["verdict"].split(": ", 1)[-1][:160] for x in ended}),
            }
        results[scenario] = summary
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"rollout_verdict-real-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {
                "node": "real",
                "stagger_s": args.stagger,
                "progress_deadline_s": 600,
                "kubectl_wait_s": args.kubectl_wait,
                "settle": OURS["settle"],
                "rounds": args.rounds,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--node",
        choices=("kwok", "real"),
        default="kwok",
        help="kwok (default) or the stack's real node (a real kubelet)",
    )
    parser.add_argument(
        "--scenarios",
        default="",
        help="comma-separated (default: every scenario of the node; real: " + REAL_SCENARIOS + ")",
    )
    parser.add_argument(
        "--kubectl-wait",
        type=int,
        default=KUBECTL_WAIT_S,
        help="real node: stop kubectl rollout status after this many seconds (660: let it reach "
        "the default 600 s progress deadline)",
    )
    parser.add_argument("--kubectl-timeout", type=int, default=KUBECTL_TIMEOUT_S)
    parser.add_argument(
        "--settle",
        default=OURS["settle"],
        help="our settle window (default the action's 10s; 0: green when kubectl says done)",
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=3.0,
        help="real node: seconds between one scenario's apply and the next",
    )
    return parser.parse_args()


def main() -> int:
    args = arguments()
    OURS["settle"] = args.settle
    if "KUBECONFIG" not in os.environ:
        print('run `eval "$(scripts/stack env)"` first', file=sys.stderr)
        return 2
    if args.node == "real":
        return real_main(args)
    args.scenarios = (
        args.scenarios
        or "green,crash-loop,image-pull-not-found,init-fail,job-fail,statefulset-crash-loop"
    )
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
