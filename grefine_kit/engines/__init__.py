"""Engines: who runs a run's items (``local`` built in; ``ray`` from the grefine-ray plugin)."""

from grefine_kit.engines.base import Engine, Task, TaskWorker, Work, Worker, batches

__all__ = ["Engine", "Task", "TaskWorker", "Work", "Worker", "batches", "get_engine"]


def get_engine(name: str = "local", **options: object) -> Engine:
    """Build the engine registered as ``name`` with ``options`` (``UserError`` when unknown)."""
    from grefine_kit.parts.registry import get_registry

    return get_registry().create_as(
        "engine", name, {k: v for k, v in options.items() if v is not None}, Engine
    )
