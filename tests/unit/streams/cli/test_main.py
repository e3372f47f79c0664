"""`rtrank` is rtrank's command: its help, its groups, Faust's worker kept, settings read once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rtrank.deploy.kafka.broker import free_port
from rtrank.streams.cli.context import pass_settings
from rtrank.streams.cli.main import build_cli, main, worker_command
from rtrank.streams.settings import Settings
from rtrank.streams.worker.app import RtrankApp

FAUST_ONLY = ("agents", "clean-versions", "completion", "livecheck", "model", "models")


@pytest.fixture
def environ(monkeypatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """An environment with no RTRANK_* variable but an unused broker and an in-memory store, and
    ``sys.argv`` without pytest's arguments: Faust's group reads ``-W``/``-A`` from the list
    ``sys.argv`` was at import, so it is emptied in place."""
    for name in [n for n in os.environ if n.startswith("RTRANK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RTRANK_BROKER", "kafka://127.0.0.1:9")  # never connected
    monkeypatch.setenv("RTRANK_STORE", "memory://")
    monkeypatch.setenv("RTRANK_DATA_DIR", str(tmp_path))
    argv = sys.argv[:]
    sys.argv[:] = ["rtrank"]
    yield monkeypatch
    sys.argv[:] = argv


def help_text(*args: str) -> str:
    result = CliRunner().invoke(build_cli(Settings()), [*args, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def section(text: str, title: str) -> list[str]:
    """The command names listed under ``title`` in a help text."""
    lines = text.split(f"{title}:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [line.split()[0] for line in lines]


def test_help_describes_rtrank_and_not_faust(environ) -> None:
    text = help_text()
    assert text.splitlines()[2].strip().startswith("rtrank: real-time")
    assert "rtrank demo" in text and "rtrank worker" in text
    assert "Welcome" not in text and "faust-streaming.github.io" not in text


def test_help_groups_the_commands_with_the_worker_first(environ) -> None:
    text = help_text()
    assert section(text, "Run commands") == ["worker", "trainer", "demo"]
    assert section(text, "Data commands") == ["produce", "tail", "forget"]
    assert section(text, "Model commands") == ["train", "eval", "rollback"]
    assert section(text, "Operate commands") == ["kafka", "config", "keys", "faust"]
    assert section(text, "Measure commands") == ["bench", "experiment"]


@pytest.mark.parametrize("name", FAUST_ONLY)
def test_a_faust_only_command_is_under_rtrank_faust_not_at_the_top(environ, name: str) -> None:
    top = help_text()
    assert not any(line.split()[:1] == [name] for line in top.splitlines())
    assert name in section(help_text("faust"), "Commands")


def test_worker_is_fausts_worker_command_with_its_options(environ) -> None:
    text = help_text("worker")
    assert text.startswith("Usage: rtrank worker [OPTIONS]")
    assert "--web-port" in text and "--loglevel" in text


def test_worker_is_listed_as_rtrank_s_stream_processor(environ) -> None:
    listed = [line for line in help_text().splitlines() if line.split()[:1] == ["worker"]]
    assert listed == ["  worker   The stream processor: events in, lists out (/health, /metrics)."]


def test_version_names_rtrank(environ) -> None:
    result = CliRunner().invoke(build_cli(Settings()), ["--version"])
    assert result.output.startswith("rtrank ")


def test_a_command_receives_the_settings_the_app_was_built_from(environ, tmp_path: Path) -> None:
    settings = Settings(broker="memory://", store="memory://", data_dir=tmp_path, top_k=7)
    group = build_cli(Settings())

    @group.command("probe")
    @pass_settings
    def probe(received: Settings) -> None:
        click.echo(f"same object: {received is settings}")

    result = CliRunner().invoke(group, ["probe"], app=RtrankApp(settings))
    assert result.output == "same object: True\n"


def test_a_command_invoked_alone_receives_the_settings_given_as_obj() -> None:
    settings = Settings(top_k=7)

    @click.command()
    @pass_settings
    def probe(received: Settings) -> None:
        click.echo(received.top_k)

    assert CliRunner().invoke(probe, [], obj=settings).output == "7\n"


def test_main_shows_rtrank_s_help(environ, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["rtrank", "--help"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 0
    assert "Run commands:" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["tail"], ["worker"], ["--help"]])
def test_a_bad_setting_ends_any_command_with_one_line_naming_the_variable(
    environ, monkeypatch, capsys, command: list[str]
) -> None:
    environ.setenv("RTRANK_PARTITIONS", "many")
    monkeypatch.setattr("sys.argv", ["rtrank", *command])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "RTRANK_PARTITIONS" in err and "Traceback" not in err


@pytest.mark.parametrize("variable", ["RTRANK_UPDATE_VERIFY_KEY_FILE", "RTRANK_WEB_TOKEN_FILE"])
def test_an_unreadable_secret_file_ends_any_command_with_one_line_naming_the_variable(
    variable: str, environ, monkeypatch, capsys, tmp_path: Path
) -> None:
    environ.setenv(variable, str(tmp_path / "missing-file"))
    monkeypatch.setattr("sys.argv", ["rtrank", "worker"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert variable in err and "missing-file" in err


def test_a_worker_whose_broker_is_not_up_yet_says_so_and_starts_waiting_for_it() -> None:
    started = []
    faust_worker = click.Command("worker", callback=lambda: started.append(True))
    settings = Settings(broker=f"kafka://127.0.0.1:{free_port()}")  # nothing listens there
    result = CliRunner().invoke(worker_command(faust_worker, settings), [])
    assert result.exit_code == 0, result.output
    assert started == [True]
    assert result.output.startswith("Warning: cannot connect to Kafka at 127.0.0.1:")


def test_the_worker_command_loads_neither_torch_nor_the_benchmarks():
    """Only the worker's model process needs torch: `rtrank worker` imports its own command
    alone, and the served model is imported in the child."""
    probe = (
        "import sys\n"
        "sys.argv = ['rtrank', 'worker', '--help']\n"
        "from rtrank.streams.cli.main import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [m for m in ('torch', 'faiss', 'rtrank.model.sasrec', 'rtrank.streams.bench',\n"
        "                      'rtrank.streams.scorer.served_model') if m in sys.modules]\n"
        "print('loaded:', loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTRANK_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Start worker instance" in done.stdout
    assert "loaded: []" in done.stdout


def test_a_command_is_listed_before_it_is_imported_and_found_by_its_name():
    group = build_cli(Settings())
    assert "bench" not in group.commands
    assert "bench" in group.list_commands(click.Context(group))
    assert group.get_command(click.Context(group), "bench").name == "bench"
