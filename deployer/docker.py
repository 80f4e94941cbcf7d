"""The one place that runs the docker CLI: daemon check, login, build, push, digest, "does it exist".

Credentials go to a private, throw-away DOCKER_CONFIG (mode 0700, outside the workspace) through
`--password-stdin`; never argv, never the user's ~/.docker. Child processes are killed when we are
cancelled, and get only the environment docker needs (`child_environment`): never the action's
`INPUT_*` variables, the DigitalOcean token or the registry password.

Whatever docker answers is another program's text: a digest is used only if it is `sha256:` and
64 hex digits, a daemon version only if it looks like one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deployer.errors import InputError, ServiceError

_DIGEST_RE = re.compile(r"digest: (sha256:[0-9a-f]{64})(?![0-9A-Za-z])")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$")
# What the docker CLI and buildx read from the environment; everything else stays with us.
_CHILD_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "LC_ALL",
        "TZ",
        "TMPDIR",
        "XDG_RUNTIME_DIR",
        "DOCKER_HOST",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "DOCKER_CONTEXT",
        "DOCKER_API_VERSION",
        "DOCKER_BUILDKIT",
        "BUILDKIT_PROGRESS",
        "BUILDX_BUILDER",
        "BUILDX_NO_DEFAULT_ATTESTATIONS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    }
)


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The docker CLI's environment: the few variables it reads, nothing secret, no INPUT_*."""
    return {k: v for k, v in env.items() if k in _CHILD_ENV_NAMES}


def checked_digest(value: object, where: str) -> str:
    """A digest from another program, used only if it is one (it ends up in the manifests)."""
    if isinstance(value, str) and DIGEST_RE.match(value):
        return value
    raise ServiceError(
        "registry",
        f"{where} answered an invalid digest {_shown(value)} (expected sha256: and 64 hex digits)",
        hint="Check the registry; the image was not deployed.",
    )


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:76] + "…" + text[-1]


# Where the docker CLI looks for plugins after `$DOCKER_CONFIG/cli-plugins` and the config's
# `cliPluginsExtraDirs` (docker/cli: cli-plugins/manager, defaultSystemPluginDirs on Linux).
SYSTEM_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)
_PLUGIN_NAME = re.compile(r"^docker-[a-z][a-z0-9]*$")


def user_plugin_dirs(env: Mapping[str, str]) -> list[Path]:
    """The plugin directories the user's own docker searches before the system ones: their
    config directory's `cli-plugins` ($DOCKER_CONFIG, else ~/.docker) and the `cliPluginsExtraDirs`
    of its config.json (of which nothing else is read: it may hold credentials)."""
    home = env.get("HOME", "")
    config = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else Path(home, ".docker")
    dirs = [config / "cli-plugins"]
    try:
        settings = json.loads((config / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        settings = None
    extra = settings.get("cliPluginsExtraDirs") if isinstance(settings, dict) else None
    for entry in extra if isinstance(extra, list) else []:
        if isinstance(entry, str) and entry:
            dirs.append(Path(os.path.expanduser(entry)) if entry.startswith("~") else Path(entry))
    return dirs


def find_user_plugins(env: Mapping[str, str]) -> dict[str, Path]:
    """docker-<name> executables in the user's plugin directories, the first of each name (the
    CLI's own precedence). The system directories need no help: every DOCKER_CONFIG sees them."""
    found: dict[str, Path] = {}
    for directory in user_plugin_dirs(env):
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if (
                _PLUGIN_NAME.match(entry.name)
                and entry.name not in found
                and entry.is_file()
                and os.access(entry, os.X_OK)
            ):
                found[entry.name] = entry
    return found


_NOT_FOUND_MARKERS = ("no such manifest", "manifest unknown", "not found", "name unknown")
_AUTH_MARKERS = ("unauthorized", "denied", "authentication required", "no basic auth credentials")


@dataclass(frozen=True)
class BuildRequest:
    ref: str
    context: Path
    dockerfile: Path
    build_args: tuple[tuple[str, str], ...] = ()
    target: str = ""
    network: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    # Registry build cache: import layers from this reference (an image pushed with inline cache
    # metadata, or a cache manifest) and write inline cache metadata into the new image.
    cache_from: str = ""
    inline_cache: bool = False
    # BuildKit secrets (id, value): handed over as files in a private directory, never in argv.
    secrets: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # Attestations (BuildKit only; empty: the flag is not passed): `--provenance` false,
    # mode=min or mode=max; `--sbom` false or true.
    provenance: str = ""
    sbom: str = ""


class Docker:
    def __init__(self, *, env: Mapping[str, str], docker: str = "docker") -> None:
        """`env` is the environment the docker CLI runs with (handed over by the CLI: only
        settings and the entry points read the process environment)."""
        self.binary = shutil.which(docker, path=env.get("PATH")) or docker
        self.config_dir = Path(tempfile.mkdtemp(prefix="djk-docker-config-"))
        os.chmod(self.config_dir, 0o700)
        base = child_environment(env)
        base["DOCKER_CONFIG"] = str(self.config_dir)
        self.env = base
        # The private config hides the user's ~/.docker/cli-plugins (buildx installed there, as
        # Docker Desktop and `docker buildx install` do): link their plugins in, and nothing else.
        self.plugin_dirs = [*user_plugin_dirs(env), *map(Path, SYSTEM_PLUGIN_DIRS)]
        plugins = find_user_plugins(env)
        if plugins:
            linked = self.config_dir / "cli-plugins"
            linked.mkdir(mode=0o700)
            for name, path in plugins.items():
                (linked / name).symlink_to(path.resolve())
        self._buildkit: bool | None = None
        self._running: subprocess.Popen[str] | None = None
        self._stopped = False

    def buildkit(self) -> bool:
        """Does `docker build` use BuildKit here (buildx plugin present, not switched off)? Cache
        import/export and secrets need it; the legacy builder knows neither."""
        if self._buildkit is None:
            self._buildkit = self.env.get("DOCKER_BUILDKIT", "1") not in ("0", "false") and (
                _has_buildx(self)
            )
        return self._buildkit

    def without_buildkit(self) -> str:
        """Why builds go to the legacy builder ('' when they do not): for one clear line."""
        if self.buildkit():
            return ""
        if self.env.get("DOCKER_BUILDKIT", "1") in ("0", "false"):
            return "DOCKER_BUILDKIT=0 turns BuildKit off"
        home = self.env.get("HOME") or ""
        shown = ", ".join(
            "~" + str(d)[len(home) :] if home and str(d).startswith(home + "/") else str(d)
            for d in self.plugin_dirs
        )
        return f"no docker-buildx plugin in {shown}"

    def stores_attestations(self) -> bool:
        """Can this engine's image store hold attestations? The containerd image store can;
        with the classic store, BuildKit's docker driver refuses `--provenance`/`--sbom`."""
        result = self._run(["info", "--format", "{{json .DriverStatus}}"], timeout=30)
        return result.returncode == 0 and "io.containerd.snapshotter" in result.stdout

    def close(self) -> None:
        shutil.rmtree(self.config_dir, ignore_errors=True)

    # -- plumbing --------------------------------------------------------------------------
    def _run(
        self, args: Sequence[str], *, stdin: str | None = None, timeout: float | None = 120
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [self.binary, *args],
                input=stdin,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ServiceError(
                "docker",
                "the docker CLI is not installed",
                hint="Install the Docker CLI (the action image ships one).",
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(
                "docker", f"`docker {args[0]}` did not answer in {timeout:.0f}s"
            ) from exc

    def _stream(self, args: Sequence[str], line: Callable[[str], None]) -> tuple[int, list[str]]:
        """Run with output streamed line by line; kill the child if we are interrupted."""
        tail: list[str] = []
        if self._stopped:
            return -9, ["stopped: another phase failed"]
        with subprocess.Popen(
            [self.binary, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        ) as proc:
            self._running = proc
            try:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    text = raw.rstrip("\n")
                    line(text)
                    tail = [*tail[-39:], text]
                return proc.wait(), tail
            except BaseException:
                _kill_session(proc)
                proc.wait()
                raise
            finally:
                self._running = None

    def stop(self) -> None:
        """Kill the streamed docker command running now (another phase failed): its whole
        session, so the buildx plugin goes too and BuildKit cancels the build."""
        self._stopped = True
        proc = self._running
        if proc is not None and proc.poll() is None:
            _kill_session(proc)

    # -- operations ------------------------------------------------------------------------
    def check_daemon(self) -> str:
        result = self._run(["version", "--format", "{{json .}}"], timeout=30)
        if result.returncode != 0:
            detail = result.stderr.strip().splitlines()[-1:] or ["no answer"]
            raise ServiceError(
                "docker",
                f"cannot reach the Docker daemon: {detail[0]}",
                hint="Container actions need /var/run/docker.sock (Linux runners, not ARC Kubernetes mode).",
            )
        try:
            info = json.loads(result.stdout)
            version = (info.get("Server") or {}).get("Version") if isinstance(info, dict) else None
        except (json.JSONDecodeError, AttributeError):
            version = None
        return version if isinstance(version, str) and _VERSION_RE.match(version) else "unknown"

    def login(self, registry: str, username: str, password: str) -> None:
        result = self._run(
            ["login", "--username", username, "--password-stdin", registry], stdin=password
        )
        if result.returncode != 0:
            lines = [t for t in result.stderr.splitlines() if t.strip()] or ["login failed"]
            # The registry's reason may be on any line; show the one that says it, else the last.
            message = next(
                (t for t in lines if any(m in t.lower() for m in _AUTH_MARKERS)), lines[-1]
            ).strip()
            if any(m in message.lower() for m in _AUTH_MARKERS):
                raise InputError(
                    f"the registry {registry} refused the credentials: {message}",
                    where="registry-password",
                    hint="Check registry-username and registry-password (and the secret is set).",
                )
            raise ServiceError(f"registry {registry}", f"login failed: {message}")

    def exists(self, ref: str) -> bool:
        """Does the registry already hold this tag? Unknown (other errors) raises."""
        args = ["manifest", "inspect"]
        if _is_local_registry(ref):
            args.append("--insecure")
        result = self._run([*args, ref], timeout=60)
        if result.returncode == 0:
            return True
        message = (result.stderr or result.stdout).strip().lower()
        if any(m in message for m in _NOT_FOUND_MARKERS):
            return False
        if any(m in message for m in _AUTH_MARKERS):
            raise InputError(
                f"the registry refused to show {ref}: {message.splitlines()[-1]}",
                where="registry-password",
                hint="Give registry credentials that may pull and push this image.",
            )
        raise ServiceError(
            "registry", f"cannot check whether {ref} exists: {message.splitlines()[-1:]}"
        )

    def build(self, request: BuildRequest, line: Callable[[str], None]) -> None:
        args = ["build", "--tag", request.ref, "--file", str(request.dockerfile)]
        for key, value in request.build_args:
            args += ["--build-arg", f"{key}={value}"]
        for key, value in request.labels:
            args += ["--label", f"{key}={value}"]
        if request.target:
            args += ["--target", request.target]
        if request.network:
            args += ["--network", request.network]
        if request.cache_from:
            # The short form is `type=registry,ref=...` to buildx and a plain image to the legacy builder.
            args += ["--cache-from", request.cache_from]
        if request.inline_cache:
            args += ["--cache-to", "type=inline"]
        if request.provenance:
            args.append(f"--provenance={request.provenance}")
        if request.sbom:
            args.append(f"--sbom={request.sbom}")
        if request.secrets and not self.buildkit():
            raise InputError(
                "build secrets need BuildKit, and this docker CLI has no buildx plugin",
                where="build-secrets",
                hint="Install docker-buildx (the action image has it), or drop build-secrets.",
            )
        secret_dir = _private_dir() if request.secrets else ""
        try:
            for number, (secret_id, value) in enumerate(request.secrets):
                # Values go in files (memory-backed where possible) the CLI reads: argv is
                # visible to every process on the machine, and the environment leaks into children.
                path = os.path.join(secret_dir, str(number))
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                    out.write(value)
                args += ["--secret", f"id={secret_id},src={path}"]
            args.append(str(request.context))
            code, tail = self._stream(args, line)
        finally:
            if secret_dir:
                shutil.rmtree(secret_dir, ignore_errors=True)
        if code != 0:
            last = next((t for t in reversed(tail) if t.strip()), "no output")
            raise InputError(
                f"docker build failed (exit {code}): {last.strip()}",
                where="dockerfile",
                hint="Fix the build (its log is above), or set build: never to deploy an existing image.",
            )

    def push(self, ref: str, line: Callable[[str], None]) -> str:
        """Push and return the digest the registry assigned."""
        code, tail = self._stream(["push", ref], line)
        if code != 0:
            last = next((t for t in reversed(tail) if t.strip()), "no output")
            if any(m in last.lower() for m in _AUTH_MARKERS):
                raise InputError(
                    f"the registry refused the push of {ref}: {last.strip()}",
                    where="registry-password",
                    hint="Use credentials with write access (GHCR: permissions packages: write).",
                )
            raise ServiceError("registry", f"docker push failed (exit {code}): {last.strip()}")
        for text in reversed(tail):
            match = _DIGEST_RE.search(text)
            if match:
                return match.group(1)
        return self.remote_digest(ref)

    def cache_state(self, ref: str) -> str:
        """Empty when the cache reference can be read, else why not (never fatal: no cache only
        means a full build)."""
        args = ["manifest", "inspect"]
        if _is_local_registry(ref):
            args.append("--insecure")
        try:
            result = self._run([*args, ref], timeout=60)
        except ServiceError as exc:
            return str(exc)
        if result.returncode == 0:
            return ""
        message = (result.stderr or result.stdout).strip()
        if any(m in message.lower() for m in _NOT_FOUND_MARKERS):
            return "not in the registry yet"
        return (message.splitlines() or ["no answer"])[-1]

    def push_cache(self, ref: str, cache_ref: str) -> str:
        """Point `cache_ref` at the image just pushed (its config carries the inline cache): only
        a manifest goes up, the layers are there already. Empty on success, else why not (never
        fatal: a refused cache write only costs the next build its cache)."""
        tagged = self._run(["tag", ref, cache_ref], timeout=60)
        if tagged.returncode != 0:
            return (tagged.stderr.strip().splitlines() or ["docker tag failed"])[-1]
        try:
            pushed = self._run(["push", cache_ref], timeout=600)
        except ServiceError as exc:
            return str(exc)
        finally:
            self._run(["image", "rm", cache_ref], timeout=60)  # the tag only; the image stays
        if pushed.returncode != 0:
            return ((pushed.stderr or pushed.stdout).strip().splitlines() or ["push failed"])[-1]
        return ""

    def remote_digest(self, ref: str) -> str:
        """The digest `docker pull ref` resolves to (the index digest for multi-platform images)."""
        if shutil.which("docker-buildx") or _has_buildx(self):
            result = self._run(
                ["buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}"]
            )
            if result.returncode == 0:
                try:
                    found = json.loads(result.stdout)["digest"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    pass
                else:
                    return checked_digest(found, "docker buildx imagetools inspect")
        args = ["manifest", "inspect", "--verbose"]
        if _is_local_registry(ref):
            args.append("--insecure")
        result = self._run([*args, ref])
        if result.returncode != 0:
            raise ServiceError(
                "registry", f"cannot read the digest of {ref}: {result.stderr.strip()}"
            )
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise ServiceError(
                "registry", f"docker manifest inspect answered no JSON for {ref}"
            ) from exc
        if isinstance(data, list):
            raise ServiceError(
                "registry", f"{ref} is a multi-platform index; install buildx to pin its digest"
            )
        descriptor = data.get("Descriptor") if isinstance(data, dict) else None
        found = descriptor.get("digest") if isinstance(descriptor, dict) else None
        return checked_digest(found, "docker manifest inspect")


# Memory-backed, so build secrets never reach a disk; mkdtemp makes a fresh 0700 directory.
_SHM = "/dev/shm"  # noqa: S108


def _private_dir() -> str:
    base = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None
    return tempfile.mkdtemp(prefix="djk-build-secrets-", dir=base)


def _kill_session(proc: subprocess.Popen[str]) -> None:
    # start_new_session: the child leads its own process group (docker plus its CLI plugin).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _has_buildx(docker: Docker) -> bool:
    return docker._run(["buildx", "version"], timeout=20).returncode == 0


def _is_local_registry(ref: str) -> bool:
    host = ref.split("/", 1)[0]
    return host.startswith(("localhost", "127.")) or host == "[::1]" or host.startswith("[::1]:")
