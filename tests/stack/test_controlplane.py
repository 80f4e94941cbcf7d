"""scripts/stack itself: certificates, process bookkeeping, and a whole up/down cycle.

The first tests need no stack (openssl and processes only); the cycle test starts a second,
private control plane in a temporary state directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stack import Proc, StackError, is_running, spawn, stop, wait_for
from stack.controlplane import make_pki

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK = [sys.executable, str(REPO_ROOT / "scripts" / "stack")]
# A private control plane beside the session's stack: without the real node, of which a machine
# runs one (the session's; tests/stack/test_node.py takes it down and up).
PRIVATE = ("--skip", "node", "--skip", "docker", "--skip", "digitalocean")


# -- certificates -------------------------------------------------------------------------------


def _strict(context: ssl.SSLContext) -> ssl.SSLContext:
    # What Python 3.13 turns on by default; 3.11 has the flag but not the default.
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def test_the_pki_passes_strict_verification_both_ways(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    make_pki(pki)
    server_ctx = _strict(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    server_ctx.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
    server_ctx.load_verify_locations(pki / "ca.crt")
    server_ctx.verify_mode = ssl.CERT_REQUIRED  # the apiserver's --client-ca-file check
    client_ctx = _strict(ssl.create_default_context(cafile=str(pki / "ca.crt")))
    client_ctx.load_cert_chain(pki / "admin.crt", pki / "admin.key")

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)  # a failed handshake must not leave the server thread waiting
    # "kubernetes.default.svc" is how in-cluster clients name the apiserver.
    names = ("127.0.0.1", "kubernetes.default.svc")
    seen: dict[str, object] = {}

    def serve() -> None:
        for _ in names:
            try:
                conn, _ = listener.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    seen["client"] = tls.getpeercert()
                    tls.sendall(b"ok")
            except (ssl.SSLError, TimeoutError) as exc:
                seen["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        for name in names:
            raw = socket.create_connection(listener.getsockname(), timeout=5)
            with client_ctx.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.recv(2) == b"ok"
    finally:
        thread.join(5)
        listener.close()
    assert "error" not in seen, seen
    subject = dict(pair[0] for pair in seen["client"]["subject"])  # type: ignore[index]
    assert subject == {"organizationName": "system:masters", "commonName": "djk-admin"}
    assert all((pki / f"{key}.key").stat().st_mode & 0o077 == 0 for key in ("ca", "admin", "sa"))


# -- process bookkeeping ------------------------------------------------------------------------


def test_a_recorded_pid_with_another_start_time_is_not_ours(tmp_path: Path) -> None:
    proc = spawn("sleeper", ["sleep", "30"], tmp_path / "sleeper.log")
    try:
        assert is_running(proc)
        impostor: Proc = {**proc, "start": "1"}  # same pid, reused by some other process
        assert not is_running(impostor)
        assert stop([impostor]) == []
        assert is_running(proc), "stop() must never signal a process it did not start"
    finally:
        stop([proc])
    assert not is_running(proc)


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60); print('slept', flush=True)"
    )
    log = tmp_path / "stubborn.log"
    stubborn = spawn("stubborn", [sys.executable, "-c", code], log)
    wait_for("stubborn to ignore SIGTERM", lambda: b"ready" in log.read_bytes(), timeout=10)
    began = time.monotonic()
    assert stop([stubborn], grace=0.5) == ["stubborn"]  # named: it took a SIGKILL
    assert not is_running(stubborn)
    assert time.monotonic() - began >= 0.5  # SIGTERM got its grace first
    assert b"slept" not in log.read_bytes()  # killed mid-sleep, not waited out


def test_wait_for_fails_at_once_with_the_log_of_a_process_that_died(tmp_path: Path) -> None:
    dying = spawn("dying", ["sh", "-c", "echo 'bad flag --foo'; exit 3"], tmp_path / "dying.log")
    # `ready` never holds: the only other way out is "timed out after 120s", so this message
    # shows the death ended the wait, not the timeout
    with pytest.raises(StackError, match=r"^dying exited while waiting for Godot") as failure:
        wait_for("Godot", lambda: False, timeout=120, watch=[dying])
    assert "bad flag --foo" in str(failure.value)


# -- the command --------------------------------------------------------------------------------


def run_stack(
    state_dir: Path, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJK_STACK_DIR": str(state_dir)}
    return subprocess.run(
        [*STACK, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def test_env_and_status_say_in_one_line_when_the_stack_is_down(tmp_path: Path) -> None:
    env = run_stack(tmp_path, "env")
    assert env.returncode == 1
    assert env.stdout == ""
    assert env.stderr == "scripts/stack env: stack is not up; run scripts/stack up\n"
    status = run_stack(tmp_path, "status")
    assert status.returncode == 1
    assert "Traceback" not in status.stderr
    assert run_stack(tmp_path, "down").returncode == 0


@pytest.mark.stack
def test_up_is_idempotent_and_down_stops_exactly_what_up_started(tmp_path: Path) -> None:
    # A private control plane: nothing here touches the session's stack.
    state_dir = tmp_path / "stack"
    up = run_stack(state_dir, "up", *PRIVATE)
    assert up.returncode == 0, up.stdout + up.stderr
    for step in ("binaries: ready in", "etcd:", "kube-apiserver:", "controlplane: ready in"):
        assert step in up.stdout
    state = json.loads((state_dir / "state.json").read_text())
    procs = state["controlplane"]["procs"]
    assert [p["name"] for p in procs] == [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ]
    assert all(is_running(p) for p in procs)
    assert (state_dir / "state.json").stat().st_mode & 0o077 == 0

    again = run_stack(state_dir, "up", *PRIVATE)
    assert again.returncode == 0
    assert "controlplane: already up and healthy" in again.stdout
    assert "starting" not in again.stdout
    assert json.loads((state_dir / "state.json").read_text())["controlplane"]["procs"] == procs

    status = run_stack(state_dir, "status")
    assert status.returncode == 0, status.stdout
    assert "node/kwok-node-0 Ready: ok" in status.stdout
    env = run_stack(state_dir, "env").stdout
    assert f"export KUBECONFIG={state_dir / 'admin.kubeconfig'}\n" in env
    assert f"export DJK_LIMITED_KUBECONFIG={state_dir / 'limited.kubeconfig'}\n" in env

    # Every listening socket of ours is on loopback.
    ports = state["controlplane"]["ports"]
    ss = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True)
    listening = ss.stdout
    for pid in (p["pid"] for p in procs):
        for line in (row for row in listening.splitlines() if f"pid={pid}," in row):
            assert line.split()[3].startswith("127.0.0.1:"), line
    assert f"127.0.0.1:{ports['kube-apiserver']}" in listening

    down = run_stack(state_dir, "down")
    assert down.returncode == 0, down.stderr
    assert not any(is_running(p) for p in procs)
    assert "SIGKILL" not in down.stdout
    assert not (state_dir / "state.json").exists()
    assert not (state_dir / "admin.kubeconfig").exists()
    assert (state_dir / "logs" / "kube-apiserver.log").exists()
    assert run_stack(state_dir, "status").returncode == 1


@pytest.mark.stack
def test_up_replaces_a_half_dead_stack(tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    skip = PRIVATE
    assert run_stack(state_dir, "up", *skip).returncode == 0
    try:
        first = json.loads((state_dir / "state.json").read_text())["controlplane"]["procs"]
        scheduler = next(p for p in first if p["name"] == "kube-scheduler")
        os.kill(scheduler["pid"], signal.SIGKILL)
        wait_for("the scheduler to die", lambda: not is_running(scheduler), timeout=10)
        status = run_stack(state_dir, "status")
        assert status.returncode == 1
        assert "kube-scheduler: NOT OK" in status.stdout

        up = run_stack(state_dir, "up", *skip)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "controlplane: ready in" in up.stdout
        assert not any(is_running(p) for p in first), "the old processes were stopped"
        assert run_stack(state_dir, "status").returncode == 0
    finally:
        run_stack(state_dir, "down")
