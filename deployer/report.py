"""What the user is told at the end, as plain data: one pure module, one emitter.

A deploy (or a `wait`) ends with an outcome: the rollout results and their diagnoses, what was
applied and rolled back, and the error that stopped it, if any. `of_deploy`, `of_wait` and
`of_error` turn that into a `Report` — log lines, annotations with their titles, outputs and the
job summary's markdown — and `github.Reporter.publish` writes it, the only place that does.
Diagnoses are rendered here too (`diagnosis_text`, `diagnosis_markdown`), for the log and the
summary alike. Nothing here prints, reads a clock or talks to a service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from deployer.errors import Cancelled, DeployError, InputError, RolloutFailed, ServiceError
from deployer.kube import Applied
from deployer.results import Diagnosis, RolloutResult, diagnoses, result_of

ICONS = {"succeeded": "✅", "failed": "❌", "timed-out": "⏱️", "cancelled": "⏹️"}

# Where a deploy that applied nothing had stopped, by phase.
_STOPPED = {
    "preflight": "before any change",
    "credentials": "before any change",
    "build": "during the build",
    "push": "during the push",
    "render": "before apply",
}
# Up to this many objects of one kind are named in the State line; more are counted.
_NAMED_PER_KIND = 5


@dataclass(frozen=True)
class Annotation:
    level: str  # error, warning, notice
    message: str
    title: str
    file: str = ""
    line: int | None = None


@dataclass(frozen=True)
class Section:
    """A log group whose lines come from outside (logs, events): fenced when written."""

    title: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    sections: tuple[Section, ...] = ()
    lines: tuple[str, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    outputs: tuple[tuple[str, str], ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class DeployFacts:
    """What a deploy did, as far as it got (the pipeline's outcome, read-only)."""

    image_ref: str
    digest: str
    phase: str
    applied: Sequence[Applied] = ()
    results: Sequence[RolloutResult] = ()
    diagnoses: Sequence[Diagnosis] = ()
    rolled_back: Sequence[str] = ()  # "kind/name (what was done)", by rollback.roll_back
    error: DeployError | None = None
    requested_image: str = ""  # the image asked for, shown when none was pushed yet
    preview: Sequence[str] = ()  # dry-run: the per-object diff lines
    watch_only: bool = False  # apply: false: another tool applied what was watched
    retention: Sequence[str] = ()  # registry retention: what it kept and deleted (or would)
    url: str = ""  # the deployed app's address
    rollback_results: Sequence[RolloutResult] = ()  # the restored release's own verdicts
    rollback_problems: Sequence[str] = ()  # what the rollback could not restore
    pruned: Sequence[str] = ()  # kind/name deleted by prune (dry run: would be)
    prune_preview: bool = False  # dry-run with prune


# --- outcomes -> reports ----------------------------------------------------------------------


def of_deploy(facts: DeployFacts) -> Report:
    error = facts.error
    result = result_of(facts.results) if error is None or facts.results else "failed"
    state = state_line(facts)
    annotations = []
    if error is not None and not isinstance(error, RolloutFailed | Cancelled):
        annotations += error_annotations(error)
    annotations += _rollout_annotations(facts.results)
    annotations += [
        Annotation("error", f"{r.subject}: {r.reason}", f"Rollback {r.result}")
        for r in facts.rollback_results
        if r.result != "succeeded"
    ]
    image = facts.image_ref or facts.requested_image
    summary = [f"## django-k8s-deploy: {result}", ""]
    if error is not None and not isinstance(error, RolloutFailed):
        summary += [f"**Error:** {md_cell(str(error))}", ""]
    summary += [f"Image: `{image}`" + (f" (digest `{facts.digest}`)" if facts.digest else ""), ""]
    summary += _results_table(facts.results, facts.image_ref)
    summary += _rollback_markdown(facts)
    if facts.pruned:
        heading = "Prune would delete (dry run)" if facts.prune_preview else "Pruned"
        summary += [f"### {heading}", "", *(f"- {md_cell(p)}" for p in facts.pruned), ""]
    summary += [state, ""]
    if facts.url:
        summary += [f"URL: {md_cell(facts.url)}", ""]
    summary += _preview_markdown(facts.preview)
    if facts.retention:
        summary += ["### Registry retention", ""]
        summary += [f"- {md_cell(line)}" for line in facts.retention] + [""]
    summary += _diagnoses_markdown(facts.diagnoses)
    return Report(
        lines=(state,),
        annotations=tuple(annotations),
        outputs=(
            ("image", facts.image_ref),
            ("digest", facts.digest),
            ("result", result),
            ("deployments", deployments_json(facts.results)),
            ("url", facts.url),
        ),
        summary="\n".join(summary),
    )


def of_diagnoses(diagnoses: Sequence[Diagnosis]) -> Report:
    """The diagnosis phase's log: one group per failed rollout."""
    return Report(sections=tuple(_diagnosis_section(d) for d in diagnoses))


def of_wait(results: Sequence[RolloutResult]) -> Report:
    """`python -m deployer wait`: the same verdicts and diagnoses (their log groups were written
    by the roll-out, as in a deploy), nothing applied by us."""
    result = result_of(results)
    summary = [f"## django-k8s-deploy wait: {result}", ""]
    summary += _results_table(results, None)
    summary += _diagnoses_markdown(diagnoses(results))
    return Report(
        annotations=tuple(_rollout_annotations(results)),
        outputs=(("result", result), ("deployments", deployments_json(results))),
        summary="\n".join(summary),
    )


def of_error(error: DeployError) -> Report:
    """Stopped before the pipeline started (inputs, flags): nothing was applied."""
    problems: Sequence[DeployError] = getattr(error, "problems", None) or [error]
    state = "State: nothing was applied to the cluster."
    summary = ["## django-k8s-deploy: failed", ""]
    summary += [f"- **{title_of(p)}:** {md_cell(str(p))}" for p in problems]
    summary += ["", state]
    return Report(
        annotations=tuple(a for p in problems for a in error_annotations(p)),
        outputs=(("result", "failed"),),
        summary="\n".join(summary),
    )


def of_bug(exc: Exception, traceback_text: str = "") -> Report:
    """A bug of ours: one line asking for a report; the traceback only when asked for."""
    message = (
        f"internal error: {type(exc).__name__}: {exc} — please report it "
        "(set RUNNER_DEBUG=1 for the traceback)"
    )
    return Report(
        lines=(traceback_text,) if traceback_text else (),
        annotations=(Annotation("error", message, "Internal error"),),
    )


# --- pieces -------------------------------------------------------------------------------------


def title_of(error: DeployError) -> str:
    """The one annotation title per kind of error, wherever it is reported."""
    if isinstance(error, InputError):
        return "Invalid input"
    if isinstance(error, ServiceError):
        return "Service unavailable"
    if isinstance(error, Cancelled):
        return "Cancelled"
    if isinstance(error, RolloutFailed):
        return "Rollout failed"
    return "Deploy failed"


def error_annotations(error: DeployError) -> list[Annotation]:
    file = getattr(error, "file", None) or ""
    return [
        Annotation(
            "error",
            error.detail() if file else str(error),
            title_of(error),
            file=file,
            line=getattr(error, "line", None),
        )
    ]


def verdict_line(r: RolloutResult) -> str:
    """A rollout's verdict, printed once, when it is reached."""
    return f"{r.subject}: {r.result} after {r.duration_s:.1f}s" + (
        f": {r.reason}" if r.reason else ""
    )


def failure_line(results: Sequence[RolloutResult]) -> str:
    bad = [r for r in results if r.result != "succeeded"]
    return "; ".join(f"{r.subject} {r.result}: {r.reason}" for r in bad) or "rollout failed"


def state_line(facts: DeployFacts) -> str:
    """What the deploy left behind in the cluster, in one line, whatever happened."""
    if facts.phase == "preview":
        text = "State: dry run: nothing was applied to the cluster, nothing was built or pushed."
        if facts.prune_preview:
            text += " Prune would delete: " + (", ".join(facts.pruned) or "nothing") + "."
        return text
    if facts.watch_only:
        text = "State: watch only (apply: false): this action built, pushed and applied nothing."
        if facts.results:
            text += " Rollouts: " + "; ".join(f"{r.subject} {r.result}" for r in facts.results)
            text += "."
        return text
    if not facts.applied:
        where = _STOPPED.get(facts.phase, "before apply")
        return f"State: nothing was applied to the cluster (stopped {where})."
    text = f"State: applied {len(facts.applied)} object(s): {by_kind(facts.applied)}."
    if facts.results:
        text += " Rollouts: " + "; ".join(f"{r.subject} {r.result}" for r in facts.results) + "."
    elif facts.phase in ("apply", "run-first"):
        text += " Apply stopped part-way; nothing was watched."
    if facts.pruned:
        text += " Pruned (no longer in the manifests): " + ", ".join(facts.pruned) + "."
    return text + rollback_text(facts)


def rollback_text(facts: DeployFacts) -> str:
    """What the rollback (or a failed migration's config restore) did, and its own verdict."""
    text = ""
    if facts.rolled_back:
        text += " Rolled back: " + ", ".join(facts.rolled_back) + "."
    if facts.rollback_results:
        verdict = result_of(facts.rollback_results)
        text += (
            " The restored release is healthy: "
            if verdict == "succeeded"
            else f" The rollback {verdict}: "
        )
        text += "; ".join(f"{r.subject} {r.result}" for r in facts.rollback_results) + "."
    if facts.rollback_problems:
        text += f" Not restored: {len(facts.rollback_problems)} object(s) (see the log)."
    return text


def _rollback_markdown(facts: DeployFacts) -> list[str]:
    if not (facts.rolled_back or facts.rollback_results or facts.rollback_problems):
        return []
    out = ["### Rollback", ""]
    out += [f"- {md_cell(item)}" for item in facts.rolled_back]
    out += [f"- ⚠️ {md_cell(problem)}" for problem in facts.rollback_problems]
    out.append("")
    if facts.rollback_results:
        out += [f"The restored release: {result_of(facts.rollback_results)}", ""]
        out += _results_table(facts.rollback_results, None)
        out += _diagnoses_markdown(diagnoses(facts.rollback_results))
    return out


def by_kind(applied: Iterable[Applied]) -> str:
    """kind/name for each object, or "N kinds" once a kind has more than a handful."""
    kinds: dict[str, list[str]] = {}
    for a in applied:
        kinds.setdefault(a.kind.lower(), []).append(a.name)
    parts: list[str] = []
    for kind, names in kinds.items():
        if len(names) <= _NAMED_PER_KIND:
            parts += [f"{kind}/{name}" for name in names]
        else:
            parts.append(f"{len(names)} {kind}s")
    return ", ".join(parts)


def deployments_json(results: Sequence[RolloutResult]) -> str:
    return json.dumps(
        [
            {
                "name": r.name,
                "namespace": r.namespace,
                "result": r.result,
                "reason": r.reason,
                "duration_seconds": round(r.duration_s, 1),
                "kind": r.kind,
            }
            for r in results
        ]
    )


def _preview_markdown(lines: Sequence[str]) -> list[str]:
    """The dry-run diff in a fenced block; backticks in it could close the fence, so go."""
    if not lines:
        return []
    body = [line.replace("`", "'") for line in lines]
    return ["### Preview (dry run: nothing was changed)", "", "```text", *body, "```", ""]


# GitHub refuses a comment body over 65536 characters (counted here in UTF-16 code units, which
# is never fewer than GitHub's count of characters).
COMMENT_LIMIT = 65536


def comment_marker(target: str) -> str:
    """The hidden first line by which a later run finds the preview comment to update."""
    return f"<!-- django-k8s-deploy preview: {target} -->"


def preview_comment(
    *,
    target: str,
    image_ref: str,
    preview: Sequence[str],
    error: str,
    run_url: str,
    limit: int = COMMENT_LIMIT,
) -> str:
    """The pull request comment of a dry run: its marker, what was previewed, the diff (or why
    the preview failed). Every text given is already redacted; the diff is cut at a line to fit
    `limit`, saying how many lines were left out and where the whole preview is."""
    run = f" · [job]({run_url})" if run_url else ""
    head = [
        comment_marker(target),
        f"### django-k8s-deploy preview: `{target}`",
        "",
        f"Image `{image_ref}`{run}. Dry run: nothing was built, pushed or applied.",
        "",
    ]
    if error:
        shown = error if len(error) <= 2000 else error[:2000] + "…"  # the rest is in the log
        head += [f"**The preview failed:** {md_cell(shown)}", ""]
    body = [line.replace("`", "'") for line in preview]
    if not body:
        return "\n".join(head if error else [*head, "Nothing to preview."])
    whole = "\n".join([*head, "```text", *body, "```"])
    if _utf16(whole) <= limit:
        return whole
    where = f": {run_url}" if run_url else "."

    def note(left_out: int) -> str:
        return (
            f"… {left_out} more line(s) not shown: a comment holds at most {limit} characters. "
            f"The whole preview is in the job's summary and log{where}"
        )

    fixed = _utf16("\n".join([*head, "```text", "```", note(len(body))])) + 1
    kept: list[str] = []
    used = fixed
    for line in body:
        cost = _utf16(line) + 1
        if used + cost > limit:
            break
        kept.append(line)
        used += cost
    return "\n".join([*head, "```text", *kept, "```", note(len(body) - len(kept))])


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _rollout_annotations(results: Sequence[RolloutResult]) -> list[Annotation]:
    return [
        Annotation("error", f"{r.subject}: {r.reason}", f"Rollout {r.result}")
        for r in results
        if r.result != "succeeded"
    ]


def _results_table(results: Sequence[RolloutResult], image_ref: str | None) -> list[str]:
    """One row per rollout, every kind named the same way: `kind/name` as in every log line and
    annotation, the namespace in a column of its own (it once read `ns/name` for Deployments and
    `ns/job/name` for the others)."""
    if not results:
        return []
    image_head = "" if image_ref is None else " Image |"
    lines = [
        f"| Workload | Namespace |{image_head} Result | Duration | Reason |",
        "|---|---|" + ("" if image_ref is None else "---|") + "---|---|---|",
    ]
    for r in results:
        image = "" if image_ref is None else f" `{image_ref}` |"
        lines.append(
            f"| {md_cell(r.subject)} | {md_cell(r.namespace)} |{image} "
            f"{ICONS.get(r.result, '')} {r.result} | {r.duration_s:.1f}s | {md_cell(r.reason)} |"
        )
    return [*lines, ""]


def _diagnosis_section(d: Diagnosis) -> Section:
    return Section(f"Diagnosis: {d.subject}", tuple(diagnosis_text(d)))


def _diagnoses_markdown(diagnoses: Sequence[Diagnosis]) -> list[str]:
    out: list[str] = []
    for d in diagnoses:
        out += [diagnosis_markdown(d), ""]  # it has its own heading
    return out


# --- diagnoses ----------------------------------------------------------------------------------


def diagnosis_text(d: Diagnosis) -> list[str]:
    """The diagnosis as log lines (the caller fences them: logs and events are untrusted)."""
    out = [f"{d.subject} (namespace {d.namespace}): {d.summary}"]
    where = d.where()
    if where:
        out.append(f"  {where}")
    out.extend(f"  condition {c}" for c in d.conditions)
    for excerpt in d.logs:
        if excerpt.lines:
            out.append(f"  {excerpt.title} (last {len(excerpt.lines)} lines):")
            out.extend(f"    | {line}" for line in excerpt.lines)
        else:
            out.append(f"  {excerpt.title}: {excerpt.note}")
    if d.events:
        out.append(f"  events{d.since_text()}:")
        out.extend(f"    {event.text()}" for event in d.events)
    else:
        out.append(f"  no events{d.since_text()} beyond the routine ones")
    out.extend(f"  note: {note}" for note in d.notes)
    return out


def diagnosis_markdown(d: Diagnosis) -> str:
    out = [f"### {d.subject} (namespace `{d.namespace}`)", "", md_text(d.summary)]
    where = d.where()
    if where:
        out += ["", f"- {md_text(where)}"]
    out += [f"- condition {md_text(c)}" for c in d.conditions]
    for excerpt in d.logs:
        out.append("")
        if excerpt.lines:
            body = "\n".join(excerpt.lines)
            fence = "`" * max(3, _longest_backtick_run(body) + 1)
            out += [
                f"<details><summary>{html(excerpt.title)} "
                f"(last {len(excerpt.lines)} lines)</summary>",
                "",
                f"{fence}text",
                body,
                fence,
                "",
                "</details>",
            ]
        else:
            out.append(f"{md_text(excerpt.title)}: {md_text(excerpt.note)}")
    out.append("")
    if d.events:
        out += [
            f"Events{md_text(d.since_text())}:",
            "",
            "| time | type | reason | object | message |",
            "|---|---|---|---|---|",
        ]
        for e in d.events:
            stamp = e.when.strftime("%H:%M:%S") if e.when else ""
            message = e.message + (f" (x{e.count})" if e.count > 1 else "")
            cells = [stamp, e.type, e.reason, e.object, message]
            out.append("| " + " | ".join(_escape(c).replace("\n", " ") for c in cells) + " |")
    else:
        out.append(f"No events{md_text(d.since_text())} beyond the routine ones.")
    out += [f"- note: {md_text(note)}" for note in d.notes]
    return "\n".join(out).rstrip() + "\n"


# --- markdown -----------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#])")


def md_text(text: str) -> str:
    """Plain text that renders as itself in GitHub markdown, keeping `code` spans intact."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(p if _is_code(p) else _escape(p) for p in parts)


def md_cell(text: str) -> str:
    """Our own text for one table cell or line: pipes escaped, on one line (backticks kept)."""
    return text.replace("|", "\\|").replace("\n", " ")


def html(text: str) -> str:
    """Text for inside an HTML tag (GitHub renders no markdown in <summary>)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _is_code(part: str) -> bool:
    return len(part) >= 2 and part.startswith("`") and part.endswith("`")


def _escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _longest_backtick_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"`+", text)), default=0)
