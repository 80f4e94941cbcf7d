"""The Docker side of the local stack: a daemon, a registry with htpasswd auth, local base images.

`up` returns the env the tests and the demo need (DJK_REGISTRY, DJK_REGISTRY_USER,
DJK_REGISTRY_PASSWORD, DJK_BASE_IMAGE, DJK_DOCKER_CLI_IMAGE, and DOCKER_HOST when the daemon is
ours); `down` stops exactly what `up` started; `status` says what answers.

- Daemons: the Docker engines GitHub's hosted runners run, built from the Go module proxy by
  `scripts/build-binaries engines` with the containerd and runc they start: engine 28 (28.0.4,
  as on ubuntu-24.04: classic image store, overlay2) and engine 29 (moby v2, as on ubuntu-26.04:
  a fresh data-root, so the containerd image store). Both run, each on its own socket and
  data-root; DOCKER_HOST names the primary one (`DJK_DOCKER_ENGINE`, default 28) and
  DJK_DOCKER_HOST_28 / DJK_DOCKER_HOST_29 name each. No iptables and no bridge (this machine may
  itself be a container), so builds and containers use `--network=host`; where the kernel
  refuses overlay, the classic store falls back to vfs and the containerd store to the native
  snapshotter (`DJK_DOCKER_STORAGE_DRIVER` forces one). Data-roots live in the state dir and
  survive `down`, so the images below are normally still there on the next `up`.
- Registry: Debian's docker-registry binary (no images can be pulled here) on 127.0.0.1 with a
  user and password made per `up`. 127.0.0.0/8 is an insecure registry by default in dockerd, so
  plain HTTP with basic auth works and no TLS is needed.
- Images, each labelled with the key of the recipe that made it and rebuilt only when that key
  changes: `djk/base:bookworm` (debootstrap minbase + python3, venv, pip, and this machine's CA
  bundle, so pip works inside builds behind an intercepting proxy; the root filesystem tarball is
  cached in ~/.cache/django-k8s-deploy/images), `djk/docker-cli:29` (the docker CLI and buildx
  from `scripts/build-binaries docker`, at the paths docker:29-cli has them) and
  `djk/kustomize:<version>` (kustomize from `scripts/build-binaries kustomize`, at the path
  registry.k8s.io/kustomize/kustomize has it): the action's Dockerfile copies from both.

Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from stack import (
    REPO_ROOT,
    Log,
    StackError,
    _stat,
    binary_paths,
    free_port,
    is_running,
    spawn,
    stop,
    wait_for,
)

CACHE = Path(os.environ.get("DJK_CACHE") or Path.home() / ".cache" / "django-k8s-deploy")
IMAGE_CACHE = CACHE / "images"
KEY_LABEL = "io.github.django-k8s-deploy.key"
T = TypeVar("T")

BASE_IMAGE = "djk/base:bookworm"
# Bump when the recipe below changes: the key then differs and the image is rebuilt.
BASE_RECIPE = "bookworm-minbase-3"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
DEBIAN_MIRROR = os.environ.get("DJK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_EXTRA_CAS = Path("/usr/local/share/ca-certificates")

DOCKER_CLI_IMAGE = "djk/docker-cli:29"
# The version deployer/manifests/kustomize.py pins (read from there: one place to bump).
KUSTOMIZE_IMAGE = "djk/kustomize:" + next(
    line.split('"')[1]
    for line in (REPO_ROOT / "deployer" / "manifests" / "kustomize.py").read_text().splitlines()
    if line.startswith("KUSTOMIZE_VERSION = ")
)
KUSTOMIZE_PATH_IN_IMAGE = "app/kustomize"
# Where docker.io/library/docker:29-cli keeps them; the action's Dockerfile copies these paths.
CLI_PATH_IN_IMAGE = "usr/local/bin/docker"
BUILDX_PATH_IN_IMAGE = "usr/local/libexec/docker/cli-plugins/docker-buildx"
# Last resort when the CLI cannot be built: the machine's own (28.x, API 1.50, still >= 1.44).
FALLBACK_CLI = Path("/usr/local/bin/docker")
FALLBACK_BUILDX_DIRS = (
    Path("/usr/local/libexec/docker/cli-plugins"),
    Path("/usr/local/lib/docker/cli-plugins"),
    Path("/usr/libexec/docker/cli-plugins"),
    Path("/usr/lib/docker/cli-plugins"),
)

# command -> Debian package that provides it
APT_PACKAGES = {
    "docker-registry": "docker-registry",
    "debootstrap": "debootstrap",
    "htpasswd": "apache2-utils",
    # GitHub's Ubuntu runners ship pigz, and dockerd and containerd decompress pulled layers with
    # unpigz when it is on their PATH (Go's gzip otherwise, 0.5 s slower for a 29 MB layer here):
    # without it the stack's pulls are slower than a runner's.
    "unpigz": "pigz",
}
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# A unix socket path longer than this does not fit in sockaddr_un (108 bytes with the NUL).
MAX_SOCKET_PATH = 100


# -- public interface ---------------------------------------------------------------------------


def up(state_dir: Path, log: Log) -> dict[str, str]:
    """Start (or find) the daemon, start the registry, make the images; return the env."""
    root = state_dir / "docker"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Whatever an earlier up of this state dir left running is stopped, not orphaned.
    down(state_dir)
    state: dict[str, Any] = {"procs": [], "env": {}}
    _save(root, state)

    _step(log, "packages", lambda: _install_missing(log))
    binaries = _step(log, "engine binaries", lambda: _engine_binaries(log))
    primary_engine = _primary_engine()
    engine_envs: dict[str, dict[str, str]] = {}
    # The primary first: DOCKER_HOST answers before the other engine starts.
    for engine in sorted(ENGINES.values(), key=lambda e: e is not primary_engine):
        engine_envs[engine.name] = _step(
            log,
            f"daemon {engine.name}",
            functools.partial(_daemon, state_dir, root, state, engine, binaries, log),
        )
    primary = engine_envs[primary_engine.name]
    state["docker_env"] = primary
    state["engine_envs"] = engine_envs
    _save(root, state)
    registry_env = _step(log, "registry", lambda: _registry(state_dir, root, state, primary))
    for name, docker_env in engine_envs.items():
        if docker_env is not primary:
            _check_login(
                docker_env,
                registry_env["DJK_REGISTRY"],
                registry_env["DJK_REGISTRY_USER"],
                registry_env["DJK_REGISTRY_PASSWORD"],
            )
        _step(
            log,
            f"engine {name}: image {BASE_IMAGE}",
            functools.partial(_base_image, state_dir, docker_env, log),
        )
        _step(
            log,
            f"engine {name}: image {DOCKER_CLI_IMAGE}",
            functools.partial(_docker_cli_image, docker_env, log),
        )
        _step(
            log,
            f"engine {name}: image {KUSTOMIZE_IMAGE}",
            functools.partial(kustomize_image, docker_env, log),
        )

    env = {
        **primary,
        **registry_env,
        "DJK_DOCKER_ENGINE": primary_engine.name,
        **{f"DJK_DOCKER_HOST_{name}": e["DOCKER_HOST"] for name, e in engine_envs.items()},
        "DJK_BASE_IMAGE": BASE_IMAGE,
        "DJK_DOCKER_CLI_IMAGE": DOCKER_CLI_IMAGE,
        "DJK_KUSTOMIZE_IMAGE": KUSTOMIZE_IMAGE,
    }
    state["env"] = env
    _save(root, state)
    return env


def down(state_dir: Path) -> None:
    """Stop the registry and the daemons if `up` started them; keep images, caches and logs."""
    root = state_dir / "docker"
    state = _load(root)
    if state is None:
        return
    stop(state.get("procs", []), grace=30.0)
    # dockerd can leave its network namespace mounted under the exec root.
    for engine in ENGINES.values():
        if any(proc["name"] == engine.process for proc in state.get("procs", [])):
            _unmount_under(_run_dir(root, engine))
    # Credentials are per run: once the registry is gone its password file has no use.
    for name in ("htpasswd", "registry.yml", "state.json"):
        (root / name).unlink(missing_ok=True)


def status(state_dir: Path) -> list[tuple[str, bool]]:
    """Each part and whether it answers right now."""
    root = state_dir / "docker"
    state = _load(root)
    if state is None:
        return [("docker side (not started)", False)]
    checks: list[tuple[str, bool]] = [
        (f"{proc['name']} (pid {proc['pid']})", is_running(proc)) for proc in state["procs"]
    ]
    engine_envs: dict[str, dict[str, str]] = state.get("engine_envs", {})
    if not engine_envs:
        checks.append(("docker daemons", False))
    for name, engine_env in engine_envs.items():
        version = _daemon_version(engine_env)
        checks.append(
            (f"docker engine {name} answers ({version or 'no answer'})", version is not None)
        )
    env: dict[str, str] = state.get("env", {})
    if env.get("DJK_REGISTRY"):
        checks.append(
            (
                f"registry {env['DJK_REGISTRY']} (htpasswd auth)",
                _registry_answers(
                    env["DJK_REGISTRY"], env["DJK_REGISTRY_USER"], env["DJK_REGISTRY_PASSWORD"]
                ),
            )
        )
    else:
        checks.append(("registry", False))
    for name, engine_env in engine_envs.items():
        checks.append(
            (
                f"engine {name}: image {BASE_IMAGE}",
                _image_key(engine_env, BASE_IMAGE) == _base_key(),
            )
        )
        checks.append(
            (
                f"engine {name}: image {DOCKER_CLI_IMAGE}",
                _image_key(engine_env, DOCKER_CLI_IMAGE) != "",
            )
        )
    return checks


def docker_socket(env: Mapping[str, str]) -> Path:
    """The host path of the daemon's socket for an env from `up` (what the harness mounts)."""
    host = env.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return Path(host.removeprefix("unix://"))
    if host:
        raise StackError(f"DOCKER_HOST={host} is not a unix socket; the action needs one to mount")
    return Path("/var/run/docker.sock")


# -- state and small helpers --------------------------------------------------------------------


def _save(root: Path, state: dict[str, Any]) -> None:
    # It holds the registry password: owner-only, replaced atomically.
    tmp = root / "state.json.tmp"
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, root / "state.json")


def _load(root: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((root / "state.json").read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise StackError(f"{root / 'state.json'} is not valid JSON ({exc}); remove it") from exc
    return state if isinstance(state, dict) else None


def _step(log: Log, what: str, action: Callable[[], T]) -> T:
    started = time.monotonic()
    result = action()
    log(f"docker: {what}: done in {time.monotonic() - started:.1f}s")
    return result


def _which(command: str) -> str | None:
    # root's PATH may lack the sbin directories (dockerd and debootstrap live there).
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    return shutil.which(command, path=path)


def _need(command: str) -> str:
    found = _which(command)
    if found is None:
        raise StackError(f"{command} not found (Debian package {APT_PACKAGES.get(command, '?')})")
    return found


def _run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float,
    stdin: str | None = None,
    what: str,
    log_path: Path | None = None,
) -> str:
    """Run a command to completion; fail with one line and the tail of its output."""
    full_env = {**os.environ, **(env or {})}
    try:
        result = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what}: no answer from {argv[0]} within {timeout:.0f}s") from exc
    except OSError as exc:
        raise StackError(f"{what}: cannot run {argv[0]}: {exc.strerror}") from exc
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        where = f" (full output: {log_path})" if log_path else ""
        raise StackError(f"{what} failed (exit {result.returncode}){where}:\n{tail}")
    return result.stdout


def _docker(
    docker_env: Mapping[str, str], *args: str, timeout: float = 120, what: str = "docker"
) -> str:
    return _run([_need("docker"), *args], env=docker_env, timeout=timeout, what=what)


# -- packages -----------------------------------------------------------------------------------


def _install_missing(log: Log) -> None:
    missing = sorted({pkg for cmd, pkg in APT_PACKAGES.items() if _which(cmd) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise StackError(
            f"missing Debian packages; as root run: apt-get install {' '.join(missing)}"
        )
    log(f"docker: installing {' '.join(missing)} with apt-get")
    apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], env=apt_env, timeout=600, what="apt-get update")
    _run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        env=apt_env,
        timeout=1200,
        what=f"apt-get install {' '.join(missing)}",
    )


# -- daemon -------------------------------------------------------------------------------------


def _daemon_version(docker_env: Mapping[str, str]) -> str | None:
    docker = _which("docker")
    if docker is None:
        return None
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            env={**os.environ, **docker_env},
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = result.stdout.strip()
    return version if result.returncode == 0 and version else None


def _short_dir(preferred: Path, name: str, longest_child: int) -> Path:
    """`preferred`, unless sockets under it would not fit in a unix socket address."""
    if len(str(preferred)) + longest_child <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"djk-{name}-{digest}"


@dataclass(frozen=True)
class Engine:
    """A Docker engine a hosted runner runs, and how the stack starts it like the runner does."""

    name: str  # "28", "29": what DJK_DOCKER_ENGINE and DJK_DOCKER_HOST_<name> say
    binary: str  # the `scripts/build-binaries paths` name of its dockerd
    build: str  # the `scripts/build-binaries` target that makes it
    runner: str  # the hosted runner image that runs this engine
    containerd_store: bool  # the image store a fresh install of it uses

    @property
    def process(self) -> str:
        return f"dockerd-{self.name}"

    def storage_drivers(self) -> list[str | None]:
        """What to try, in order (None: the engine's own default, as a fresh install has)."""
        forced = os.environ.get("DJK_DOCKER_STORAGE_DRIVER")
        if forced:
            return [forced]
        # overlay first: a container starts in well under a second on it, against 10-20 s on
        # vfs/native (which copy the whole image per container); those work on any filesystem.
        return [None, "native"] if self.containerd_store else ["overlay2", "vfs"]


ENGINES = {
    engine.name: engine
    for engine in (
        Engine("28", "DOCKERD28_BIN", "dockerd28", "ubuntu-24.04", containerd_store=False),
        Engine("29", "DOCKERD29_BIN", "dockerd29", "ubuntu-26.04", containerd_store=True),
    )
}
DEFAULT_ENGINE = "28"  # what ubuntu-latest (ubuntu-24.04) runs


def _primary_engine() -> Engine:
    name = os.environ.get("DJK_DOCKER_ENGINE") or DEFAULT_ENGINE
    if name not in ENGINES:
        raise StackError(f"DJK_DOCKER_ENGINE={name} is not one of {', '.join(ENGINES)}")
    return ENGINES[name]


def _engine_binaries(log: Log) -> dict[str, Path]:
    """Every engine's dockerd, and the directories of the containerd and runc they start."""
    built = {
        "containerd": _build_binary("containerd", "CONTAINERD_BIN_DIR", log, directory=True),
        "runc": _build_binary("runc", "RUNC_BIN", log),
        **{e.name: _build_binary(e.build, e.binary, log) for e in ENGINES.values()},
    }
    missing = sorted(name for name, path in built.items() if path is None)
    if missing:
        raise StackError(
            f"cannot build {', '.join(missing)} (see the warnings above and "
            f"{CACHE / 'logs'}/build-*.log); the stack needs every engine"
        )
    return {name: path for name, path in built.items() if path is not None}


def _run_dir(root: Path, engine: Engine) -> Path:
    """Socket, pidfile and exec root of one engine (containerd's sockets live below it)."""
    return _short_dir(
        root / f"run-{engine.name}",
        f"docker-{engine.name}",
        len("/exec/containerd/containerd.sock.ttrpc"),
    )


def _daemon(
    state_dir: Path,
    root: Path,
    state: dict[str, Any],
    engine: Engine,
    binaries: Mapping[str, Path],
    log: Log,
) -> dict[str, str]:
    run_dir = _run_dir(root, engine)
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    socket_path = run_dir / "docker.sock"
    pidfile = run_dir / "dockerd.pid"
    log_path = state_dir / "logs" / f"{engine.process}.log"
    docker_env = {"DOCKER_HOST": f"unix://{socket_path}"}
    version = _daemon_version(docker_env)
    if version is not None:
        # Ours from an earlier run whose state was lost: adopt it, so down stops it.
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            stat = _stat(pid)
            if stat is not None:
                state["procs"].append(
                    {"name": engine.process, "pid": pid, "start": stat[1], "log": str(log_path)}
                )
                _save(root, state)
        log(f"docker: reusing engine {engine.name} already listening on {socket_path} ({version})")
        return docker_env
    # dockerd starts containerd, and containerd the shim and runc, from PATH: ours come first.
    path = os.pathsep.join(
        [str(binaries["containerd"]), str(binaries["runc"].parent), os.environ.get("PATH", "")]
    )
    drivers = engine.storage_drivers()
    for driver in drivers:
        _unmount_under(run_dir)
        socket_path.unlink(missing_ok=True)
        pidfile.unlink(missing_ok=True)
        argv = [
            str(binaries[engine.name]),
            # This machine may be a container without netfilter: no NAT, no bridge, so no
            # docker-proxy either; builds and containers use --network=host and reach the
            # loopback stack that way.
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--userland-proxy=false",
            *([f"--storage-driver={driver}"] if driver else []),
            "--data-root",
            str(root / f"data-{engine.name}"),
            "--exec-root",
            str(run_dir / "exec"),
            "--pidfile",
            str(pidfile),
            "--host",
            f"unix://{socket_path}",
        ]
        proc = spawn(engine.process, argv, log_path, env={**os.environ, "PATH": path})
        state["procs"].append(proc)
        _save(root, state)  # recorded before waiting, so a failed wait is still cleaned up
        try:
            wait_for(
                f"dockerd {engine.name} on {socket_path}",
                lambda: _daemon_version(docker_env) is not None,
                timeout=60,
                watch=[proc],
                interval=0.25,
            )
        except StackError as exc:
            if is_running(proc) or driver == drivers[-1]:
                raise
            # It refused this storage driver and exited: try the next one.
            state["procs"].remove(proc)
            _save(root, state)
            log(f"docker: engine {engine.name} refused storage {driver or 'default'}; next ({exc})")
            continue
        log(
            f"docker: started engine {engine.name} ({_daemon_version(docker_env)}, "
            f"{_image_store(docker_env)} image store, as on {engine.runner}) on {socket_path}"
        )
        # Our own daemon only: images that lost their tag (rebuilt action images) are garbage.
        _docker(docker_env, "image", "prune", "--force", what="docker image prune")
        return docker_env
    raise AssertionError("unreachable: the last driver either answers or raises")


def _image_store(docker_env: Mapping[str, str]) -> str:
    """ "containerd" or "classic": what `docker info` reports of the daemon's image store."""
    out = _docker(docker_env, "info", "--format", "{{json .DriverStatus}}", what="docker info")
    return "containerd" if "io.containerd.snapshotter" in out else "classic"


# -- registry -----------------------------------------------------------------------------------


def _registry_answers(address: str, user: str, password: str) -> bool:
    """True when /v2/ refuses anonymous requests (401) and accepts these credentials (200)."""
    url = f"http://{address}/v2/"
    try:
        urllib.request.urlopen(url, timeout=3)
    except urllib.error.HTTPError as exc:
        if exc.code != 401:
            return False
    except OSError:
        return False
    else:
        return False  # answered anonymously: auth is not on
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def _registry(
    state_dir: Path, root: Path, state: dict[str, Any], docker_env: Mapping[str, str]
) -> dict[str, str]:
    storage = root / "registry"
    # Fresh credentials and fresh storage per run: nothing from an earlier run can leak in.
    shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir(mode=0o700, parents=True)
    user = f"djk-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(24)
    htpasswd = root / "htpasswd"
    htpasswd.unlink(missing_ok=True)
    # -i reads the password from stdin: it never appears in argv (ps shows argv to everyone).
    _run(
        [_need("htpasswd"), "-i", "-B", "-c", str(htpasswd), user],
        stdin=password,
        timeout=30,
        what="htpasswd",
    )
    htpasswd.chmod(0o600)
    port = free_port()
    address = f"127.0.0.1:{port}"
    config = root / "registry.yml"
    config.touch(mode=0o600)
    config.write_text(
        "\n".join(
            [
                "version: 0.1",
                "log:",
                "  level: info",
                "  accesslog:",
                "    disabled: true",
                "storage:",
                "  filesystem:",
                f"    rootdirectory: {json.dumps(str(storage))}",
                "  delete:",
                "    enabled: true",
                "http:",
                f"  addr: {address}",
                f"  secret: {secrets.token_hex(16)}",
                "auth:",
                "  htpasswd:",
                "    realm: djk-local-registry",
                f"    path: {json.dumps(str(htpasswd))}",
                "",
            ]
        )
    )
    proc = spawn(
        "docker-registry",
        [_need("docker-registry"), "serve", str(config)],
        state_dir / "logs" / "registry.log",
    )
    state["procs"].append(proc)
    _save(root, state)
    wait_for(
        f"the registry on {address}",
        lambda: _registry_answers(address, user, password),
        timeout=30,
        watch=[proc],
    )
    _check_login(docker_env, address, user, password)
    return {"DJK_REGISTRY": address, "DJK_REGISTRY_USER": user, "DJK_REGISTRY_PASSWORD": password}


def _check_login(docker_env: Mapping[str, str], address: str, user: str, password: str) -> None:
    """The daemon must accept this registry over plain HTTP; find out now, not in a test."""
    with tempfile.TemporaryDirectory(prefix="djk-docker-config-") as config:
        _run(
            [_need("docker"), "login", "--username", user, "--password-stdin", address],
            env={**docker_env, "DOCKER_CONFIG": config},
            stdin=password,
            timeout=60,
            what=f"docker login {address}",
        )


# -- images -------------------------------------------------------------------------------------


def _image_key(docker_env: Mapping[str, str], image: str) -> str:
    """The recipe key an image of ours carries, "" when the image is absent (or not ours)."""
    docker = _which("docker")
    if docker is None:
        return ""
    try:
        result = subprocess.run(
            [
                docker,
                "image",
                "inspect",
                "--format",
                f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}',
                image,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **docker_env},
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    key = result.stdout.strip()
    return key if result.returncode == 0 and key != "<no value>" else ""


def _import(
    docker_env: Mapping[str, str], tarball: Path, image: str, key: str, changes: Sequence[str]
) -> None:
    argv = ["image", "import", "--change", f"LABEL {KEY_LABEL}={key}"]
    for change in changes:
        argv += ["--change", change]
    _docker(docker_env, *argv, str(tarball), image, timeout=600, what=f"docker import {image}")


def _base_key() -> str:
    digest = hashlib.sha256()
    digest.update(f"{BASE_RECIPE}\n{' '.join(BASE_PACKAGES)}\n{DEBIAN_MIRROR}\n".encode())
    # The machine's CAs are baked in: a changed bundle means a new image.
    with contextlib.suppress(OSError):
        digest.update(HOST_CA_BUNDLE.read_bytes())
    return digest.hexdigest()[:16]


def _base_image(state_dir: Path, docker_env: Mapping[str, str], log: Log) -> str:
    key = _base_key()
    if _image_key(docker_env, BASE_IMAGE) == key:
        log(f"docker: {BASE_IMAGE} is current (key {key})")
        return BASE_IMAGE
    tarball = IMAGE_CACHE / f"base-bookworm-{key}.tar"
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    # Two stacks (separate DJK_STACK_DIRs) share this cache: without the lock, a second
    # debootstrap would delete the first one's root filesystem under it.
    with (IMAGE_CACHE / "base-bookworm.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tarball.exists():
            _build_base_tarball(tarball, state_dir / "logs" / "debootstrap.log", log)
        else:
            log(f"docker: importing {BASE_IMAGE} from the cached {tarball}")
    _import(
        docker_env,
        tarball,
        BASE_IMAGE,
        key,
        [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["/bin/bash"]',
        ],
    )
    return BASE_IMAGE


def _unmount_under(path: Path) -> None:
    """debootstrap mounts /proc and /sys in its target; an interrupted run leaves them there."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    inside = [m.split()[1] for m in mounts if m.split()[1].startswith(f"{path}/")]
    for mountpoint in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)


def _build_base_tarball(tarball: Path, log_path: Path, log: Log) -> None:
    if os.geteuid() != 0:
        raise StackError(
            "building the base image needs root (debootstrap); run scripts/stack as root"
        )
    if not HOST_CA_BUNDLE.exists():
        raise StackError(f"{HOST_CA_BUNDLE} is missing: install ca-certificates on this machine")
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    rootfs = IMAGE_CACHE / f"{tarball.stem}.rootfs"
    _unmount_under(rootfs)
    shutil.rmtree(rootfs, ignore_errors=True)
    log(f"docker: debootstrap bookworm into {rootfs} (a minute or two; log: {log_path})")
    try:
        _run(
            [
                _need("debootstrap"),
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            timeout=1800,
            what="debootstrap bookworm",
            log_path=log_path,
        )
        _customise_rootfs(rootfs)
        partial = tarball.with_suffix(".tar.partial")
        _run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
            timeout=600,
            what="tar of the base root filesystem",
        )
        os.replace(partial, tarball)
    finally:
        _unmount_under(rootfs)
        shutil.rmtree(rootfs, ignore_errors=True)
    for stale in IMAGE_CACHE.glob("base-bookworm-*.tar"):
        if stale != tarball:
            stale.unlink()


def _customise_rootfs(rootfs: Path) -> None:
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {DEBIAN_MIRROR} bookworm main\n"
        f"deb {DEBIAN_MIRROR} bookworm-updates main\n"
        "deb http://deb.debian.org/debian-security bookworm-security main\n"
    )
    # This machine's CAs (an intercepting proxy's among them) so pip and apt work in builds. The
    # extra CAs also go where update-ca-certificates looks, so an image that reruns it keeps them.
    extra_dir = rootfs / "usr/local/share/ca-certificates"
    extra_dir.mkdir(parents=True, exist_ok=True)
    if HOST_EXTRA_CAS.is_dir():
        for cert in HOST_EXTRA_CAS.glob("*.crt"):
            shutil.copyfile(cert, extra_dir / cert.name)
    shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
    # What a container image does without: package caches and lists, docs, man pages, logs.
    for pattern in (
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/*.bin",
        "var/lib/apt/lists/*_*",
        "usr/share/doc/*",
        "usr/share/man/*",
        "usr/share/info/*",
        "var/log/*.log",
        "var/log/apt/*",
    ):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _build_binary(what: str, path_name: str, log: Log, *, directory: bool = False) -> Path | None:
    """One binary (or, with `directory`, a directory of them) from `scripts/build-binaries
    <what>`; None (with the reason logged) if it fails."""
    script = REPO_ROOT / "scripts" / "build-binaries"
    log_path = CACHE / "logs" / f"build-{what}.log"
    try:
        binary = Path(binary_paths()[path_name])
        built = binary.is_dir() and any(binary.iterdir()) if directory else binary.exists()
        if not built:
            log(f"docker: building {what} from the Go module proxy (minutes when cold; {log_path})")
            _run([str(script), what], timeout=3600, what=f"{script} {what}", log_path=log_path)
    except (StackError, KeyError) as exc:
        log(f"docker: WARNING: cannot build {what}: {exc}")
        return None
    return binary


def _built_cli_paths(log: Log) -> tuple[Path, Path | None, str]:
    """(docker, docker-buildx or None, key): built by scripts/build-binaries, else this machine's
    own (the CLI at /usr/local/bin/docker is 28.x, API 1.50: still above the 1.44 floor)."""
    cli = _build_binary("docker-cli", "DOCKER_CLI_BIN", log)
    buildx = _build_binary("buildx", "BUILDX_BIN", log)
    key = f"{cli.parent.name if cli else 'fallback'}+{buildx.parent.name if buildx else 'fallback'}"
    if cli is None:
        if not FALLBACK_CLI.exists():
            raise StackError(f"cannot build the docker CLI and there is no {FALLBACK_CLI} to use")
        cli = FALLBACK_CLI
        log(f"docker: WARNING: {DOCKER_CLI_IMAGE} gets this machine's {FALLBACK_CLI} instead")
    if buildx is None:
        buildx = next(
            (d / "docker-buildx" for d in FALLBACK_BUILDX_DIRS if (d / "docker-buildx").exists()),
            None,
        )
        log(f"docker: WARNING: {DOCKER_CLI_IMAGE} gets buildx from {buildx or 'nowhere: none'}")
    return cli, buildx, key


def _docker_cli_image(docker_env: Mapping[str, str], log: Log) -> str:
    cli, buildx, key = _built_cli_paths(log)
    binaries = [(cli, CLI_PATH_IN_IMAGE)]
    if buildx is not None:
        binaries.append((buildx, BUILDX_PATH_IN_IMAGE))
    return _binaries_image(docker_env, DOCKER_CLI_IMAGE, key, binaries, log)


def kustomize_image(docker_env: Mapping[str, str], log: Log) -> str:
    """`djk/kustomize:<version>`: the binary scripts/build-binaries builds, where the action's
    Dockerfile copies it from (the harness calls this too, for a stack started before it)."""
    binary = _build_binary("kustomize", "KUSTOMIZE_BIN", log)
    if binary is None:
        raise StackError("cannot build kustomize (see the log above)")
    return _binaries_image(
        docker_env, KUSTOMIZE_IMAGE, binary.parent.name, [(binary, KUSTOMIZE_PATH_IN_IMAGE)], log
    )


def _binaries_image(
    docker_env: Mapping[str, str],
    image: str,
    key: str,
    binaries: Sequence[tuple[Path, str]],
    log: Log,
) -> str:
    """An image of nothing but these binaries at these paths, imported unless current."""
    if _image_key(docker_env, image) == key:
        log(f"docker: {image} is current (key {key})")
        return image
    with tempfile.TemporaryDirectory(prefix="djk-binaries-") as tmp:
        tarball = Path(tmp) / "binaries.tar"
        with tarfile.open(tarball, "w") as tar:
            for source, target in binaries:
                parts = target.split("/")
                for depth in range(1, len(parts)):
                    info = tarfile.TarInfo("/".join(parts[:depth]))
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    if info.name not in tar.getnames():
                        tar.addfile(info)
                info = tar.gettarinfo(str(source), arcname=target)
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o755, 0, 0, "root", "root"
                with source.open("rb") as data:
                    tar.addfile(info, data)
        _import(docker_env, tarball, image, key, [])
    return image
