"""`python -m deployer {deploy,render,kubeconfig,wait}`, and the container action's entry.

Both paths build the same Settings and call the same pipeline. This is the one place that maps the
exception tree to exit codes: 0 success; 1 rollout failed, timed out or cancelled; 2 invalid input
or configuration; 3 an outside service still failing after retries.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import NoReturn

import yaml

from deployer import __version__, input_values, manifests, settings
from deployer.errors import Cancelled, DeployError, InputError
from deployer.github import Reporter, neutralise
from deployer.services import Builder, CloudApi, ClusterApi, CommentsApi, Services


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit code 2 like every other bad input."""

    def error(self, message: str) -> NoReturn:
        # argparse quotes what it refused, which is the user's text: one neutralised line.
        sys.stderr.write(f"error: {neutralise(message)} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m deployer",
        description="Build a Django app's image, render it into the manifests, apply them to "
        "Kubernetes and watch every rollout. The same code as the GitHub Action.",
    )
    parser.add_argument("--version", action="version", version=f"django-k8s-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_deploy(sub)
    _add_render(sub)
    _add_kubeconfig(sub)
    _add_wait(sub)
    return parser


def _add_deploy(sub: argparse._SubParsersAction[_Parser]) -> None:
    deploy = sub.add_parser(
        "deploy",
        help="build, push, render, apply and watch (the whole action)",
        description="Build, push, render, apply and watch. Secrets come from the environment "
        "or a .env file, never from flags: DIGITALOCEAN_ACCESS_TOKEN, REGISTRY_PASSWORD.",
    )
    for spec in settings.INPUTS:
        if spec.secret:
            continue
        flag = f"--{spec.name}"
        if spec.name == "manifests":
            _add_manifests(deploy, spec.default)
        elif spec.parse in settings.FLAGS:
            deploy.add_argument(
                flag,
                dest=spec.name.replace("-", "_"),
                nargs="?",
                const="true",
                metavar="true|false",
                help=f"{settings.cli_words(spec.help)}{_default(spec)}",
            )
        else:
            deploy.add_argument(
                flag,
                dest=spec.name.replace("-", "_"),
                metavar="VALUE",
                help=f"{settings.cli_words(spec.help)}{_default(spec)}",
            )
    deploy.add_argument(
        "--kubeconfig",
        dest="kubeconfig_file",
        metavar="PATH",
        help="use this kubeconfig instead of DigitalOcean",
    )
    deploy.add_argument(
        "--secrets-file",
        metavar="PATH",
        help="env file (KEY=value) for the Secret named by --secret-name",
    )
    deploy.add_argument(
        "--build-secrets-file",
        metavar="PATH",
        help="env file (id=value) of build secrets for RUN --mount=type=secret",
    )
    deploy.add_argument(
        "--env-file",
        default=".env",
        metavar="PATH",
        help="load environment variables from this file if it exists (default: .env)",
    )


def _default(spec: settings.InputSpec) -> str:
    shown = spec.default or spec.unset
    return f" (default: {shown})" if shown else ""


def _add_manifests(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--manifests",
        "--manifest",
        dest="manifests",
        action="append",
        metavar="PATH",
        help=f"manifest file or glob, or a kustomization directory, relative to the repository; "
        f"repeat for several (default: {default})",
    )


def _add_render(sub: argparse._SubParsersAction[_Parser]) -> None:
    render = sub.add_parser(
        "render",
        help="print the manifests with the image filled in",
        description="Print the manifests with the placeholder replaced by the image, checked "
        "as deploy checks them. Nothing is built or applied.",
    )
    _add_manifests(render, _spec("manifests").default)
    render.add_argument(
        "--image",
        required=True,
        metavar="REF",
        help="image reference (with a tag or digest), or a repository with --sha",
    )
    render.add_argument(
        "--sha", metavar="SHA", help="the tag: renders IMAGE:SHA (default: --image as given)"
    )
    render.add_argument(
        "--placeholder",
        default=_spec("placeholder").default,
        metavar="TEXT",
        help=f"{_spec('placeholder').help} (default: {_spec('placeholder').default})",
    )


def _spec(name: str) -> settings.InputSpec:
    return next(spec for spec in settings.INPUTS if spec.name == name)


def _add_kubeconfig(sub: argparse._SubParsersAction[_Parser]) -> None:
    kubeconfig = sub.add_parser(
        "kubeconfig",
        help="print a short-lived kubeconfig for a DigitalOcean cluster",
        description="The token comes from DIGITALOCEAN_ACCESS_TOKEN.",
    )
    kubeconfig.add_argument(
        "--cluster", required=True, metavar="NAME_OR_ID", help="the cluster's name or id"
    )
    kubeconfig.add_argument(
        "--expiry-seconds",
        type=int,
        default=3600,
        metavar="N",
        help="how long its token lives (default: 3600)",
    )
    kubeconfig.add_argument(
        "--env-file",
        default=".env",
        metavar="PATH",
        help="load environment variables from this file if it exists (default: .env)",
    )


def _add_wait(sub: argparse._SubParsersAction[_Parser]) -> None:
    wait = sub.add_parser(
        "wait",
        help="watch rollouts with the current KUBECONFIG",
        description="Watch workloads already applied until they are rolled out, failed or out "
        "of time; a failure is diagnosed as deploy does. Exit 0 when every one completed.",
    )
    wait.add_argument(
        "--deployment", action="append", default=[], metavar="NAME", help="repeat for several"
    )
    wait.add_argument(
        "--workload",
        action="append",
        default=[],
        metavar="KIND/NAME",
        help="deployment, statefulset, daemonset or job, e.g. job/migrate",
    )
    wait.add_argument(
        "--namespace", default="", metavar="NS", help="(default: the kubeconfig context's)"
    )
    wait.add_argument(
        "--timeout", default="10m", metavar="DURATION", help="for all together (default: 10m)"
    )
    wait.add_argument(
        "--settle",
        default=settings.DEFAULT_SETTLE,
        metavar="DURATION",
        help="how long new containers must stay up after kubectl's done, 0: off "
        f"(default: {settings.DEFAULT_SETTLE})",
    )
    wait.add_argument(
        "--kubeconfig",
        dest="kubeconfig_file",
        metavar="PATH",
        help="(default: $KUBECONFIG, else ~/.kube/config)",
    )
    wait.add_argument(
        "--context", dest="kube_context", metavar="NAME", help="(default: the current context)"
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    context = settings.github_context(env)
    # render and kubeconfig print data on stdout: their messages go to stderr.
    stream = sys.stderr if args.command in ("render", "kubeconfig") else sys.stdout
    reporter = Reporter(
        github=context.github,
        output_file=context.output_file,
        summary_file=context.summary_file,
        stream=stream,
    )
    commands: dict[str, Callable[[argparse.Namespace, dict[str, str], Reporter], int]] = {
        "deploy": _deploy,
        "render": _render,
        "kubeconfig": _kubeconfig,
        "wait": _wait,
    }
    return _guarded(reporter, env, lambda: commands[args.command](args, env, reporter))


def action_main(environ: Mapping[str, str]) -> int:
    """The container action: every input from INPUT_*, never from argv."""
    env = dict(environ)
    context = settings.github_context(env)
    reporter = Reporter(
        github=True, output_file=context.output_file, summary_file=context.summary_file
    )

    def run() -> int:
        from deployer import pipeline
        from deployer.run import Interrupt, Run

        reporter.line(
            f"django-k8s-deploy {__version__}"
            + (f" ({env['GITHUB_ACTION_REF']})" if env.get("GITHUB_ACTION_REF") else "")
        )
        config = settings.from_action_env(env, reporter.mask)
        # Docker and kubeconfig exec plugins inherit os.environ: the inputs (token, secrets) are read.
        settings.forget_inputs(os.environ)
        interrupt = Interrupt()
        with _signals(interrupt):
            outcome = pipeline.deploy(Run(config, reporter, real_services(env), interrupt))
        return exit_code(outcome.error)

    return _guarded(reporter, env, run)


def real_services(env: Mapping[str, str]) -> Services:
    """The docker CLI (with the environment we were given), DigitalOcean's API, the cluster.
    Each module is imported when its service is first opened: the cluster's (urllib3; the
    `kubernetes` package only when apply first needs the API discovery) once the cluster checks
    start, alongside the build."""

    def docker() -> Builder:
        from deployer.docker import Docker

        return Docker(env=dict(env))

    def digitalocean(token: str, api_url: str) -> CloudApi:
        from deployer.digitalocean import DigitalOcean

        return DigitalOcean(token=token, api_url=api_url)

    def cluster(config: Mapping[str, object]) -> ClusterApi:
        from deployer.kube import Cluster

        return Cluster.from_kubeconfig_dict(config, env=env)

    def github(token: str, api_url: str) -> CommentsApi:
        from deployer.github_api import GitHubApi

        return GitHubApi(token=token, api_url=api_url)

    return Services(docker=docker, digitalocean=digitalocean, cluster=cluster, github=github)


# -- commands -----------------------------------------------------------------------------------


def _deploy(args: argparse.Namespace, env: dict[str, str], reporter: Reporter) -> int:
    from deployer import pipeline
    from deployer.run import Interrupt, Run

    settings.load_env_file(Path(args.env_file), env)
    raw: dict[str, str] = {}
    for spec in settings.INPUTS:
        if spec.secret or spec.name == "manifests":
            continue
        got = getattr(args, spec.name.replace("-", "_"))
        raw[spec.name] = got if got is not None else ""
    raw["manifests"] = "\n".join(args.manifests or [])
    raw["digitalocean-token"] = env.get("DIGITALOCEAN_ACCESS_TOKEN", "")
    raw["registry-password"] = env.get("REGISTRY_PASSWORD", "")
    if args.kubeconfig_file:
        raw["kubeconfig"] = _read(args.kubeconfig_file, "--kubeconfig")
        raw["digitalocean-token"] = ""
    if args.secrets_file:
        raw["secrets"] = _read(args.secrets_file, "--secrets-file")
    if args.build_secrets_file:
        raw["build-secrets"] = _read(args.build_secrets_file, "--build-secrets-file")
    if not raw["sha"] and "GITHUB_SHA" not in env:
        raw["sha"] = _git_head()
    config = settings.parse(
        raw,
        env,
        mask=reporter.mask,
        github=False,  # the CLI's flags and variables, also in a workflow's `run:` step
        secrets_source=args.secrets_file or "secrets",
    )
    interrupt = Interrupt()
    with _signals(interrupt):
        outcome = pipeline.deploy(Run(config, reporter, real_services(env), interrupt))
    return exit_code(outcome.error)


def _render(args: argparse.Namespace, env: dict[str, str], reporter: Reporter) -> int:
    """What deploy would apply, from the same --manifests (files, globs, several)."""
    problems: list[InputError] = []

    def problem(where: str, message: str, hint: str = "") -> None:
        problems.append(InputError(message, where=settings.named(where, False), hint=hint))

    paths: list[Path] = []
    for entry in args.manifests or [_spec("manifests").default]:
        if Path(entry).is_file():  # as given, also outside the repository
            paths.append(Path(entry))
        else:
            paths += manifests.find_files(entry, Path.cwd(), problem)
    image = args.image
    if args.sha:
        if "@" in image or input_values.has_tag(image):
            problem("image", "has a tag or digest already, and --sha adds one", "Drop one.")
        elif not input_values.SHA_RE.match(args.sha):
            problem(
                "sha",
                "must be a full 40-character commit SHA in lower-case hex",
                "Use the full SHA (git rev-parse HEAD).",
            )
        image = f"{image}:{args.sha}"
    if problems:
        raise problems[0] if len(problems) == 1 else settings.InputErrors(problems)
    sources = manifests.read_sources(tuple(dict.fromkeys(paths)))
    prepared = manifests.prepare(
        sources,
        placeholder=args.placeholder,
        image_ref=image,
        repository=manifests.repository_of(image),
        namespace=None,  # printed as written: the text, not the objects
    )
    if any(path.is_dir() for path in paths):
        # kustomize's output carries origin annotations: print the objects as they are applied.
        sys.stdout.write(
            yaml.safe_dump_all(
                [d.body for d in prepared.documents], sort_keys=False, explicit_start=True
            )
        )
    else:
        sys.stdout.write(manifests.to_yaml(prepared.rendered))
    return 0


def _kubeconfig(args: argparse.Namespace, env: dict[str, str], reporter: Reporter) -> int:
    from deployer.digitalocean import DigitalOcean

    settings.load_env_file(Path(args.env_file), env)
    token = env.get("DIGITALOCEAN_ACCESS_TOKEN", "").strip()
    if not token:
        raise InputError(
            "is not set",
            where="DIGITALOCEAN_ACCESS_TOKEN",
            hint="Export a DigitalOcean token with kubernetes:read and kubernetes:access_cluster.",
        )
    if not settings.is_cluster(args.cluster):
        raise InputError(
            f"{manifests.shown(args.cluster)} is not a cluster name or id",
            where="--cluster",
            hint="Use the cluster's name (letters, digits, '-', '.', '_') or its id.",
        )
    if not 0 < args.expiry_seconds <= 7 * 24 * 3600:
        raise InputError(
            "must be between 1 and 604800 (7 days)",
            where="--expiry-seconds",
            hint="DigitalOcean issues kubeconfig tokens for at most 7 days.",
        )
    reporter.mask(token)
    api = DigitalOcean(token=token, api_url=settings.api_url_from(env))
    try:
        cluster = api.find_cluster(args.cluster)
        config = api.kubeconfig(cluster.id, expiry_seconds=args.expiry_seconds).config
    finally:
        api.close()
    sys.stdout.write(yaml.safe_dump(config, sort_keys=False))
    return 0


def _wait(args: argparse.Namespace, env: dict[str, str], reporter: Reporter) -> int:
    from deployer import report
    from deployer.kube import Cluster
    from deployer.results import result_of
    from deployer.rollouts import existing_targets, roll_out
    from deployer.run import Interrupt, Run

    asked = settings.parse_wait(
        timeout=args.timeout,
        deployments=args.deployment,
        workloads=args.workload,
        namespace=args.namespace,
        settle=args.settle,
    )
    cluster = Cluster.from_kubeconfig_file(args.kubeconfig_file, context=args.kube_context, env=env)
    try:
        namespace = asked.namespace or cluster.default_namespace
        targets = existing_targets(cluster, asked.workloads, namespace)
        interrupt = Interrupt()
        interrupt.raise_on_signal = False
        # What a wait is given: nothing to build or apply, only where and how long to wait.
        given = settings.Settings(
            image="",
            sha="",
            workspace=Path.cwd(),
            manifests=(),
            namespace=namespace,
            timeout_s=asked.timeout_s,
            settle_s=asked.settle_s,
        )
        run = Run(given, reporter, real_services(env), interrupt)
        with _signals(interrupt), contextlib.suppress(Cancelled):
            roll_out(run, cluster, targets, timeout_s=asked.timeout_s)
    finally:
        cluster.close()
    results = run.outcome.results
    reporter.publish(report.of_wait(results))
    return 0 if result_of(results) == "succeeded" else 1


# -- plumbing -----------------------------------------------------------------------------------


def exit_code(error: DeployError | None) -> int:
    """The one mapping from how a run ended to its exit code (README, "What failure looks like": 0/1/2/3)."""
    return 0 if error is None else error.exit_code


def _guarded(reporter: Reporter, env: Mapping[str, str], run: Callable[[], int]) -> int:
    code = _run_guarded(reporter, env, run)
    # An output or summary the runner cannot read was one error line already; a green exit would
    # leave later steps without the outputs they expect.
    return code or (2 if reporter.unwritable else 0)


def _run_guarded(reporter: Reporter, env: Mapping[str, str], run: Callable[[], int]) -> int:
    """Run a command; an error it raises (rather than reports) is reported here, once."""
    from deployer import report

    try:
        with reporter.library_logs():
            return run()
    except DeployError as error:
        reporter.publish(report.of_error(error))
        return exit_code(error)
    except KeyboardInterrupt:
        reporter.publish(report.of_error(Cancelled("cancelled")))
        return 1
    except Exception as exc:  # a bug of ours: one line, the traceback only when asked for
        debug = env.get("RUNNER_DEBUG") == "1" or env.get("DJK_DEBUG") == "1"
        reporter.publish(report.of_bug(exc, traceback.format_exc() if debug else ""))
        return 1


@contextmanager
def _signals(interrupt: object) -> Iterator[None]:
    """SIGINT/SIGTERM: set the interrupt event; raise Cancelled where a phase can be interrupted.

    A container's PID 1 ignores SIGTERM without a handler, and the runner gives 7.5 s after SIGINT."""
    from deployer.run import Interrupt

    assert isinstance(interrupt, Interrupt)

    def handler(signum: int, frame: FrameType | None) -> None:
        interrupt.event.set()
        if interrupt.raise_on_signal:
            raise Cancelled(f"cancelled by {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


_MAX_READ = 1024 * 1024  # an env file or a kubeconfig; far larger is a wrong path


def _read(path: str, flag: str) -> str:
    try:
        with Path(path).open("rb") as f:
            data = f.read(_MAX_READ + 1)
    except OSError as exc:
        raise InputError(
            f"cannot read {path}: {exc.strerror}", where=flag, hint="Check the path."
        ) from exc
    if len(data) > _MAX_READ:
        raise InputError(f"{path} is larger than 1 MiB", where=flag, hint="Check the path.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"{path} is not UTF-8 text", where=flag, hint="Save it as UTF-8."
        ) from None


def _git_head() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""
