"""Plugin subcommands (hook ``register_commands``): listed by ``grefine --help`` without being
imported, loaded when run, and a bad registration never breaks the other commands."""

from __future__ import annotations

import sys
import types

import click
from click.testing import CliRunner

from grefine_kit import hookimpl
from grefine_kit.cli.plugin_commands import PluginCommand, add_plugin_commands, registered_commands

TARGET = "grefine_test_hello_cmd"


def _install_target(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    module = types.ModuleType(TARGET)

    @click.command()
    @click.option("--name", default="world")
    def hello(name: str) -> None:
        """Say hello."""
        click.echo(f"hello {name}")

    module.hello = hello  # type: ignore[attr-defined]
    module.not_a_command = 42  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, TARGET, module)


class Plugin:
    @hookimpl
    def register_commands(self, register):  # type: ignore[no-untyped-def]
        register("hello", f"{TARGET}:hello", summary="says hello")
        register("list", f"{TARGET}:hello", summary="clashes with a built-in")
        register("broken", f"{TARGET}:not_a_command")
        register("missing", "grefine_no_such_module_xyz:cmd")
        register("bad", "no-colon")


class Raising:
    @hookimpl
    def register_commands(self, register):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")


def _group() -> click.Group:
    @click.group()
    def grefine() -> None:
        pass

    @grefine.command("list")
    def list_() -> None:
        click.echo("built-in list")

    return grefine


def test_plugin_commands_are_lazy_and_checked(register_plugin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    register_plugin(Plugin(), name="hello-plugin", distribution="grefine-hello")
    register_plugin(Raising(), name="raising", distribution="grefine-raising")
    warnings: list[str] = []
    found = registered_commands(warnings.append)
    assert set(found) - {"serve"} == {"hello", "list", "broken", "missing"}  # serve: if installed
    assert isinstance(found["hello"], PluginCommand) and found["hello"].distribution == "grefine-hello"
    assert any("'bad' must be a name and a 'module:attr' string" in w for w in warnings)
    assert any("register_commands raised RuntimeError: boom" in w for w in warnings)

    group = _group()
    runner = CliRunner()
    add_plugin_commands(group)
    listing = runner.invoke(group, ["--help"])
    assert "says hello" in listing.output and TARGET not in sys.modules  # listed, not imported
    assert runner.invoke(group, ["list"]).output == "built-in list\n"  # the core's name wins
    _install_target(monkeypatch)
    result = runner.invoke(group, ["hello", "--name", "grefine"])
    assert result.exit_code == 0 and result.output == "hello grefine\n"
    assert "--name" in runner.invoke(group, ["hello", "--help"]).output
    broken = runner.invoke(group, ["broken"])
    assert broken.exit_code == 2 and "is not a click command (it is a int)" in broken.output
    missing = runner.invoke(group, ["missing"])
    assert (
        missing.exit_code == 2
        and "command 'missing' (from grefine-hello) cannot be imported" in missing.output
    )
