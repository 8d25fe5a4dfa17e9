"""The kubelet's `$(VAR)` expansion, and how wharf keeps user text out of it.

The kubelet rewrites a container's `command`, `args` and env `value`s, and exec probe commands, before anything
runs: `$(VAR)` becomes the variable's value (when it is declared) and `$$` becomes `$`. On Cloud Foundry the shell
sees exactly what the user wrote (`echo $$ > pid`, `$(date)`, `$HOME`). So every string wharf renders into those
fields is `literal`, wharf's own shell scripts too, except the `reference`s wharf means the kubelet to fill in
(the pod's uid and IP, from the downward API). The kubelet's code is k8s.io/kubernetes
third_party/forked/golang/expansion; tests/cluster/gobuild/cmd/kubelet-expand runs it for the unit tests.
"""

from __future__ import annotations

import re

# The kubelet reads `$` specially only before `$` (the escape) or `(` (a reference); elsewhere a `$` stays a `$`.
_SPECIAL = re.compile(r"\$(?=[$(])")


def literal(text: str) -> str:
    """`text` as the kubelet hands it on unchanged. Only a `$` the kubelet would read (one before `$` or `(`) is
    doubled into its escape, so the everyday `$PORT` or `${HOME}` stays as written in `kubectl get -o yaml`."""
    return _SPECIAL.sub("$$", text)


def reference(variable: str) -> str:
    """What the kubelet replaces with `variable`'s value: one declared earlier in the container's `env`."""
    return f"$({variable})"
