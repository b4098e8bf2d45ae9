"""Entry point of the platform's ``batch_inference`` tasks (its own folder: the child puts a
script's folder first on ``sys.path``, which must shadow nothing)."""

from lakekit.batch_inference import run

__all__ = ["run"]
