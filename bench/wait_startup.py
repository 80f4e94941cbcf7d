"""Start-up: `python -m deployer wait` on a Deployment that is already rolled out, against
`kubectl rollout status` on the same Deployment, alternating, in the same session against the
local stack (`eval "$(scripts/stack env)"` first). The whole command is timed, process start to
exit: for a finished rollout that is almost all start-up (imports, kubeconfig, one list). Ours
runs with its defaults, the settle window (10 s) included: the bench first lets the Deployment's
pod be up longer than that, and the window credits what the API server's clock shows (the pod's
last status write, the server's `Date`), so a rollout finished before `wait` started pays no
window (docs/behaviour.md). Reported as medians and the ratio ours/kubectl, never as a pass/fail
threshold.

    .venv/bin/python bench/wait_startup.py [--rounds 15]

A second figure, `import`, is `python -c "import deployer.cli"` alone: what every command pays
before it does anything (the `kubernetes` package is not part of it: it is imported only for
the API discovery apply needs, or for a kubeconfig with a credential plugin; `wait` never
imports it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployer.input_values import DEFAULT_SETTLE, parse_duration  # noqa: E402 - after sys.path

SETTLE_S = parse_duration(DEFAULT_SETTLE)  # the default settle window `wait` applies


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=120, cwd=ROOT)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if not os.environ.get("KUBECONFIG"):
        sys.exit('KUBECONFIG is not set: eval "$(scripts/stack env)" first')
    namespace = f"bench-wait-{uuid.uuid4().hex[:6]}"
    kubectl = ["kubectl", "-n", namespace]
    subprocess.run(["kubectl", "create", "namespace", namespace], check=True, capture_output=True)
    try:
        subprocess.run(
            [*kubectl, "create", "deployment", "web", "--image=example.invalid/app:1"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*kubectl, "rollout", "status", "deployment/web", "--timeout=120s"],
            check=True,
            capture_output=True,
        )
        time.sleep(SETTLE_S + 1.5)  # finished before `wait` starts: up longer than the window
        ours_argv = [sys.executable, "-m", "deployer", "wait", "--deployment", "web"]
        ours_argv += ["--namespace", namespace, "--timeout", "60s"]
        theirs_argv = [*kubectl, "rollout", "status", "deployment/web", "--timeout=60s"]
        import_argv = [sys.executable, "-c", "import deployer.cli"]
        ours: list[float] = []
        theirs: list[float] = []
        imports: list[float] = []
        timed(ours_argv)  # warm the file cache once for both
        timed(theirs_argv)
        for _ in range(args.rounds):
            ours.append(timed(ours_argv))
            theirs.append(timed(theirs_argv))
            imports.append(timed(import_argv))
    finally:
        subprocess.run(  # noqa: PLW1510 - cleanup, best effort
            ["kubectl", "delete", "namespace", namespace, "--wait=false"], capture_output=True
        )
    o, t, i = (statistics.median(x) for x in (ours, theirs, imports))
    print(f"rounds: {args.rounds}")
    print(f"deployer wait (finished Deployment): median {o:.3f}s")
    print(f"kubectl rollout status:              median {t:.3f}s")
    print(f"ratio ours/kubectl:                  {o / t:.1f}")
    print(f"python -c 'import deployer.cli':     median {i:.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
