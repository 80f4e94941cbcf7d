"""`scripts/stack up|down|status|env|real-node-namespace`: the local stack the tests and the demo run against.

Components, in order: binaries (scripts/build-binaries) -> controlplane (stack/controlplane.py)
-> node (stack/node.py: a real kubelet beside kwok) -> docker (stack/docker_side.py) ->
digitalocean (stack/digitalocean.py). State lives in
`$DJK_STACK_DIR` (default ~/.cache/django-k8s-deploy/stack): state.json (pids, ports, env),
logs/<component>.log. `down` stops exactly the processes `up` recorded and keeps logs and caches.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from stack import REPO_ROOT, Proc, StackError, controlplane, is_running, node, spawn, stop, wait_for

OPTIONAL = ("node", "docker", "digitalocean")
FAKE_DO = REPO_ROOT / "stack" / "digitalocean.py"
CLUSTER_NAME = "djk-local"


def default_state_dir() -> Path:
    configured = os.environ.get("DJK_STACK_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "django-k8s-deploy" / "stack"


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


# -- state --------------------------------------------------------------------------------------


def load_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((state_dir / "state.json").read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise StackError(
            f"{state_dir / 'state.json'} is not valid JSON ({exc}); remove it"
        ) from exc
    return state if isinstance(state, dict) else None


def save_state(state_dir: Path, state: dict[str, Any]) -> None:
    # It holds the env (tokens, passwords): owner-only, replaced atomically.
    tmp = state_dir / "state.json.tmp"
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, state_dir / "state.json")


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """One up/down at a time (parallel test sessions may all try to start the stack)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StackError(f"cannot create the state directory {state_dir}: {exc.strerror}") from exc
    with (state_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def docker_side() -> ModuleType | None:
    """stack/docker_side.py, if present (it is optional while it is being written)."""
    try:
        return importlib.import_module("stack.docker_side")
    except ModuleNotFoundError as exc:
        if exc.name == "stack.docker_side":
            return None
        raise


# -- health -------------------------------------------------------------------------------------


def component_status(state_dir: Path, state: dict[str, Any], name: str) -> list[tuple[str, bool]]:
    if name == "controlplane":
        return controlplane.status(state.get("controlplane", {}))
    if name == "node":
        return node.status(state_dir, state.get("node", {}), state.get("controlplane", {}))
    if name == "docker":
        module = docker_side()
        if module is None:
            return [("docker side (stack/docker_side.py missing)", False)]
        return list(module.status(state_dir))
    if name == "digitalocean":
        return [("fake DigitalOcean API", _fake_do_healthy(state.get("digitalocean", {})))]
    raise AssertionError(name)


def healthy(state_dir: Path, state: dict[str, Any], name: str) -> bool:
    return name in state.get("started", []) and all(
        ok for _, ok in component_status(state_dir, state, name)
    )


def _fake_do_healthy(info: dict[str, Any]) -> bool:
    procs = info.get("procs", [])
    if not procs or not all(is_running(p) for p in procs):
        return False
    if not info.get("url"):
        return False
    try:
        with urllib.request.urlopen(f"{info['url']}/_fake/faults", timeout=3) as response:  # noqa: S310 - our loopback URL
            return bool(response.status == 200)
    except OSError:
        return False


# -- up -----------------------------------------------------------------------------------------


def timed(what: str, action: Callable[[], None]) -> None:
    started = time.monotonic()
    say(f"{what}: starting")
    action()
    say(f"{what}: ready in {time.monotonic() - started:.1f}s")


def build_binaries() -> None:
    script = REPO_ROOT / "scripts" / "build-binaries"
    # Its progress goes to our stderr; a fresh machine spends minutes here, a warm one none.
    result = subprocess.run([str(script), "all"], stdout=sys.stderr, check=False)
    if result.returncode != 0:
        raise StackError(f"{script} all failed (exit {result.returncode}); see its output above")


def start_controlplane(state_dir: Path, state: dict[str, Any]) -> None:
    info = controlplane.up(state_dir, say)
    state["controlplane"] = info
    state["env"].update(info["env"])
    state["started"].append("controlplane")
    save_state(state_dir, state)


def start_node(state_dir: Path, state: dict[str, Any]) -> None:
    info = node.up(state_dir, state["controlplane"], say)
    state["node"] = info
    state["env"]["DJK_REAL_NODE"] = node.NODE_NAME
    state["started"].append("node")
    save_state(state_dir, state)


def start_docker(state_dir: Path, state: dict[str, Any], module: ModuleType) -> None:
    env = module.up(state_dir, lambda line: say(f"  {line}"))
    state["docker_env"] = dict(env)
    state["env"].update(env)
    state["started"].append("docker")
    save_state(state_dir, state)


def start_fake_do(state_dir: Path, state: dict[str, Any]) -> None:
    root = state_dir / "digitalocean"
    root.mkdir(mode=0o700, exist_ok=True)
    # Token and registry login go through 0600 files, never argv (ps shows argv to everyone).
    token = secrets.token_hex(32)
    token_file = root / "access-token"
    token_file.touch(mode=0o600)
    token_file.write_text(token + "\n")
    port_file = root / "port"
    port_file.unlink(missing_ok=True)
    argv = [
        sys.executable,
        str(FAKE_DO),
        "--port-file",
        str(port_file),
        "--admin-kubeconfig",
        state["env"]["KUBECONFIG"],
        "--service-account",
        "/".join(controlplane.DEPLOYER_SERVICE_ACCOUNT),
        "--access-token-file",
        str(token_file),
        "--cluster-name",
        CLUSTER_NAME,
    ]
    env = state["env"]
    if env.get("DJK_REGISTRY"):
        argv += ["--registry", env["DJK_REGISTRY"]]
        if env.get("DJK_REGISTRY_USER") and env.get("DJK_REGISTRY_PASSWORD"):
            login = root / "registry-login"
            login.touch(mode=0o600)
            login.write_text(f"{env['DJK_REGISTRY_USER']}:{env['DJK_REGISTRY_PASSWORD']}\n")
            argv += ["--registry-login-file", str(login)]
        argv += ["--registry-storage", str(state_dir / "docker" / "registry")]
    proc = spawn("fake-digitalocean", argv, state_dir / "logs" / "fake-digitalocean.log")
    info: dict[str, Any] = {"procs": [proc]}
    state["digitalocean"] = info
    save_state(state_dir, state)  # recorded before waiting, so a failed wait is still cleaned up
    wait_for("the fake DigitalOcean API's port file", port_file.exists, timeout=30, watch=[proc])
    url = f"http://127.0.0.1:{int(port_file.read_text().strip())}"
    info["url"] = url
    request = urllib.request.Request(  # noqa: S310 - our loopback URL
        f"{url}/v2/kubernetes/clusters?per_page=200", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            clusters = json.load(response)["kubernetes_clusters"]
        cluster_id = next(c["id"] for c in clusters if c["name"] == CLUSTER_NAME)
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise StackError(
            f"the fake DigitalOcean API does not list cluster {CLUSTER_NAME} ({exc!r}); "
            f"see {proc['log']}"
        ) from exc
    env.update(
        {
            "DIGITALOCEAN_API_URL": url,
            "DIGITALOCEAN_ACCESS_TOKEN": token,
            "DJK_CLUSTER_NAME": CLUSTER_NAME,
            "DJK_CLUSTER_ID": cluster_id,
            "DJK_FAKE_DO_CONTROL": f"{url}/_fake",
        }
    )
    state["started"].append("digitalocean")
    save_state(state_dir, state)


def teardown(state_dir: Path, state: dict[str, Any], names: list[str]) -> None:
    """Stop the named components (reverse order) and forget their runtime state."""
    for name in reversed(names):
        if name == "digitalocean":
            stop(state.get("digitalocean", {}).get("procs", []))
            state.pop("digitalocean", None)
            for key in ("access-token", "registry-login", "port"):
                (state_dir / "digitalocean" / key).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                (state_dir / "digitalocean").rmdir()
            for key in (
                "DIGITALOCEAN_API_URL",
                "DIGITALOCEAN_ACCESS_TOKEN",
                "DJK_CLUSTER_NAME",
                "DJK_CLUSTER_ID",
                "DJK_FAKE_DO_CONTROL",
            ):
                state["env"].pop(key, None)
        elif name == "node":
            stop(state.get("node", {}).get("procs", []))
            node.down(state_dir, state.get("controlplane"))
            state.pop("node", None)
            state["env"].pop("DJK_REAL_NODE", None)
        elif name == "docker":
            module = docker_side()
            if module is not None:
                module.down(state_dir)
            for key in state.pop("docker_env", {}):
                state["env"].pop(key, None)
        elif name == "controlplane":
            procs: list[Proc] = state.get("controlplane", {}).get("procs", [])
            killed = stop(procs)
            if killed:
                say(f"needed SIGKILL: {', '.join(killed)}")
            controlplane.down(state_dir)
            state.pop("controlplane", None)
            for key in ("KUBECONFIG", "DJK_LIMITED_KUBECONFIG"):
                state["env"].pop(key, None)
        if name in state.get("started", []):
            state["started"].remove(name)


def cmd_up(state_dir: Path, skip: set[str]) -> int:
    wanted = ["controlplane", *(c for c in OPTIONAL if c not in skip)]
    module = None
    if "docker" in wanted:
        module = docker_side()
        if module is None:
            say("docker: stack/docker_side.py is missing, skipping it")
            wanted.remove("docker")
    if "digitalocean" in wanted and not FAKE_DO.exists():
        say(f"digitalocean: {FAKE_DO.relative_to(REPO_ROOT)} is missing, skipping it")
        wanted.remove("digitalocean")

    began = time.monotonic()
    with locked(state_dir):
        state = load_state(state_dir) or {}
        state.setdefault("started", [])
        state.setdefault("env", {})
        to_start = [n for n in wanted if not healthy(state_dir, state, n)]
        # The fake DigitalOcean API hands out the control plane's kubeconfig and the registry's
        # login: a new control plane or registry means a new fake too.
        if {"controlplane", "docker"} & set(to_start) and "digitalocean" in wanted:
            to_start = sorted({*to_start, "digitalocean"}, key=wanted.index)
        # The node's certificates come from the control plane's CA: a new one, a new node.
        if "controlplane" in to_start and "node" in wanted:
            to_start = sorted({*to_start, "node"}, key=wanted.index)
        if "node" in to_start:
            # Why the real node cannot start (no root, ...), before minutes of work.
            node.preflight(state_dir, say)
        for name in wanted:
            if name not in to_start:
                say(f"{name}: already up and healthy")
            elif name in state["started"]:
                say(f"{name}: recorded but not healthy (or its dependency restarts); restarting")
        if not to_start:
            say("stack is up")
            return 0
        # Whatever is left of a component about to start goes first (stale pids, half-states).
        teardown(state_dir, state, [n for n in to_start if n in state["started"] or n in state])
        if "controlplane" in to_start:
            # A fresh control plane gets fresh logs; other components' logs are theirs to manage.
            for log in (state_dir / "logs").glob("*.log"):
                if log.stem in (*controlplane.COMPONENTS, "fake-digitalocean"):
                    log.unlink()
        save_state(state_dir, state)
        try:
            timed("binaries", build_binaries)
            for name in to_start:
                if name == "controlplane":
                    timed("controlplane", lambda: start_controlplane(state_dir, state))
                elif name == "node":
                    timed("node", lambda: start_node(state_dir, state))
                elif name == "docker" and module is not None:
                    timed("docker", lambda: start_docker(state_dir, state, module))
                elif name == "digitalocean":
                    timed("digitalocean", lambda: start_fake_do(state_dir, state))
        except BaseException:
            say(f"up failed: stopping what was started; logs stay in {state_dir / 'logs'}")
            teardown(state_dir, state, list(to_start))
            save_state(state_dir, state)
            raise
        save_state(state_dir, state)
    say(f"stack is up ({time.monotonic() - began:.1f}s); `scripts/stack env` prints its settings")
    return 0


def cmd_down(state_dir: Path, only: list[str] | None = None) -> int:
    unknown = sorted(set(only or ()) - set(OPTIONAL))
    if unknown:
        raise StackError(f"not a component down can stop alone: {', '.join(unknown)}")
    with locked(state_dir):
        state = load_state(state_dir)
        if state is None:
            say("stack is not up (nothing recorded)")
            return 0
        began = time.monotonic()
        if only:
            # Some components only (the rest keeps running; `up` starts them again).
            teardown(state_dir, state, [n for n in OPTIONAL if n in only])
            save_state(state_dir, state)
            say(f"{', '.join(only)}: down ({time.monotonic() - began:.1f}s)")
            return 0
        names = ["controlplane", *OPTIONAL]
        teardown(
            state_dir, state, [n for n in names if n in state.get("started", []) or n in state]
        )
        (state_dir / "state.json").unlink(missing_ok=True)
    say(f"stack is down ({time.monotonic() - began:.1f}s); logs kept in {state_dir / 'logs'}")
    return 0


def cmd_status(state_dir: Path) -> int:
    """Exit 0 only if the control plane and every other component that was started answer.

    `scripts/test` starts the stack unless this says it is up: a half-up stack (a component
    recorded but not finished starting) or one that was never started must not pass."""
    state = load_state(state_dir)
    if state is None:
        say("stack is not up")
        return 1
    started = state.get("started", [])
    all_ok = "controlplane" in started
    for name in ["controlplane", *OPTIONAL]:
        if name not in started:
            if name in state:
                print(f"{name}: recorded but never finished starting: NOT OK")
                all_ok = False
            else:
                print(f"{name}: not started")
            continue
        for what, ok in component_status(state_dir, state, name):
            all_ok &= ok
            print(f"{name}: {what}: {'ok' if ok else 'NOT OK'}")
    if "controlplane" not in started:
        say("stack is not up: the control plane is not started")
    return 0 if all_ok else 1


def cmd_env(state_dir: Path) -> int:
    state = load_state(state_dir)
    if state is None or "controlplane" not in state.get("started", []):
        raise StackError("stack is not up; run scripts/stack up")
    for name, value in sorted(state["env"].items()):
        print(f"export {name}={shlex.quote(str(value))}")
    return 0


def cmd_real_node_namespace(state_dir: Path, namespace: str) -> int:
    """Create (or annotate) a namespace whose pods the API server places on the real node."""
    state = load_state(state_dir)
    if state is None or "node" not in state.get("started", []):
        raise StackError("the stack runs no real node; run scripts/stack up (without --skip node)")
    cp = state["controlplane"]
    api = controlplane.Api(int(cp["ports"]["kube-apiserver"]), Path(cp["pki"]))
    annotations = node.namespace_annotations()
    meta = {"name": namespace, "annotations": annotations}
    status, answer = api.call(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
    )
    if status == 409:
        status, answer = api.call(
            "PATCH",
            f"/api/v1/namespaces/{namespace}",
            {"metadata": {"annotations": annotations}},
            content_type="application/merge-patch+json",
        )
    if status not in (200, 201):
        message = answer.get("message") if isinstance(answer, dict) else answer
        raise StackError(f"namespace {namespace}: {status} {message}")
    say(f"namespace {namespace}: its pods go to node {node.NODE_NAME} (annotations set)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/stack", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start whatever is not running, wait until ready")
    up.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=OPTIONAL,
        help="leave out an optional component (repeatable)",
    )
    down = commands.add_parser("down", help="stop exactly what up started; keep caches and logs")
    down.add_argument(
        "only",
        nargs="*",
        metavar="COMPONENT",
        help=f"stop only these ({', '.join(OPTIONAL)}); up starts them again",
    )
    commands.add_parser("status", help="each component and whether it answers")
    commands.add_parser("env", help="export lines for KUBECONFIG, DIGITALOCEAN_*, DJK_*")
    placed = commands.add_parser(
        "real-node-namespace",
        help="create or annotate a namespace so its pods run on the real node",
    )
    placed.add_argument("namespace")
    args = parser.parse_args(argv)
    state_dir = default_state_dir()
    try:
        if args.command == "up":
            return cmd_up(state_dir, set(args.skip))
        if args.command == "down":
            return cmd_down(state_dir, args.only)
        if args.command == "status":
            return cmd_status(state_dir)
        if args.command == "real-node-namespace":
            return cmd_real_node_namespace(state_dir, args.namespace)
        return cmd_env(state_dir)
    except StackError as exc:
        print(f"scripts/stack {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"scripts/stack {args.command}: interrupted", file=sys.stderr)
        return 130
