"""Depth targets for training: stored depth, transmission maps, generator depth, or a depth model.

Every source ends in the project convention of :mod:`dcmpnet_core.utils.depth_convention`: relative
depth (H,W) float32 in (0, 1], larger = farther, ``depth / max(depth)`` over valid pixels, with a
boolean validity mask of the same shape (invalid pixels hold 1.0).  Normalisation is left to the
caller (the dataset normalises after cropping, so each crop's farthest valid pixel is 1).

Sources:

* **stored**: a 16-bit PNG in millimetres (0 = no measurement) or a ``.npy`` of float metres
  (non-finite or <= 0 = no measurement).  :func:`load_stored_depth`.
* **transmission**: a transmission map ``t`` (8- or 16-bit PNG, or ``.npy`` float) as shipped with
  RESIDE ITS and Haze4K; ``d = -ln(t) / beta``.  ``beta`` only scales ``d``, so the relative depth
  does not depend on it (ITS names carry no beta).  :func:`depth_from_transmission`.
* **synthetic**: the generator's exact depth (``.npy`` float16 metres), read like *stored*.
* **model**: a user-supplied TorchScript or ONNX network run on the clear image.  :class:`DepthModel`.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from ..utils.depth_convention import disparity_to_depth, normalize_depth

DEPTH_SOURCES = ("auto", "stored", "transmission", "synthetic", "model", "none")
MODEL_OUTPUTS = ("depth", "disparity")


class DepthError(ValueError):
    """A depth or transmission file that cannot be used (unreadable, wrong type, wrong values)."""


def load_stored_depth(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read metric depth from a 16-bit PNG (millimetres) or a ``.npy`` (float metres).

    Returns ``(depth_m, valid)``: (H,W) float32 metres (0 where invalid) and (H,W) bool.
    8-bit PNGs are refused: they cannot hold millimetres and are usually a visualisation.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            d = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DepthError(f"cannot read depth file {path}: {exc}") from None
        d = np.asarray(d)
        if d.ndim == 3 and d.shape[0] == 1:
            d = d[0]
        if d.ndim == 3 and d.shape[-1] == 1:
            d = d[..., 0]
        if d.ndim != 2 or not np.issubdtype(d.dtype, np.number):
            raise DepthError(f"depth file {path}: expected a (H,W) numeric array in metres, got shape {d.shape} "
                             f"dtype {d.dtype}")
        d = d.astype(np.float32)
        valid = np.isfinite(d) & (d > 0)
        return np.where(valid, d, 0).astype(np.float32), valid
    if suffix == ".png":
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise DepthError(f"cannot read depth file {path}")
        if img.dtype != np.uint16:
            raise DepthError(f"depth PNG {path}: expected 16-bit millimetres, got {img.dtype}")
        if img.ndim == 3:
            img = img[..., 0]
        valid = img > 0
        return (img.astype(np.float32) / 1000.0), valid
    raise DepthError(f"depth file {path}: expected .png (16-bit mm) or .npy (float metres), got {suffix!r}")


def load_transmission(path: str | Path) -> np.ndarray:
    """Read a transmission map as (H,W) float32 in [0, 1] (8/16-bit PNG scaled, or ``.npy`` float)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        t = np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
        if t.ndim == 3:
            t = t[..., 0] if t.shape[-1] in (1, 3) else t[0]
        return t
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DepthError(f"cannot read transmission map {path}")
    if img.ndim == 3:
        img = img[..., 0]            # ITS/Haze4K store t replicated over channels
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    return img.astype(np.float32)


def depth_from_transmission(t: np.ndarray, beta: float | None = None,
                            levels: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Depth ``-ln(t) / beta`` from a transmission map (H,W) in [0, 1].

    ``beta`` (per unit of depth) defaults to 1: it only scales the result, so the relative depth
    is the same.  ``levels`` is the quantisation of the stored map: ``t`` is clipped to
    ``[0.5/levels, 1 - 0.5/levels]`` (a stored 1.0 means "closer than one step", not zero depth),
    and ``t == 0`` is marked invalid (only a lower bound on depth).
    Returns ``(depth, valid)``: (H,W) float32 and (H,W) bool.
    """
    if beta is not None and not (np.isfinite(beta) and beta > 0):
        raise DepthError(f"beta must be a positive number, got {beta!r}")
    t = np.asarray(t, dtype=np.float64)
    valid = np.isfinite(t) & (t > 0)
    lo, hi = 0.5 / levels, 1.0 - 0.5 / levels
    tc = np.clip(np.where(valid, t, 1.0), lo, hi)
    d = -np.log(tc) / (beta or 1.0)
    return d.astype(np.float32), valid


def relative_from_transmission(t: np.ndarray, beta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Relative depth (convention) and validity from a transmission map: ``-ln(t)/beta`` normalised."""
    d, valid = depth_from_transmission(t, beta)
    return normalize_depth(d, valid), valid


class DepthModel:
    """A user-supplied depth network (TorchScript ``.pt``/``.ts``, ``torch.export`` ``.pt2`` or ONNX ``.onnx``).

    Input convention: one RGB image as a float32 tensor (1,3,H',W') in [0, 1], no mean/std
    normalisation (bake any normalisation into the exported model), where H' and W' are the image
    size rounded to the nearest multiple of ``multiple_of`` (the image is resized bilinearly; 32
    suits most encoders).  Output: (1,1,H',W'), (1,H',W') or (H',W'); it is resized back to the
    image size.  ``output`` says what it means: ``"depth"`` (larger = farther, any scale) or
    ``"disparity"`` (larger = nearer, e.g. MiDaS/DPT/Depth-Anything relative inverse depth);
    disparity is converted with :func:`dcmpnet_core.utils.depth_convention.disparity_to_depth`.
    ONNX models need ``onnxruntime`` (optional dependency, ``pip install onnxruntime``).
    The model runs on CPU, once per image, before any crop.
    """

    def __init__(self, path: str | Path, output: str = "disparity", multiple_of: int = 32) -> None:
        self.path = Path(path)
        if output not in MODEL_OUTPUTS:
            raise DepthError(f"depth_model_output must be one of {MODEL_OUTPUTS}, got {output!r}")
        if not self.path.is_file():
            raise DepthError(f"depth model {self.path} does not exist")
        self.output = output
        self.multiple_of = int(multiple_of)
        suffix = self.path.suffix.lower()
        if suffix == ".onnx":
            try:
                # optional: onnxruntime (the [onnx] extra) only for .onnx depth models
                import onnxruntime as ort
            except ImportError:
                raise DepthError("an ONNX depth model needs onnxruntime (pip install onnxruntime)") from None
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1      # one thread per DataLoader worker
            self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
            self._input = self._session.get_inputs()[0].name
            self._module = None
        elif suffix in (".pt", ".ts", ".pth", ".jit"):
            # torch only for TorchScript / torch.export depth models: the data pipeline runs without it
            import torch

            try:
                with warnings.catch_warnings():
                    # newer torch marks TorchScript deprecated; it still loads, and users have such files
                    warnings.simplefilter("ignore", FutureWarning)
                    self._module = torch.jit.load(str(self.path), map_location="cpu").eval()
            except (RuntimeError, ValueError) as exc:
                raise DepthError(f"depth model {self.path} is not a TorchScript file "
                                 f"(save it with torch.jit.script/trace(...).save): {exc}") from None
            self._session = None
        elif suffix == ".pt2":
            # torch only for TorchScript / torch.export depth models: the data pipeline runs without it
            import torch

            try:
                self._module = torch.export.load(str(self.path)).module()
            except (RuntimeError, ValueError) as exc:
                raise DepthError(f"depth model {self.path} is not a torch.export program: {exc}") from None
            self._session = None
        else:
            raise DepthError(f"depth model {self.path}: expected .pt/.ts (TorchScript), .pt2 (torch.export) or "
                             f".onnx, got {suffix!r}")

    def raw(self, rgb: np.ndarray) -> np.ndarray:
        """Run the model on (H,W,3) float32 RGB in [0, 1]; return its raw (H,W) float32 output."""
        h, w = rgb.shape[:2]
        m = self.multiple_of
        hh, ww = max(m, int(round(h / m)) * m), max(m, int(round(w / m)) * m)
        x = rgb if (hh, ww) == (h, w) else cv2.resize(rgb, (ww, hh), interpolation=cv2.INTER_LINEAR)
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)
        if self._module is not None:
            # torch only for TorchScript / torch.export depth models: the data pipeline runs without it
            import torch

            with torch.no_grad():
                y = self._module(torch.from_numpy(x))
            if isinstance(y, (tuple, list)):
                y = y[0]
            y = y.detach().float().cpu().numpy()
        else:
            y = np.asarray(self._session.run(None, {self._input: x})[0], dtype=np.float32)
        y = np.squeeze(y)
        if y.ndim != 2:
            raise DepthError(f"depth model {self.path.name}: expected a (1,1,H,W) output, got shape {y.shape}")
        if y.shape != (h, w):
            y = cv2.resize(y, (w, h), interpolation=cv2.INTER_LINEAR)
        return y.astype(np.float32)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Relative depth (H,W) float32 in (0, 1] and validity (H,W) bool for (H,W,3) RGB in [0, 1]."""
        y = self.raw(rgb)
        valid = np.isfinite(y) & (y > 0)
        if self.output == "disparity":
            return disparity_to_depth(y, valid), valid
        return normalize_depth(y, valid), valid
