"""Subcommands contributed by plugins (hook ``register_commands``, see ``grefine_kit.parts.hookspecs``).

A plugin registers ``register("serve", "grefine_serve.command:serve", summary="...")``. The
``grefine`` group gets a stub per registered name: ``grefine --help`` shows the summary
without importing the plugin's command module; running the subcommand (or its ``--help``)
imports the target, a ``click.Command``, and hands it the arguments. A name the core already
uses, a second registration of a name, a target that is not ``module:attr`` and a hook that
raises are skipped with a warning on stderr; the other commands keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["PluginCommand", "add_plugin_commands", "registered_commands"]

HOOK = "register_commands"


class PluginCommand(click.Command):
    """A stub that loads the real command (``target``, ``"module:attr"``) when it is used."""

    def __init__(self, name: str, target: str, *, summary: str = "", distribution: str = "?") -> None:
        super().__init__(name, help=summary, short_help=summary, add_help_option=False)
        self.target = target
        self.distribution = distribution
        self._real: click.Command | None = None

    def load(self) -> click.Command:
        """The real command; ``UserError`` when it cannot be imported (a missing dependency)."""
        from grefine_kit.errors import PluginError
        from grefine_kit.parts.registry import import_target

        if self._real is None:
            obj = import_target(self.target, f"command {self.name!r}", self.distribution)
            if not isinstance(obj, click.Command):
                raise PluginError(
                    f"command {self.name!r} (from {self.distribution}): {self.target!r} is not a "
                    f"click command (it is a {type(obj).__name__})"
                )
            self._real = obj
        return self._real

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        # the group invokes ``ctx.command``: the real command from here on
        try:
            real = self.load()
        except Exception as exc:
            from grefine_kit.errors import error_text

            click.echo(f"grefine: error: {error_text(exc)}", err=True)
            raise SystemExit(2) from None
        return real.make_context(info_name, args, parent=parent, **extra)


def registered_commands(warn: Callable[[str], None] | None = None) -> dict[str, PluginCommand]:
    """Stubs for the commands plugins register, by name (nothing is imported but the plugins)."""
    from grefine_kit.parts.registry import get_registry

    registry = get_registry()
    hook = getattr(registry.plugin_manager.hook, HOOK, None)
    found: dict[str, PluginCommand] = {}
    if hook is None:
        return found
    say = warn or (lambda message: None)
    for impl in hook.get_hookimpls():
        distribution = registry.distributions.get(impl.plugin_name, "?")

        def register(name: str, target: Any, /, _dist: str = distribution, **metadata: Any) -> None:
            if (
                not isinstance(name, str)
                or not name.strip()
                or not isinstance(target, str)
                or ":" not in target
            ):
                say(f"plugin {_dist}: command {name!r} must be a name and a 'module:attr' string")
                return
            if name in found:
                say(f"plugin {_dist}: command {name!r} is already registered by {found[name].distribution}")
                return
            found[name] = PluginCommand(
                name, target, summary=str(metadata.get("summary", "")), distribution=_dist
            )

        try:
            impl.function(register=register)
        except Exception as exc:  # a broken plugin loses its commands, never the others
            say(f"plugin {distribution}: {HOOK} raised {type(exc).__name__}: {exc}")
    return found


def add_plugin_commands(group: click.Group) -> None:
    """Add the plugins' commands to ``group``; names the group already has win (with a warning)."""

    def warn(message: str) -> None:
        click.echo(f"grefine: warning: {message}", err=True)

    for name, command in registered_commands(warn).items():
        existing = group.commands.get(name)
        if existing is None:
            group.add_command(command, name)
        elif not isinstance(existing, PluginCommand):
            warn(f"plugin {command.distribution}: command {name!r} is a built-in command; ignored")
