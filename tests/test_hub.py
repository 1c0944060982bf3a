"""Hub access helpers: fail fast without a network, never on a hung DNS lookup."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from grefine_kit import hub


def test_offline_flags_short_circuit(monkeypatch: pytest.MonkeyPatch):
    def never(*_args: object) -> None:
        raise AssertionError("no lookup in offline mode")

    monkeypatch.setattr(socket, "getaddrinfo", never)
    monkeypatch.setenv("GREFINE_OFFLINE", "1")
    assert hub.offline_requested() and not hub.hub_reachable()


def test_unresolvable_and_hanging_lookups_are_unreachable(monkeypatch: pytest.MonkeyPatch):
    for flag in ("GREFINE_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(flag, raising=False)

    def fails(*_args: object) -> None:
        raise socket.gaierror("Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fails)
    assert not hub.hub_reachable()

    def hangs(*_args: object) -> None:
        time.sleep(5)

    monkeypatch.setattr(socket, "getaddrinfo", hangs)
    started = time.perf_counter()
    assert not hub.hub_reachable(timeout=0.2)
    assert time.perf_counter() - started < 2

    seen: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port: seen.append(host) or [])
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example.org")
    assert hub.hub_reachable() and seen == ["mirror.example.org"]


def test_quiet_hub_logs_drops_only_retry_noise(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING), hub.quiet_hub_logs():
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
        logging.error("Failed to download weights for tag 'openai'")
        logging.getLogger("huggingface_hub").warning("something else")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["something else"]
    logging.getLogger("huggingface_hub").warning("Retrying in 2s")  # filters are removed afterwards
    assert caplog.records[-1].getMessage() == "Retrying in 2s"
