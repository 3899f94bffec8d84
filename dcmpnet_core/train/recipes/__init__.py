"""The bundled training recipes (``<name>.yaml`` here), named on the command line: ``dcmpnet train synthetic``.

``default`` (the bundled weights' campaign), ``its`` / ``ots`` (the paper's RESIDE recipes) and
``synthetic`` (a few CPU minutes on ``dcmpnet synth`` data).  Copy one to change more than a few
``key=value`` overrides.
"""
from __future__ import annotations

import os
from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent


def recipe_names() -> list[str]:
    """The names of the bundled recipes, sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def resolve_recipe(name_or_path: str | os.PathLike) -> Path:
    """A training YAML: an existing file as given, else the bundled recipe of that name.

    Raises FileNotFoundError naming both the missing file and the available recipes.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = os.fspath(name_or_path)
    bundled = RECIPES_DIR / f"{text}.yaml"
    if os.sep not in text and "/" not in text and not path.suffix and bundled.is_file():
        return bundled
    raise FileNotFoundError(f"training config {text!r} is neither a file nor a bundled recipe "
                            f"(recipes: {', '.join(recipe_names())})")
