"""A plugin that claims a built-in name: the registry must reject it, naming both distributions."""

from grefine_kit import hookimpl


@hookimpl
def register_indicators(register):
    register("pq-map", "grefine_dupe_plugin:Nothing")
    register("dupe-only", "grefine_dupe_plugin:Nothing")


class Nothing:
    needs_prompt = False
