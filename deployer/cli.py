"""`python -m deployer {deploy,render,kubeconfig,wait}` and the action's entry (`action_main`).

Both paths build the same Settings and call the same pipeline. This is the one place that maps the
exception tree to exit codes: 0 success; 1 rollout failed, timed out or cancelled; 2 invalid input
or configuration; 3 an outside service still failing after retries.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import NoReturn

import yaml

from deployer import __version__, manifests, settings
from deployer import kubeconfig as kubeconfig_input
from deployer.errors import Cancelled, DeployError, InputError
from deployer.github import Reporter, neutralise
from deployer.services import Services


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit code 2 like every other bad input."""

    def error(self, message: str) -> NoReturn:
        # argparse quotes what it refused, which is the user's text: one neutralised line.
        sys.stderr.write(f"error: {neutralise(message)} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m deployer", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--version", action="version", version=f"django-k8s-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    deploy = sub.add_parser(
        "deploy",
        help="build, push, render, apply and watch (the whole action)",
        description="The whole pipeline. Secrets come from the environment or a .env "
        "file: DIGITALOCEAN_ACCESS_TOKEN, REGISTRY_PASSWORD.",
    )
    for spec in settings.INPUTS:
        if spec.secret:
            continue
        flag = f"--{spec.name}"
        if spec.name == "manifests":
            deploy.add_argument(
                "--manifests",
                "--manifest",
                dest="manifests",
                action="append",
                metavar="PATH",
                help="manifest file or glob (repeat for several)",
            )
        else:
            deploy.add_argument(
                flag,
                dest=spec.name.replace("-", "_"),
                metavar="VALUE",
                help=f"{spec.help} (default: {spec.default or 'none'})",
            )
    deploy.add_argument(
        "--kubeconfig",
        dest="kubeconfig_file",
        metavar="PATH",
        help="use this kubeconfig instead of DigitalOcean",
    )
    deploy.add_argument(
        "--secrets-file", metavar="PATH", help="env file (KEY=value) for the Secret"
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
        help="load environment variables from this file if it exists (default .env)",
    )

    render = sub.add_parser("render", help="print the manifests with the image filled in")
    render.add_argument("--manifest", action="append", required=True, metavar="PATH")
    render.add_argument("--image", required=True, metavar="REF", help="full image reference")
    render.add_argument("--placeholder", default="<IMAGE>")

    kubeconfig = sub.add_parser(
        "kubeconfig",
        help="print a short-lived kubeconfig for a DigitalOcean cluster",
        description="The token comes from DIGITALOCEAN_ACCESS_TOKEN.",
    )
    kubeconfig.add_argument("--cluster", required=True, metavar="NAME_OR_ID")
    kubeconfig.add_argument("--expiry-seconds", type=int, default=3600, metavar="N")
    kubeconfig.add_argument("--env-file", default=".env", metavar="PATH")

    wait = sub.add_parser("wait", help="watch rollouts with the current KUBECONFIG")
    wait.add_argument("--deployment", action="append", default=[], metavar="NAME")
    wait.add_argument(
        "--workload",
        action="append",
        default=[],
        metavar="KIND/NAME",
        help="deployment, statefulset, daemonset or job, e.g. job/migrate",
    )
    wait.add_argument("--namespace", default="", metavar="NS")
    wait.add_argument("--timeout", default="10m")
    wait.add_argument(
        "--settle",
        default=settings.DEFAULT_SETTLE,
        metavar="DURATION",
        help="how long new containers must stay up after kubectl's done (0: off)",
    )
    wait.add_argument("--kubeconfig", dest="kubeconfig_file", metavar="PATH")
    wait.add_argument("--context", dest="kube_context", metavar="NAME")
    return parser


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
        from deployer.plan import Interrupt

        reporter.line(
            f"django-k8s-deploy {__version__}"
            + (f" ({env['GITHUB_ACTION_REF']})" if env.get("GITHUB_ACTION_REF") else "")
        )
        config = settings.from_action_env(env, reporter.mask)
        # Docker and kubeconfig exec plugins inherit os.environ: the inputs (token, secrets) are read.
        settings.forget_inputs(os.environ)
        interrupt = Interrupt()
        with _signals(interrupt):
            outcome = pipeline.deploy(config, reporter, real_services(env), interrupt)
        return exit_code(outcome.error)

    return _guarded(reporter, env, run)


def real_services(env: Mapping[str, str]) -> Services:
    """The docker CLI (with the environment we were given), DigitalOcean's API, the cluster."""
    from deployer.digitalocean import DigitalOcean
    from deployer.docker import Docker
    from deployer.kube import Cluster

    return Services(
        docker=lambda: Docker(env=dict(env)),
        digitalocean=lambda token, api_url: DigitalOcean(token=token, api_url=api_url),
        cluster=Cluster.from_kubeconfig_dict,
    )


# -- commands -----------------------------------------------------------------------------------


def _deploy(args: argparse.Namespace, env: dict[str, str], reporter: Reporter) -> int:
    from deployer import pipeline
    from deployer.plan import Interrupt

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
        github=reporter.github,
        secrets_source=args.secrets_file or "secrets",
    )
    interrupt = Interrupt()
    with _signals(interrupt):
        outcome = pipeline.deploy(config, reporter, real_services(env), interrupt)
    return exit_code(outcome.error)


def _render(args: argparse.Namespace, env: dict[str, str], reporter: Reporter) -> int:
    paths = []
    for entry in args.manifest:
        path = Path(entry)
        if not path.is_file():
            raise InputError(f"{entry!r} is not a file", where="--manifest", hint="Check the path.")
        paths.append(path)
    sources = manifests.read_sources(tuple(paths))
    rendered = manifests.render(sources, args.placeholder, args.image)
    documents = manifests.parse(rendered)
    manifests.verify_images(
        documents, args.image, manifests.repository_of(args.image), args.placeholder
    )
    sys.stdout.write(manifests.to_yaml(rendered))
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
    from deployer.diagnose import diagnose_all
    from deployer.kube import Cluster
    from deployer.plan import Interrupt
    from deployer.rollouts import watch_reported
    from deployer.watch import Target
    from deployer.workloads import KINDS

    since = datetime.now(UTC)

    try:
        timeout_s = settings.parse_duration(args.timeout)
    except ValueError as exc:
        raise InputError(
            str(exc), where="--timeout", hint="Write it like 90s, 10m or 1h30m."
        ) from exc
    try:
        settle_s = settings.parse_settle(args.settle)
    except ValueError as exc:
        raise InputError(str(exc), where="--settle", hint="Write it like 10s, or 0.") from exc
    # Checked before anything shows them (they are echoed in every progress line).
    for name in args.deployment:
        if not manifests.is_name(name):
            raise InputError(
                f"{manifests.shown(name)} is not a Deployment name",
                where="--deployment",
                hint="Use lower-case letters, digits, '-' and '.'.",
            )
    wanted: list[tuple[str, str, str]] = [
        ("Deployment", n, "--deployment") for n in args.deployment
    ]
    for item in args.workload:
        kind, name = settings.split_workload(str(item))
        if "/" not in str(item) or kind is None or not manifests.is_name(name):
            raise InputError(
                f"{manifests.shown(item)} is not kind/name",
                where="--workload",
                hint="Write e.g. statefulset/db or job/migrate "
                "(kinds: deployment, statefulset, daemonset, job).",
            )
        wanted.append((kind, name, "--workload"))
    if not wanted:
        raise InputError(
            "nothing to wait for",
            where="--deployment",
            hint="Name at least one --deployment NAME or --workload KIND/NAME.",
        )
    if args.namespace and not manifests.is_namespace(args.namespace):
        raise InputError(
            f"{manifests.shown(args.namespace)} is not a namespace name",
            where="--namespace",
            hint="Use at most 63 lower-case letters, digits and '-'.",
        )
    kubeconfig_input.check_files(args.kubeconfig_file, env)
    cluster = Cluster.from_kubeconfig_file(args.kubeconfig_file, context=args.kube_context)
    try:
        namespace = args.namespace or cluster.default_namespace
        targets = []
        for kind, name, flag in wanted:
            found = cluster.get_object(KINDS[kind].api_version, kind, name, namespace)
            if found is None:
                raise InputError(
                    f"{kind.lower()}/{name} does not exist in namespace {namespace}",
                    where=flag,
                    hint="Check the name and --namespace.",
                )
            generation = int((found.get("metadata") or {}).get("generation") or 0)
            targets.append(Target(name=name, namespace=namespace, generation=generation, kind=kind))
        interrupt = Interrupt()
        interrupt.raise_on_signal = False
        with _signals(interrupt):
            results = watch_reported(cluster, targets, timeout_s, reporter, interrupt, settle_s)
            if not interrupt.event.is_set():
                results = diagnose_all(cluster, results, since, cancel=interrupt.event)
    finally:
        cluster.close()
    diagnoses = [r.diagnosis for r in results if r.diagnosis is not None]
    reporter.publish(report.of_wait(results, diagnoses))
    return 0 if report.result_of(results) == "succeeded" else 1


# -- plumbing -----------------------------------------------------------------------------------


def exit_code(error: DeployError | None) -> int:
    """The one mapping from how a run ended to its exit code (README: 0/1/2/3)."""
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
    from deployer.plan import Interrupt

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
