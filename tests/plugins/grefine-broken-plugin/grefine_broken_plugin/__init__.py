"""A plugin that fails to import: grefine_kit must report it and keep working."""

raise RuntimeError("this plugin is broken on purpose")
