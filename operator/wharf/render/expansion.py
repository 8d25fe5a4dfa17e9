"""The kubelet's `$(VAR)` expansion, and how wharf keeps user text out of it.

The kubelet rewrites a container's `command`, `args` and env `value`s, and exec probe commands, before anything
runs: `$(VAR)` becomes the variable's value (when it is declared) and `$$` becomes `$`. On Cloud Foundry the shell
sees exactly what the user wrote (`echo $$ > pid`, `$(date)`, `$HOME`). So every string wharf renders into those
fields is `literal`, wharf's own shell scripts too, except the `reference`s wharf means the kubelet to fill in
(the pod's uid and IP, from the downward API). The kubelet's code is k8s.io/kubernetes
third_party/forked/golang/expansion; tests/cluster/gobuild/cmd/kubelet-expand runs it for the unit tests.
"""

from __future__ import annotations


def literal(text: str) -> str:
    """`text` as the kubelet hands it on unchanged: each `$` doubled (`$$` is the kubelet's escaped `$`)."""
    return text.replace("$", "$$")


def reference(variable: str) -> str:
    """What the kubelet replaces with `variable`'s value: one declared earlier in the container's `env`."""
    return f"$({variable})"
