"""How `wharf run` names itself and finds the apiserver: the pod's name when the chart gives it, never a crash for a
uid without a passwd entry (an image run under an arbitrary uid, without the chart's POD_ID), and in a pod the
apiserver address the kubelet gives (no cluster DNS needed)."""

from __future__ import annotations

import getpass
import os
import re
import socket

import pytest

from wharf.main import own_identity


def test_pod_id_names_the_operator() -> None:
    assert own_identity({"POD_ID": "wharf-7d9c-abcde", "USER": "someone"}) == "wharf-7d9c-abcde"


def test_the_login_name_from_the_environment() -> None:
    identity = own_identity({"USER": "alice"})
    assert re.fullmatch(rf"alice@{re.escape(socket.gethostname())}/\d{{14}}/[0-9a-f]{{4}}", identity), identity


def test_a_uid_without_a_passwd_entry_is_named_by_number(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_entry() -> str:
        raise KeyError(f"getpwuid(): uid not found: {os.getuid()}")  # what pwd.getpwuid raises

    monkeypatch.setattr(getpass, "getuser", no_entry)
    identity = own_identity({})
    assert identity.startswith(f"uid-{os.getuid()}@{socket.gethostname()}/"), identity


def test_in_cluster_the_apiserver_is_where_the_kubelet_says() -> None:
    # Not kopf's https://kubernetes.default.svc: that needs cluster DNS, which a hostNetwork pod may not have.
    from wharf.handlers.operator import in_cluster_server

    assert in_cluster_server({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}) == (
        "https://10.96.0.1:443"
    )
    assert in_cluster_server({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}) == (
        "https://[fd00::1]:6443"
    )
    assert in_cluster_server({}) is None
