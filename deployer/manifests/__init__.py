"""Manifests: the user's files found, loaded as hostile YAML with file:line, shape-checked,
rendered, and asked questions. One module per concern, in the order a deploy meets them:

- `files`: the `manifests` input as files inside the workspace (globs, limits), read as UTF-8;
  a directory holding a kustomization is read as what `kustomize` builds from it;
- `kustomize`: a kustomization tree checked as hostile (fields, local paths inside the
  workspace), then built by the kustomize binary with limits and origin annotations;
- `origins`: each object kustomize built named by its source file:line, the annotation removed;
- `loading`: untrusted YAML (no aliases, depth and count limits, duplicate keys refused) into
  `Document`s that remember file:line;
- `shapes`: every field our code reads checked for type and form; duplicate objects refused;
- `rendering`: the placeholder replaced, the result parsed, given its namespace and its images
  verified (`prepare`, the one place that sequence is written), and the apply order;
- `documents`: `Document` and what is read off a workload (pod spec, images, config references);
- `names`: Kubernetes name forms and `shown`, how a value from the files goes into a message.

The names below are re-exported so `from deployer import manifests` … `manifests.parse(...)`
works as it did when this was one module.
"""

from deployer.manifests.documents import (
    WORKLOAD_KINDS,
    ConfigReference,
    Document,
    check_keys,
    config_references,
    deployments,
    images,
    keys_of,
    pod_spec,
    pod_template,
)
from deployer.manifests.files import (
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_GLOB_ENTRIES,
    MAX_TOTAL_BYTES,
    display_path,
    find_files,
    glob_magic,
    inside_workspace,
    read_sources,
)
from deployer.manifests.kustomize import KUSTOMIZE_VERSION, is_kustomization
from deployer.manifests.loading import MAX_DEPTH, MAX_DOCUMENTS, load_yaml, parse
from deployer.manifests.names import is_name, is_namespace, shown
from deployer.manifests.rendering import (
    APPLIED_BEFORE_WORKLOADS,
    CLUSTER_SCOPED_KINDS,
    ImageUse,
    Prepared,
    apply_order,
    assign_namespace,
    check_placeholder,
    prepare,
    render,
    repository_of,
    to_yaml,
    verify_images,
)
from deployer.manifests.shapes import check_object, check_unique

__all__ = [
    "APPLIED_BEFORE_WORKLOADS",
    "CLUSTER_SCOPED_KINDS",
    "KUSTOMIZE_VERSION",
    "MAX_DEPTH",
    "MAX_DOCUMENTS",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_GLOB_ENTRIES",
    "MAX_TOTAL_BYTES",
    "WORKLOAD_KINDS",
    "ConfigReference",
    "Document",
    "ImageUse",
    "Prepared",
    "apply_order",
    "assign_namespace",
    "check_keys",
    "check_object",
    "check_placeholder",
    "check_unique",
    "config_references",
    "deployments",
    "display_path",
    "find_files",
    "glob_magic",
    "images",
    "inside_workspace",
    "is_kustomization",
    "is_name",
    "is_namespace",
    "keys_of",
    "load_yaml",
    "parse",
    "pod_spec",
    "pod_template",
    "prepare",
    "read_sources",
    "render",
    "repository_of",
    "shown",
    "to_yaml",
    "verify_images",
]
