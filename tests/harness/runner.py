"""Build a Docker container action and run it exactly the way the GitHub runner does.

What the runner does (actions/runner ContainerActionHandler / DockerCommandManager; see
../shared/reference/github-runner.md sections 1.1-1.8), and what this harness therefore does:

- Build: `docker build -t <tag> -f <dir>/Dockerfile <dir>`, context = the Dockerfile's directory.
  Locally we add what the machine needs and the runner does not: the legacy builder, `--network
  host` (the stack's daemon has no bridge) and `--build-arg` for the stack's base images (only for
  ARGs the Dockerfile declares). The image is tagged by a hash of what goes into it, so it is built
  once per change, not once per test.
- Run: `docker run --name .. --label .. --workdir /github/workspace --rm -e NAME ... -v ... image`.
  Every variable goes as `-e NAME` with the value in the docker CLI's environment, never in argv
  (argv is visible to every process and logged). `--network host` so the container reaches the
  loopback stack (the runner uses it only with a job container; there the VM's network is it).
- Inputs: every input declared in action.yml as `INPUT_<NAME>` (upper case, spaces to `_`,
  hyphens kept): the given value, else the evaluated default, else "". `required:` is not
  enforced, as on the runner. Undeclared inputs are passed too, with a warning.
- Mounts: the Docker socket at /var/run/docker.sock, the workspace at /github/workspace, a home at
  /github/home (HOME), a workflow dir at /github/workflow (event.json), the file-commands dir at
  /github/file_commands (GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH, GITHUB_STATE,
  GITHUB_STEP_SUMMARY, one fresh file each) and RUNNER_TEMP at /github/runner_temp.
- Cancel: SIGINT to the docker CLI, 7.5 s, SIGTERM, 2.5 s, SIGKILL (docs "Canceling a workflow").

`run_action` returns an `ActionRun`: exit code, the combined stdout+stderr (`log`, raw, as the
runner receives it), `visible_log` (as the runner shows it: masked from each `::add-mask::` on),
outputs and summary parsed the runner's way, the workflow commands, and the files themselves.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stack import StackError
from stack.docker_side import docker_socket as stack_docker_socket
from stack.docker_side import kustomize_image as stack_kustomize_image

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_SCRIPT = REPO_ROOT / "scripts" / "stack"

CONTAINER_WORKSPACE = "/github/workspace"
CONTAINER_HOME = "/github/home"
CONTAINER_WORKFLOW = "/github/workflow"
CONTAINER_FILE_COMMANDS = "/github/file_commands"
CONTAINER_RUNNER_TEMP = "/github/runner_temp"
CONTAINER_DOCKER_SOCKET = "/var/run/docker.sock"

# The stack's base images, passed as build args to Dockerfiles that declare these ARGs.
BUILD_ARG_SOURCES = {
    "BASE_IMAGE": "DJK_BASE_IMAGE",
    "DOCKER_CLI_IMAGE": "DJK_DOCKER_CLI_IMAGE",
    "KUSTOMIZE_IMAGE": "DJK_KUSTOMIZE_IMAGE",
}
BUILD_TIMEOUT = 1800.0
# The runner's cancellation: SIGINT, then SIGTERM after 7.5 s, then a kill 2.5 s later.
CANCEL_GRACE_SIGINT = 7.5
CANCEL_GRACE_SIGTERM = 2.5
SUMMARY_LIMIT = 1024 * 1024  # the runner refuses to upload a larger step summary
# Commands the runner acts on (ActionCommandManager); anything else stays a plain log line.
KNOWN_COMMANDS = frozenset(
    {
        "add-mask",
        "add-matcher",
        "remove-matcher",
        "debug",
        "notice",
        "warning",
        "error",
        "group",
        "endgroup",
        "echo",
        "stop-commands",
        "set-output",
        "save-state",
        "set-env",
        "add-path",
    }
)
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class HarnessError(Exception):
    """The harness could not build or run the action (not: the action failed)."""


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowCommand:
    """One `::name key=value,...::data` line, unescaped the way the runner does."""

    name: str
    properties: dict[str, str]
    data: str
    line: int  # 1-based line number in the log


@dataclass(frozen=True)
class ActionRun:
    exit_code: int
    log: str = field(repr=False)
    argv: tuple[str, ...] = field(repr=False)
    image: str
    duration: float
    cancelled: bool
    workspace: Path
    home: Path
    runner_temp: Path
    event_file: Path
    output_file: Path
    summary_file: Path
    env_file: Path
    path_file: Path
    state_file: Path
    container_env: dict[str, str] = field(repr=False)
    warnings: tuple[str, ...] = ()
    # "Set up job" for this action: building its Dockerfile, or pulling its docker:// image.
    setup_seconds: float = 0.0

    @property
    def outputs(self) -> dict[str, str]:
        """GITHUB_OUTPUT parsed as the runner parses it (`k=v` and `k<<DELIM` heredocs)."""
        return parse_file_command(_read(self.output_file), "GITHUB_OUTPUT")

    @property
    def exported_env(self) -> dict[str, str]:
        return parse_file_command(_read(self.env_file), "GITHUB_ENV")

    @property
    def state(self) -> dict[str, str]:
        return parse_file_command(_read(self.state_file), "GITHUB_STATE")

    @property
    def added_paths(self) -> list[str]:
        return [line for line in _read(self.path_file).splitlines() if line.strip()]

    @property
    def summary(self) -> str:
        """The step summary; the runner would refuse to upload one over 1 MiB, so do we."""
        text = _read(self.summary_file)
        if len(text.encode()) > SUMMARY_LIMIT:
            raise HarnessError(
                f"step summary is {len(text.encode())} bytes: over the runner's 1 MiB limit"
            )
        return text

    @property
    def commands(self) -> list[WorkflowCommand]:
        return parse_workflow_commands(self.log)

    @property
    def visible_log(self) -> str:
        """The log as the runner shows it: `::add-mask::` lines gone, values masked from then on."""
        return mask_log(self.log)

    def annotations(self, level: str = "error") -> list[WorkflowCommand]:
        return [c for c in self.commands if c.name == level]

    def groups(self) -> list[str]:
        return [c.data for c in self.commands if c.name == "group"]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


# -- parsing, the runner's way ------------------------------------------------------------------


def _read_line(text: str, index: int) -> tuple[str | None, int, str | None]:
    """(line, next index, newline used) like FileCommandManager's ReadLine; None at the end."""
    if index >= len(text):
        return None, index, None
    end = text.find("\n", index)
    if end < 0:
        return text[index:], len(text), None
    line = text[index:end]
    if line.endswith("\r"):
        return line[:-1], end + 1, "\r\n"
    return line, end + 1, "\n"


def parse_file_command(text: str, what: str = "file command") -> dict[str, str]:
    """Parse GITHUB_OUTPUT / GITHUB_ENV / GITHUB_STATE text; raise HarnessError where the
    runner would fail the step (its messages, e.g. "Matching delimiter not found")."""
    result: dict[str, str] = {}
    line, index, _ = _read_line(text, 0)
    while line is not None:
        if line:
            equals = line.find("=")
            heredoc = line.find("<<")
            if equals >= 0 and (heredoc < 0 or equals < heredoc):
                key, value = line.split("=", 1)
                if not key:
                    raise HarnessError(f"{what}: Invalid format '{line}'. Name must not be empty")
            elif heredoc >= 0:
                key, delimiter = line.split("<<", 1)
                if not key or not delimiter:
                    raise HarnessError(
                        f"{what}: Invalid format '{line}'. Name must not be empty and "
                        "delimiter must not be empty"
                    )
                start = end = index
                body, index, newline = _read_line(text, index)
                while body != delimiter:
                    if body is None:
                        raise HarnessError(
                            f"{what}: Invalid value. Matching delimiter not found '{delimiter}'"
                        )
                    if newline is None:
                        raise HarnessError(f"{what}: Invalid value. EOF marker missing new line.")
                    end = index - len(newline)
                    body, index, newline = _read_line(text, index)
                value = text[start:end] if end > start else ""
            else:
                raise HarnessError(f"{what}: Invalid format '{line}'")
            result[key] = value
        line, index, _ = _read_line(text, index)
    return result


def _unescape_data(value: str) -> str:
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(value: str) -> str:
    return (
        value.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


def _parse_command_line(line: str) -> tuple[str, dict[str, str], str] | None:
    """ActionCommand.TryParseV2: `::name k=v,k2=v2::data`, leading blanks allowed."""
    message = line.lstrip()
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    space = info.find(" ")
    name = info if space < 0 else info[:space]
    properties: dict[str, str] = {}
    if space > 0:
        for pair in info[space + 1 :].strip().split(","):
            key, sep, value = pair.partition("=")
            if pair and key and sep and value:
                properties[key] = _unescape_property(value)
    return name, properties, _unescape_data(message[end + 2 :])


def _parse_legacy_command_line(
    line: str, stop_token: str | None = None
) -> tuple[str, dict[str, str], str] | None:
    """ActionCommand.TryParse, which the runner still tries when TryParseV2 fails: `##[name
    k=v;k2=v2]data` ANYWHERE in the line, for registered command names only."""
    start = line.find("##[")
    if start < 0:
        return None
    end = line.find("]", start)
    if end < 0:
        return None
    info = line[start + 3 : end]
    space = info.find(" ")
    name = info if space < 0 else info[:space]
    if name not in KNOWN_COMMANDS and name != stop_token:
        return None
    properties: dict[str, str] = {}
    if space > 0:
        for pair in info[space + 1 :].split(";"):
            key, sep, value = pair.partition("=")
            if key and sep and value:
                properties[key] = _unescape_property(value)
    return name, properties, _unescape_data(line[end + 1 :])


def _parse_any_command_line(
    line: str, stop_token: str | None = None
) -> tuple[str, dict[str, str], str] | None:
    parsed = _parse_command_line(line)
    if parsed is not None and (parsed[0] in KNOWN_COMMANDS or parsed[0] == stop_token):
        return parsed
    return _parse_legacy_command_line(line, stop_token) or parsed


def parse_workflow_commands(log: str) -> list[WorkflowCommand]:
    """The commands the runner would act on, in order; honours `::stop-commands::<token>`."""
    commands: list[WorkflowCommand] = []
    stop_token: str | None = None
    for number, line in enumerate(log.splitlines(), start=1):
        parsed = _parse_any_command_line(line, stop_token)
        if parsed is None:
            continue
        name, properties, data = parsed
        if stop_token is not None:
            # While stopped, only `::<token>::` means anything: it resumes processing.
            if name == stop_token:
                stop_token = None
            continue
        if name not in KNOWN_COMMANDS:
            continue
        if name == "stop-commands":
            stop_token = data
        commands.append(WorkflowCommand(name, properties, data, number))
    return commands


def _mask_variants(value: str) -> set[str]:
    """What the runner registers for one add-mask value: each line, plus common encodings."""
    variants = {value, *value.splitlines()}
    for item in list(variants):
        variants.add(base64.b64encode(item.encode()).decode().rstrip("="))
        variants.add(json.dumps(item)[1:-1])
        variants.add(urllib.parse.quote(item, safe=""))
    return {v for v in variants if v.strip()}


class LogMasker:
    """Shows log lines as GitHub does, one at a time: `::add-mask::` masks its value in later
    lines only; mask and stop-commands lines themselves are not shown (None)."""

    def __init__(self) -> None:
        self.masks: set[str] = set()
        self.stop_token: str | None = None

    def feed(self, line: str) -> str | None:
        parsed = _parse_any_command_line(line, self.stop_token)
        if parsed is not None:
            name = parsed[0]
            if self.stop_token is not None:
                if name == self.stop_token:
                    self.stop_token = None
                    return None
            elif name == "stop-commands":
                self.stop_token = parsed[2]
                return None
            elif name == "add-mask":
                self.masks |= _mask_variants(parsed[2])
                return None
        visible = line
        for secret in sorted(self.masks, key=len, reverse=True):
            visible = visible.replace(secret, "***")
        return visible


def mask_log(log: str) -> str:
    """The log as shown on GitHub: each `::add-mask::` masks its value in later lines only."""
    masker = LogMasker()
    shown = (masker.feed(line) for line in log.splitlines())
    return "\n".join(line for line in shown if line is not None)


# -- action.yml ---------------------------------------------------------------------------------


def load_action(action_dir: Path) -> dict[str, Any]:
    for name in ("action.yml", "action.yaml"):
        path = action_dir / name
        if path.exists():
            loaded = yaml.safe_load(path.read_text())
            if not isinstance(loaded, dict) or not isinstance(loaded.get("runs"), dict):
                raise HarnessError(f"{path}: not an action (no runs: mapping)")
            return loaded
    raise HarnessError(f"{action_dir}: no action.yml")


def _input_env_name(name: str) -> str:
    # Handler.AddInputsToEnvironment: spaces become underscores, upper case, hyphens stay.
    return "INPUT_" + name.replace(" ", "_").upper()


def _evaluate(text: str, contexts: Mapping[str, Mapping[str, str]], where: str) -> str:
    """The few expressions action metadata uses: `${{ github.x }}`, `runner.x`, `inputs.x`."""

    def one(match: re.Match[str]) -> str:
        expression = match.group(1)
        context, _, name = expression.partition(".")
        if context in contexts and name and re.fullmatch(r"[A-Za-z0-9_-]+", name):
            return contexts[context].get(name, "")
        raise HarnessError(f"{where}: the harness cannot evaluate ${{{{ {expression} }}}}")

    return EXPRESSION.sub(one, text)


# -- docker -------------------------------------------------------------------------------------

_stack_env_cache: dict[str, str] | None = None


def stack_environment() -> dict[str, str]:
    """Where the stack's daemon is and which base images to use: this process's environment
    when it has them (e.g. after `eval "$(scripts/stack env)"`), else `scripts/stack env`."""
    global _stack_env_cache  # noqa: PLW0603 - one lookup per test session
    if "DJK_BASE_IMAGE" in os.environ:
        return dict(os.environ)
    if _stack_env_cache is None:
        result = subprocess.run(
            [sys.executable, str(STACK_SCRIPT), "env"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise HarnessError(f"scripts/stack env failed: {result.stderr.strip()}")
        env: dict[str, str] = {}
        for line in result.stdout.splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                name, value = words[1].split("=", 1)
                env[name] = value
        _stack_env_cache = env
    return {**os.environ, **_stack_env_cache}


def _docker_binary() -> str:
    # Resolved with this process's PATH: a test may give the container a hostile PATH, and
    # Popen would look the program up in the child's.
    found = shutil.which("docker")
    if found is None:
        raise HarnessError("no docker CLI on PATH")
    return found


def _docker_cli_env(stack: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    if stack.get("DOCKER_HOST"):
        env["DOCKER_HOST"] = stack["DOCKER_HOST"]
    return env


def docker_socket(stack: Mapping[str, str]) -> Path:
    """The host path of the daemon's socket: what gets mounted at /var/run/docker.sock."""
    try:
        return stack_docker_socket(stack)
    except StackError as exc:
        raise HarnessError(str(exc)) from None


def _docker(stack: Mapping[str, str], *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [_docker_binary(), *args],
        capture_output=True,
        text=True,
        env=_docker_cli_env(stack),
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise HarnessError(f"docker {args[0]} failed: {(result.stdout + result.stderr).strip()}")
    return result.stdout


def _declared_args(dockerfile: Path) -> set[str]:
    names = set()
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", line, re.IGNORECASE)
        if match:
            names.add(match.group(1))
    return names


def _context_files(context: Path) -> list[Path]:
    """The files a build of `context` can see. An allow-list .dockerignore (`*` then `!path`
    lines, as the repository's) is honoured exactly; otherwise every file counts."""
    ignore = context / ".dockerignore"
    patterns = ignore.read_text().splitlines() if ignore.exists() else []
    patterns = [p.strip() for p in patterns if p.strip() and not p.strip().startswith("#")]
    if patterns[:1] == ["*"]:
        roots = [context / p[1:].rstrip("/") for p in patterns[1:] if p.startswith("!")]
    else:
        roots = [context]
    files: list[Path] = []
    for root in roots:
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files += [
                p
                for p in root.rglob("*")
                if p.is_file()
                and "__pycache__" not in p.parts
                and ".git" not in p.relative_to(context).parts
                and p.suffix != ".pyc"
            ]
    return sorted(set(files))


def _content_key(action_dir: Path, dockerfile: Path, build_args: Mapping[str, str]) -> str:
    context = dockerfile.parent
    digest = hashlib.sha256()
    extra = [dockerfile, context / ".dockerignore", action_dir / "action.yml"]
    for path in sorted({*_context_files(context), *(p for p in extra if p.exists())}):
        digest.update(str(path.relative_to(action_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for name, value in sorted(build_args.items()):
        digest.update(f"{name}={value}\0".encode())
    return digest.hexdigest()[:20]


_built: dict[tuple[Path, str], str] = {}


def build_action_image(
    action_dir: Path = REPO_ROOT, stack: Mapping[str, str] | None = None, version: str = ""
) -> str:
    """The action's image, built like the runner builds it (once per content: see module doc);
    `version`, as the release workflow passes it (build-arg VERSION), when given."""
    stack = stack if stack is not None else stack_environment()
    action_dir = action_dir.resolve()
    runs = load_action(action_dir)["runs"]
    if runs.get("using") != "docker":
        raise HarnessError(f"{action_dir}: runs.using is {runs.get('using')!r}, not docker")
    image = str(runs.get("image", ""))
    if image.startswith("docker://"):
        return pull_action_image(image.removeprefix("docker://"), stack)
    dockerfile = (action_dir / image).resolve()
    if not dockerfile.is_file():
        raise HarnessError(f"{action_dir}: runs.image {image!r} is not a file")
    declared = _declared_args(dockerfile)
    if "KUSTOMIZE_IMAGE" in declared:
        # A stack started before it made the kustomize image has no DJK_KUSTOMIZE_IMAGE: make it
        # in the engine at hand the way `scripts/stack up` does (a no-op when it is current).
        kustomize = stack_kustomize_image(
            _docker_cli_env(stack), lambda line: print(f"[harness] {line}", file=sys.stderr)
        )
        stack = {**stack, "DJK_KUSTOMIZE_IMAGE": kustomize}
    build_args: dict[str, str] = {}
    for arg, source in BUILD_ARG_SOURCES.items():
        if arg in declared and stack.get(source):
            # The id, not the tag, goes into the key: a rebuilt base image means a new tag.
            build_args[arg] = stack[source]
    key_args = {
        **build_args,
        **{
            f"id:{k}": _docker(stack, "image", "inspect", "-f", "{{.Id}}", v).strip()
            for k, v in build_args.items()
        },
    }
    if version:
        build_args["VERSION"] = key_args["VERSION"] = version
    key = _content_key(action_dir, dockerfile, key_args)
    # One repository per checkout: two worktrees testing at once must not untag each other's
    # image (`_forget_stale_tags` keeps only the newest tag of its own repository).
    checkout = hashlib.sha256(str(action_dir).encode()).hexdigest()[:8]
    repository = (
        f"djk/action-under-test-{checkout}"
        if action_dir == REPO_ROOT
        else "djk/action-" + (re.sub(r"[^a-z0-9]+", "-", action_dir.name.lower()).strip("-") or "x")
    )
    if version:
        # A repository of its own: its build must not untag the image the other tests run.
        repository += "-release"
    tag = f"{repository}:{key}"
    if (action_dir, key) in _built:
        return tag
    lock_path = Path(tempfile.gettempdir()) / f"djk-harness-{repository.replace('/', '-')}.lock"
    with lock_path.open("w") as lock:
        # Parallel workers would otherwise all build the same image at once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        exists = subprocess.run(
            [_docker_binary(), "image", "inspect", tag],
            capture_output=True,
            env=_docker_cli_env(stack),
            check=False,
        )
        if exists.returncode != 0:
            _build(stack, dockerfile, tag, build_args)
            _forget_stale_tags(stack, repository, tag)
    _built[(action_dir, key)] = tag
    return tag


def login_to_stack_registry(stack: Mapping[str, str], config: str | Path) -> None:
    """`docker login` to the stack's registry with its credentials, written into the DOCKER_CONFIG
    directory `config` (a throw-away one: the password never reaches the user's own)."""
    registry = stack["DJK_REGISTRY"]
    login = subprocess.run(
        [
            *(_docker_binary(), "login", "--username", stack["DJK_REGISTRY_USER"]),
            *("--password-stdin", registry),
        ],
        input=stack["DJK_REGISTRY_PASSWORD"],
        capture_output=True,
        text=True,
        env={**_docker_cli_env(stack), "DOCKER_CONFIG": str(config)},
        timeout=60,
        check=False,
    )
    if login.returncode != 0:
        raise HarnessError(f"docker login {registry} failed: {login.stderr.strip()}")


PULL_TRIES = 3


def pull_action_image(reference: str, stack: Mapping[str, str]) -> str:
    """`runs.image: docker://REF`: the runner's "Pull REF" in Set up job, `docker pull` with 3
    tries, before any step runs. The runner pulls anonymously; the stack's registry wants a login
    (it has no anonymous access), so the harness pulls with the stack's credentials, in a
    throw-away DOCKER_CONFIG, when REF is on that registry, and anonymously otherwise."""
    env = _docker_cli_env(stack)
    registry = stack.get("DJK_REGISTRY", "")
    with tempfile.TemporaryDirectory(prefix="djk-harness-pull-") as config:
        env["DOCKER_CONFIG"] = config
        if registry and reference.startswith(registry + "/"):
            login_to_stack_registry(stack, config)
        started = time.monotonic()
        result: subprocess.CompletedProcess[str] | None = None
        for attempt in range(1, PULL_TRIES + 1):
            result = subprocess.run(
                [_docker_binary(), "pull", reference],
                capture_output=True,
                text=True,
                env=env,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
            if result.returncode == 0:
                break
            if attempt < PULL_TRIES:
                time.sleep(attempt)
        assert result is not None
        if result.returncode != 0:
            raise HarnessError(
                f"docker pull {reference} failed {PULL_TRIES} times: "
                + (result.stdout + result.stderr).strip()[-2000:]
            )
    print(f"[harness] pulled {reference} in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return reference


def _build(stack: Mapping[str, str], dockerfile: Path, tag: str, args: Mapping[str, str]) -> None:
    argv = [_docker_binary(), "build", "-t", tag, "-f", str(dockerfile), "--network", "host"]
    for name, value in args.items():
        argv += ["--build-arg", f"{name}={value}"]
    argv.append(str(dockerfile.parent))
    env = {**_docker_cli_env(stack), "DOCKER_BUILDKIT": "0"}
    started = time.monotonic()
    result = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise HarnessError(f"building {tag} from {dockerfile} failed:\n{tail}")
    print(f"[harness] built {tag} in {time.monotonic() - started:.1f}s", file=sys.stderr)


def _forget_stale_tags(stack: Mapping[str, str], repository: str, keep: str) -> None:
    # Each code change makes a new tag; without this the daemon's disk (vfs) fills up.
    with contextlib.suppress(HarnessError, subprocess.TimeoutExpired):
        tags = _docker(stack, "image", "ls", repository, "--format", "{{.Repository}}:{{.Tag}}")
        stale = [t for t in tags.split() if t != keep and not t.endswith(":<none>")]
        if stale:
            subprocess.run(
                [_docker_binary(), "image", "rm", *stale],
                capture_output=True,
                env=_docker_cli_env(stack),
                check=False,
                timeout=120,
            )


# -- running ------------------------------------------------------------------------------------


def _new_runner_temp() -> Path:
    path = Path(tempfile.mkdtemp(prefix="djk-runner-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _push_event(sha: str, repository: str) -> dict[str, Any]:
    owner, _, name = repository.partition("/")
    return {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": sha,
        "head_commit": {"id": sha, "message": "test commit"},
        "repository": {
            "full_name": repository,
            "name": name,
            "owner": {"login": owner},
            "default_branch": "main",
        },
        "sender": {"login": "octocat"},
    }


def run_action(
    inputs: Mapping[str, str],
    workspace: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    action_dir: Path = REPO_ROOT,
    stack: Mapping[str, str] | None = None,
    event_name: str = "push",
    event: Mapping[str, Any] | None = None,
    cancel_after: float | None = None,
    runner_temp: Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> ActionRun:
    """Run the action in `action_dir` (default: this repository) on `workspace`.

    `inputs` are the step's `with:`; `extra_env` the step's `env:` (it reaches the container, as
    on the runner; a GITHUB_*/RUNNER_* name in it replaces the runner's value, e.g. GITHUB_SHA,
    and `${{ github.* }}` defaults follow it). `stack` is the stack's env (default: found by
    `stack_environment()`). `cancel_after` seconds: cancel the run as the runner does.
    `echo` receives each log line as GitHub would show it, while the action runs (the demo).
    On timeout the container is removed and HarnessError carries the log so far.
    """
    stack = stack if stack is not None else stack_environment()
    extra_env = dict(extra_env or {})
    if "DOCKER_HOST" in extra_env:
        raise HarnessError("extra_env: DOCKER_HOST would redirect the harness's own docker CLI")
    workspace = workspace.resolve()
    if not workspace.is_dir():
        raise HarnessError(f"workspace {workspace} is not a directory")
    action = load_action(action_dir.resolve())

    temp = runner_temp or _new_runner_temp()
    home = temp / "_github_home"
    workflow = temp / "_github_workflow"
    file_commands = temp / "_runner_file_commands"
    for directory in (home, workflow, file_commands):
        directory.mkdir(parents=True, exist_ok=True)
    suffix = secrets.token_hex(8)
    files = {
        "GITHUB_OUTPUT": f"set_output_{suffix}",
        "GITHUB_ENV": f"set_env_{suffix}",
        "GITHUB_PATH": f"add_path_{suffix}",
        "GITHUB_STATE": f"save_state_{suffix}",
        "GITHUB_STEP_SUMMARY": f"step_summary_{suffix}",
    }
    for name in files.values():
        (file_commands / name).touch()

    repository = "octo-org/antisocial"
    runner_env: dict[str, str] = {
        "HOME": CONTAINER_HOME,
        "GITHUB_JOB": "deploy",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REF_NAME": "main",
        "GITHUB_REF_TYPE": "branch",
        "GITHUB_REF_PROTECTED": "false",
        "GITHUB_SHA": secrets.token_hex(20),
        "GITHUB_REPOSITORY": repository,
        "GITHUB_REPOSITORY_ID": "123456789",
        "GITHUB_REPOSITORY_OWNER": repository.split("/", maxsplit=1)[0],
        "GITHUB_REPOSITORY_OWNER_ID": "1234567",
        "GITHUB_RUN_ID": str(secrets.randbelow(10**10)),
        "GITHUB_RUN_NUMBER": "1",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_ACTOR": "octocat",
        "GITHUB_ACTOR_ID": "583231",
        "GITHUB_TRIGGERING_ACTOR": "octocat",
        "GITHUB_WORKFLOW": "deploy",
        "GITHUB_WORKFLOW_REF": f"{repository}/.github/workflows/deploy.yml@refs/heads/main",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": f"{CONTAINER_WORKFLOW}/event.json",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_GRAPHQL_URL": "https://api.github.com/graphql",
        "GITHUB_WORKSPACE": CONTAINER_WORKSPACE,
        "GITHUB_ACTION": "deploy",
        "GITHUB_ACTION_REPOSITORY": "",
        "GITHUB_ACTION_REF": "",
        "GITHUB_BASE_REF": "",
        "GITHUB_HEAD_REF": "",
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
        "RUNNER_NAME": "GitHub Actions 1",
        "RUNNER_ENVIRONMENT": "github-hosted",
        "RUNNER_TEMP": CONTAINER_RUNNER_TEMP,
        # Host paths the runner passes but does not mount: absent inside, as on GitHub.
        "RUNNER_TOOL_CACHE": "/opt/hostedtoolcache",
        "RUNNER_WORKSPACE": f"/home/runner/work/{repository.split('/')[1]}",
        "ACTIONS_RUNTIME_URL": "https://pipelines.actions.githubusercontent.invalid/",
        "ACTIONS_RUNTIME_TOKEN": "harness-runtime-token",
        **{name: f"{CONTAINER_FILE_COMMANDS}/{file}" for name, file in files.items()},
    }
    overrides = {k: v for k, v in extra_env.items() if k.startswith(("GITHUB_", "RUNNER_"))}
    runner_env.update(overrides)
    user_env = {k: v for k, v in extra_env.items() if k not in overrides}

    github_context = {
        key.removeprefix("GITHUB_").lower(): value
        for key, value in runner_env.items()
        if key.startswith("GITHUB_")
    }
    github_context["token"] = "ghs_harness" + "0" * 25  # a fake, never sent anywhere
    contexts = {
        "github": github_context,
        "runner": {
            key.removeprefix("RUNNER_").lower(): value
            for key, value in runner_env.items()
            if key.startswith("RUNNER_")
        },
    }
    event_payload = (
        dict(event)
        if event is not None
        else _push_event(runner_env["GITHUB_SHA"], runner_env["GITHUB_REPOSITORY"])
    )
    (workflow / "event.json").write_text(json.dumps(event_payload, indent=2))

    warnings: list[str] = []
    declared: dict[str, Any] = action.get("inputs") or {}
    input_values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in inputs:
            input_values[name] = str(inputs[name])
        elif isinstance(spec, dict) and spec.get("default") is not None:
            input_values[name] = _evaluate(str(spec["default"]), contexts, f"inputs.{name}")
        else:
            input_values[name] = ""
    unexpected = [name for name in inputs if name not in declared]
    if unexpected:
        warnings.append(
            f"Unexpected input(s) {', '.join(repr(n) for n in unexpected)}, valid inputs are "
            f"{list(declared)}"
        )
        input_values.update({name: str(inputs[name]) for name in unexpected})
    contexts["inputs"] = input_values

    runs: dict[str, Any] = action["runs"]
    if runs.get("pre-entrypoint") or runs.get("post-entrypoint"):
        raise HarnessError("pre-entrypoint/post-entrypoint are not supported by this harness")
    runs_env = {
        str(k): _evaluate(str(v), contexts, f"runs.env.{k}")
        for k, v in (runs.get("env") or {}).items()
    }
    container_env: dict[str, str] = {
        **{_input_env_name(name): value for name, value in input_values.items()},
        **user_env,
        # runs.env applies only to names the user has not set.
        **{k: v for k, v in runs_env.items() if k not in user_env},
        **runner_env,
    }

    # Inputs and env are settled (and any expression refused) before the slow build.
    setup_started = time.monotonic()
    image = build_action_image(action_dir, stack)
    setup_seconds = time.monotonic() - setup_started
    socket_path = docker_socket(stack)
    if not socket_path.exists():
        raise HarnessError(f"no Docker socket at {socket_path}: is the stack up?")

    container_name = f"djk-action-{secrets.token_hex(3)}"
    argv: list[str] = [
        _docker_binary(),
        "run",
        "--name",
        container_name,
        "--label",
        "djk-harness",
        "--workdir",
        CONTAINER_WORKSPACE,
        "--rm",
        "--network",
        "host",
    ]
    for var in container_env:
        argv += ["-e", var]
    # These two are literal in the runner's own command line (CI only when the user has not set it).
    literal = {"GITHUB_ACTIONS": "true", **({} if "CI" in container_env else {"CI": "true"})}
    for var, value in literal.items():
        argv += ["-e", f"{var}={value}"]
    if runs.get("entrypoint"):
        argv += ["--entrypoint", str(runs["entrypoint"])]
    mounts = [
        (socket_path, CONTAINER_DOCKER_SOCKET),
        (home, CONTAINER_HOME),
        (workflow, CONTAINER_WORKFLOW),
        (file_commands, CONTAINER_FILE_COMMANDS),
        (temp, CONTAINER_RUNNER_TEMP),
        (workspace, CONTAINER_WORKSPACE),
    ]
    for host_path, container_path in mounts:
        argv += ["-v", f"{host_path}:{container_path}"]
    argv.append(image)
    argv += [_evaluate(str(arg), contexts, "runs.args") for arg in runs.get("args") or []]

    cli_env = {**_docker_cli_env(stack), **container_env}
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=cli_env,
    )
    output, cancelled = _wait(
        process,
        container=container_name,
        stack=stack,
        started=started,
        timeout=timeout,
        cancel_after=cancel_after,
        echo=echo,
    )
    duration = time.monotonic() - started
    return ActionRun(
        exit_code=process.returncode,
        log=output,
        argv=tuple(argv),
        image=image,
        duration=duration,
        cancelled=cancelled,
        workspace=workspace,
        home=home,
        runner_temp=temp,
        event_file=workflow / "event.json",
        output_file=file_commands / files["GITHUB_OUTPUT"],
        summary_file=file_commands / files["GITHUB_STEP_SUMMARY"],
        env_file=file_commands / files["GITHUB_ENV"],
        path_file=file_commands / files["GITHUB_PATH"],
        state_file=file_commands / files["GITHUB_STATE"],
        container_env={**container_env, **literal},
        warnings=tuple(warnings),
        setup_seconds=setup_seconds,
    )


def _wait(
    process: subprocess.Popen[bytes],
    *,
    container: str,
    stack: Mapping[str, str],
    started: float,
    timeout: float,
    cancel_after: float | None,
    echo: Callable[[str], None] | None = None,
) -> tuple[str, bool]:
    """Collect output until exit; cancel like the runner at `cancel_after`; enforce `timeout`."""
    chunks: list[bytes] = []
    reader: threading.Thread | None = None
    if echo is not None:
        stdout = process.stdout
        assert stdout is not None
        masker = LogMasker()

        def tee() -> None:
            for raw in stdout:
                chunks.append(raw)
                shown = masker.feed(raw.decode("utf-8", errors="replace").rstrip("\n"))
                if shown is not None:
                    echo(shown)

        reader = threading.Thread(target=tee, daemon=True)
        reader.start()

    def communicate(until: float) -> bool:
        if reader is not None:
            try:
                process.wait(timeout=max(0.0, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
            reader.join(timeout=10)
            return True
        # After a TimeoutExpired, Popen keeps what it read; the call that succeeds returns it all.
        if process.returncode is not None and chunks:
            return True
        try:
            out, _ = process.communicate(timeout=max(0.0, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        chunks.append(out or b"")
        return True

    deadline = started + timeout
    if (
        cancel_after is not None
        and cancel_after < timeout
        and not communicate(started + cancel_after)
    ):
        for sig, grace in (
            (signal.SIGINT, CANCEL_GRACE_SIGINT),
            (signal.SIGTERM, CANCEL_GRACE_SIGTERM),
        ):
            process.send_signal(sig)
            if communicate(time.monotonic() + grace):
                break
        else:
            process.kill()
            communicate(time.monotonic() + 10)
        # A killed CLI can leave its container running (reference 1.8); the runner's kill does
        # not reach it, but the harness must not leak it into the next test.
        _remove_container(stack, container)
        return _decode(chunks), True
    if not communicate(deadline):
        _remove_container(stack, container)
        process.kill()
        communicate(time.monotonic() + 10)
        raise HarnessError(
            f"the action did not finish within {timeout:.0f}s; its log so far:\n"
            + mask_log(_decode(chunks))[-5000:]
        )
    return _decode(chunks), False


def _decode(chunks: Iterable[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", errors="replace")


def _remove_container(stack: Mapping[str, str], container: str) -> None:
    subprocess.run(
        [_docker_binary(), "rm", "-f", container],
        capture_output=True,
        env=_docker_cli_env(stack),
        check=False,
        timeout=60,
    )
