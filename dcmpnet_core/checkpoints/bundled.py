"""Where the bundled default weights live, and what to tell a user who has none.

The default checkpoint is ``dcmpnet_core/checkpoints/weights/default.pt`` (a project checkpoint, see
:mod:`dcmpnet_core.checkpoints.format`), installed with the package once training has produced it.
The environment variable ``DCMPNET_DEFAULT_WEIGHTS`` overrides that location (a path to a
checkpoint; a path that does not exist means "no default weights", which tests use).
"""
from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.pt"
ENV_VAR = "DCMPNET_DEFAULT_WEIGHTS"

MISSING_WEIGHTS_HELP = (
    "no DCMPNet weights given and no bundled default weights are installed ({where}); get weights by "
    "training a model (dcmpnet train ...), or by converting the original release's weights "
    "(dcmpnet convert --dehaze DIACMPN-dehaze-X.pth --depth DIACMPN-depth-X.pth -o model.pt), then pass "
    "the checkpoint (--weights model.pt / Dehazer.from_checkpoint('model.pt'))"
)
DCP_HINT = ("; or use the classical dark-channel-prior backend (--backend dcp / backend='dcp'), "
            "which needs no weights")


class WeightsNotFoundError(FileNotFoundError):
    """No checkpoint was given and no default weights are installed; the message says how to get some."""


def default_weights_path() -> Path | None:
    """The bundled default checkpoint, or None when it is not installed."""
    override = os.environ.get(ENV_VAR)
    path = Path(override).expanduser() if override else DEFAULT_WEIGHTS
    return path if path.is_file() else None


def missing_weights_message(dcp_hint: bool = True) -> str:
    """One-line explanation of how to get weights, naming where the default was looked for.

    ``dcp_hint`` adds that the dark-channel-prior backend works without weights (not for export).
    """
    override = os.environ.get(ENV_VAR)
    where = f"{ENV_VAR}={override}" if override else str(DEFAULT_WEIGHTS)
    return MISSING_WEIGHTS_HELP.format(where=where) + (DCP_HINT if dcp_hint else "")
