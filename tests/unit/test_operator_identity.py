"""`wharf run`'s kopf identity: the pod's name when the chart gives it, and never a crash for a uid without a
passwd entry (an image run under an arbitrary uid, without the chart's POD_ID)."""

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
