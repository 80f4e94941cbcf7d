"""Rendering: the placeholder replaced in the text, the result parsed as it will be applied, given
its namespace and its images verified (`prepare` does all four, in that order); apply order.

Rendering is a plain text substitution on the file as written, so everything but the placeholder
stays exactly as the user wrote it (comments, quoting, key order). After rendering,
`verify_images` checks the structure, not the text: the placeholder in a comment or a key does
not count, only containers that will run the image being deployed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import InputError
from deployer.manifests.documents import Document, pod_spec
from deployer.manifests.files import display_path
from deployer.manifests.loading import parse
from deployer.manifests.names import IMAGE, shown
from deployer.manifests.shapes import check_unique
from deployer.objects import spec_containers

# Kinds that live outside namespaces (the ones a Django app's manifests plausibly hold).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "APIService",
        "Node",
        "ClusterIssuer",
    }
)

# Apply order: what others depend on first, workloads after their config, then what routes to them.
_APPLY_ORDER = (
    "Namespace",
    "CustomResourceDefinition",
    "PriorityClass",
    "StorageClass",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy",
    "ConfigMap",
    "Secret",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Ingress",
)
# Kinds that change no running pod by themselves; everything the workloads may need.
APPLIED_BEFORE_WORKLOADS = frozenset(_APPLY_ORDER[: _APPLY_ORDER.index("Deployment")])


def check_placeholder(sources: dict[Path, str], placeholder: str, root: Path | None = None) -> int:
    """How often the placeholder occurs in the text (for the log only: `verify_images` judges)."""
    return sum(text.count(placeholder) for text in sources.values())


def render(sources: dict[Path, str], placeholder: str, image_ref: str) -> dict[Path, str]:
    return {path: text.replace(placeholder, image_ref) for path, text in sources.items()}


@dataclass(frozen=True)
class ImageUse:
    """One container and the image it will run after rendering."""

    document: Document
    label: str
    image: str
    ours: bool

    @property
    def subject(self) -> str:
        return f"{self.document.subject} {self.label}"


def repository_of(image: str) -> str:
    """`reg:5000/team/app:tag@sha256:…` → `reg:5000/team/app`."""
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > last_slash else name


def near_placeholder(image: str, placeholder: str) -> bool:
    """`<IMGAE>`, `<image>`, `< IMAGE >` for `<IMAGE>`: a mistyped placeholder, not an image."""
    typed = "".join(image.split()).upper()
    wanted = placeholder.upper()
    return typed == wanted or difflib.SequenceMatcher(None, typed, wanted).ratio() >= 0.75


def verify_images(
    documents: list[Document],
    image_ref: str,
    repository: str,
    placeholder: str,
    root: Path | None = None,
) -> list[ImageUse]:
    """After rendering: every container runs `image_ref` or an image of another repository that
    the user wrote out; when there are workloads, at least one runs ours. A rendered placeholder
    inside a longer image, or our repository at another tag, is a mistake, not a choice."""
    uses: list[ImageUse] = []
    workloads: list[Document] = []
    for d in documents:
        spec = pod_spec(d)
        if spec is None:
            continue
        workloads.append(d)
        for container, label in spec_containers(spec):
            image = container.get("image")
            where = {"file": display_path(d.path, root), "line": d.line_of(container)}
            subject = f"{d.subject} {label}"
            if not image:
                raise InputError(
                    f"{subject} has no image",
                    hint=f"Write `image: {placeholder}` for the image being deployed.",
                    **where,  # type: ignore[arg-type]
                )
            ours = image == image_ref
            if not ours and not IMAGE.match(image):
                hint = "Write registry/repository:tag or @sha256:digest, without blanks."
                if near_placeholder(image, placeholder):
                    hint = f"Did you mean `{placeholder}`? (the placeholder, written exactly)"
                raise InputError(
                    f"{subject} image {shown(image)} is not an image reference",
                    hint=hint,
                    **where,  # type: ignore[arg-type]
                )
            if not ours and image_ref in image:
                raise InputError(
                    f"{subject} would run {shown(image, 120)}: the placeholder is part of a longer "
                    "image reference",
                    hint=f"Write exactly `image: {placeholder}`.",
                    **where,  # type: ignore[arg-type]
                )
            if not ours and repository_of(image) == repository:
                raise InputError(
                    f"{subject} runs {shown(image, 120)}, the repository being deployed at another "
                    "tag: it would not get the image built now",
                    hint=f"Write `image: {placeholder}` there.",
                    **where,  # type: ignore[arg-type]
                )
            uses.append(ImageUse(d, label, image, ours))
    if workloads and not any(u.ours for u in uses):
        first = workloads[0]
        raise InputError(
            f"no container runs the image being deployed ({image_ref}): the placeholder "
            f"{shown(placeholder)} is in no container's image field",
            file=display_path(first.path, root),
            line=first.line,
            hint=f"Write `image: {placeholder}` for every container to deploy (a placeholder in "
            "a comment, a key or another field does not count), or set the placeholder input.",
        )
    return uses


def assign_namespace(documents: list[Document], namespace: str, root: Path | None = None) -> str:
    """Fill in the namespace of namespaced objects that name none; return the default used.

    Default: the namespace input; else the one namespace the manifests name; else `default`.
    """
    named = {d.namespace for d in documents if d.namespace and d.kind not in CLUSTER_SCOPED_KINDS}
    if namespace:
        for d in documents:
            if d.namespace and d.namespace != namespace and d.kind not in CLUSTER_SCOPED_KINDS:
                raise InputError(
                    f"{d.subject} names namespace {d.namespace!r} but the namespace input is "
                    f"{namespace!r}",
                    file=display_path(d.path, root),
                    line=d.line,
                    hint="Remove metadata.namespace from the manifest or change the namespace input.",
                )
        default = namespace
    elif len(named) == 1:
        default = next(iter(named))
    else:
        default = "default"
    for d in documents:
        if d.kind not in CLUSTER_SCOPED_KINDS and not d.namespace:
            d.body.setdefault("metadata", {})["namespace"] = default
    check_unique(documents, root)  # `web` and `web` in `default` are one object
    return default


def apply_order(documents: list[Document]) -> list[Document]:
    """Stable sort by kind priority; unknown kinds go after the workloads, in file order."""
    rank = {kind: i for i, kind in enumerate(_APPLY_ORDER)}
    return sorted(documents, key=lambda d: rank.get(d.kind, len(_APPLY_ORDER)))


def to_yaml(sources: dict[Path, str]) -> str:
    """Rendered files joined as one multi-document stream (for `render` on stdout)."""
    parts = []
    for text in sources.values():
        body = text if text.endswith("\n") else text + "\n"
        if not body.lstrip().startswith("---"):
            body = "---\n" + body
        parts.append(body)
    return "".join(parts)


@dataclass(frozen=True)
class Prepared:
    """The manifests as they will be applied."""

    rendered: dict[Path, str]  # the text of each file, placeholder replaced
    documents: list[Document]  # parsed from `rendered`, namespaces filled in
    namespace: str  # the default namespace given to objects naming none ("" when not assigned)
    uses: list[ImageUse]  # every container and the image it runs
    placeholders: int  # how often the placeholder occurs in the text (for the log only)


def prepare(
    sources: dict[Path, str],
    *,
    placeholder: str,
    image_ref: str,
    repository: str,
    namespace: str | None,
    root: Path | None = None,
) -> Prepared:
    """Render the placeholder, parse the text as it will be applied (so a placeholder in an odd
    spot is judged rendered), give namespaced objects their namespace, and verify every
    container's image; errors in that order. `namespace` None leaves the namespaces as written
    (`deployer render` prints the text, not the objects)."""
    rendered = render(sources, placeholder, image_ref)
    documents = parse(rendered, root)
    default = assign_namespace(documents, namespace, root) if namespace is not None else ""
    uses = verify_images(documents, image_ref, repository, placeholder, root)
    placeholders = check_placeholder(sources, placeholder, root)
    return Prepared(rendered, documents, default, uses, placeholders)
