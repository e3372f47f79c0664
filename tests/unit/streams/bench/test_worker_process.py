"""A child process started by the launchers reads exactly the settings it was given."""

from __future__ import annotations

from rtrank.streams.bench.worker_process import settings_env
from rtrank.streams.settings import Settings
from tests.unit.streams.test_settings import every_field_changed


def test_a_child_reads_back_every_setting_it_was_started_with() -> None:
    settings = every_field_changed()
    assert Settings.from_env(settings_env(settings, base={})) == settings


def test_the_child_keeps_the_base_environment_but_none_of_its_rtrank_variables() -> None:
    env = settings_env(Settings(), base={"PATH": "/bin", "RTRANK_NOT_A_SETTING": "x"})
    assert env["PATH"] == "/bin"
    assert "RTRANK_NOT_A_SETTING" not in env
    assert Settings.from_env(env) == Settings()
