"""The command line itself: help that teaches (an example under every command, each a valid invocation),
``--version``, ``-h``, and ``--debug`` before or after the command."""

from __future__ import annotations

import shlex
from importlib.metadata import version

import pytest
import typer
from typer.testing import CliRunner

from bidir_cli.cli import app

COMMANDS = ["train", "eval", "compare", "experiment", "results-page", "mine"]
GROUP = typer.main.get_command(app)


def example_lines(name: str) -> list[str]:
    epilog = GROUP.get_command(None, name).epilog or ""
    return [line for line in epilog.splitlines() if line.startswith("bidir ")]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_commands_help_ends_with_examples_that_parse(name):
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())  # the help wraps long lines at the terminal's width
    lines = example_lines(name)
    assert lines and "Examples" in text
    for line in lines:
        assert line in text  # shown whole at a wide terminal
        words = shlex.split(line)
        assert words[:2] == ["bidir", name]
        command = GROUP.get_command(None, name)
        # The example's options exist and take the values given (an unknown option or a missing value raises).
        with command.make_context(name, words[2:], resilient_parsing=False) as context:
            assert context.params


def test_an_example_with_a_misspelt_option_would_fail_the_check_above():
    command = GROUP.get_command(None, "train")
    with pytest.raises(typer.TyperException, match="No such option: --dry-rnu"):
        command.make_context("train", ["configs/quickstart.yaml", "--dry-rnu"], resilient_parsing=False)


def test_version_and_short_help():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"bidir {version('bidir')}"
    for args in (["-h"], ["train", "-h"], ["compare", "-h"]):
        short, long = (CliRunner().invoke(app, [*args[:-1], flag]) for flag in ("-h", "--help"))
        assert short.exit_code == 0 and short.stdout == long.stdout and "Usage: bidir" in short.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command_shows_the_traceback(tmp_path, where):
    args = ["train", str(tmp_path / "missing.yaml")]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" in result.stderr and "no such config file" in result.stderr
    plain = CliRunner().invoke(app, ["train", str(tmp_path / "missing.yaml")])
    assert plain.exit_code == 2 and "Traceback" not in plain.stderr  # and it does not stick to later commands
