"""The console script's entry: the collector is off for start-up only, and the exit status is main's."""

import gc

import pytest

from pdroof.cli import app, entry


def test_collector_resumes_for_the_command(monkeypatch):
    seen = {}

    def fake_main(argv):
        seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count(), argv=argv)
        return 3

    monkeypatch.setattr(app, "main", fake_main)
    monkeypatch.setattr("sys.argv", ["pdroof", "estimate", "--help"])
    try:
        with pytest.raises(SystemExit) as exc:
            entry.run()
    finally:
        gc.unfreeze()
    assert exc.value.code == 3
    assert seen == {"enabled": True, "frozen": seen["frozen"], "argv": ["estimate", "--help"]}
    assert seen["frozen"] > 0
    assert "estimate" in app._registered  # the command was registered before the freeze


def test_collector_back_on_when_start_up_fails(monkeypatch):
    def broken(argv):
        raise RuntimeError("boom")

    monkeypatch.setattr(app, "prepare", broken)
    with pytest.raises(RuntimeError):
        entry.run()
    assert gc.isenabled()


def test_shell_completion_is_offered_and_completes_commands_and_options():
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pdroof", "--help"], capture_output=True, text=True).stdout
    assert "--install-completion" in out and "--show-completion" in out
    env = {**os.environ, "_PDROOF_COMPLETE": "complete_bash", "COMP_WORDS": "pdroof rank --obj", "COMP_CWORD": "2"}
    done = subprocess.run([sys.executable, "-m", "pdroof"], capture_output=True, text=True, env=env)
    assert "--objective" in done.stdout
