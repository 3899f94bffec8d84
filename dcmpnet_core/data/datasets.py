"""Paired hazy/clear datasets in the public dehazing layouts, with depth targets.

Layouts (``layout=``; ``auto`` detects them, see :func:`detect_layout`).  ``SPLIT`` is ``ROOT/<split>``
when that folder exists, else ``ROOT`` itself for single-split sets (a warning says so).  Folder
names are matched case-insensitively: hazy = ``hazy|haze|IN|input``, clear = ``GT|gt|clear|clean``.

* ``pairs``: DehazeFormer/DCMPNet ``SPLIT/{hazy,GT}`` with the same file names (stems; extensions
  may differ); optional ``SPLIT/depth/<stem>.{png,npy}`` (16-bit mm / float metres).
* ``reside_its``: RESIDE ITS ``SPLIT/{hazy,clear}``, hazy ``<id>_<k>_<A>.png`` -> clear ``<id>.png``,
  optional ``SPLIT/trans/<id>_<k>.png`` transmission maps (ITS names carry no beta; it only scales
  depth, so relative depth is unaffected).
* ``reside_ots``: RESIDE OTS, hazy ``<id>_<A>_<beta>.jpg`` -> clear ``<id>.jpg``.
* ``sots``: SOTS indoor/outdoor ``SPLIT/{hazy,gt}`` (``ROOT/indoor/nyuhaze500`` style nesting is
  found), hazy ``<id>_<k>`` or ``<id>_<A>_<beta>`` -> clear ``<id>``; indoor hazy images are 620x460
  while the clear ones are 640x480: the clear image is centre-cropped by 10 px on each side.
* ``haze4k``: Haze4K (Liu et al., ACM MM 2021) ``{train,test}/{haze,gt,trans}``, hazy
  ``<id>_<A>_<beta>.png`` -> clear ``<id>.png`` and transmission ``trans/<id>.png``; A and beta from
  the name.  Reorganised copies with ``hazy``/``clear`` folders are accepted.
* ``ohaze``: O-HAZE / I-HAZE / NH-HAZE / Dense-Haze: ``<n>_outdoor_hazy.jpg`` / ``<n>_outdoor_GT.jpg``,
  ``<n>_indoor_hazy.jpg`` / ``<n>_indoor_GT.jpg``, ``<n>_hazy.png`` / ``<n>_GT.png``, either in
  ``hazy``/``GT`` subfolders or all in one folder; pairs are matched on ``<n>[_outdoor|_indoor]``.
* ``synthetic``: what ``dcmpnet synth`` writes (see :mod:`dcmpnet_core.data.synth.writer`):
  ``ROOT/synth.json`` and ``SPLIT/{hazy,GT,depth,meta}``, exact depth as ``depth/<stem>.npy``.

Items are dicts ``{"hazy": (3,H,W) float32 in [-1,1], "clear": (3,H,W) float32 in [-1,1],
"depth": (1,H,W) float32 relative depth in (0,1] (depth_convention), "depth_valid": (1,H,W) bool,
"name": str}``, RGB.  Images are read with OpenCV; all randomness comes from a per-item NumPy
generator seeded from ``seed``, the index and one draw of torch's RNG, so DataLoader workers
(which torch seeds differently) and successive epochs see different crops, and a run with
``torch.manual_seed`` set repeats exactly.  OpenCV's thread settings are left alone: changing
them inside a forked worker can deadlock when the parent already used OpenCV's thread pool.
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..utils.depth_convention import normalize_depth
from .depth_targets import (
    DEPTH_SOURCES,
    MODEL_OUTPUTS,
    DepthModel,
    depth_from_transmission,
    load_stored_depth,
    load_transmission,
)
from .transforms import image_to_tensor, map_to_tensor, paired_augment

LAYOUTS = ("auto", "pairs", "reside_its", "reside_ots", "sots", "haze4k", "ohaze", "synthetic")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
HAZY_DIRS = ("hazy", "haze", "in", "input")
CLEAR_DIRS = ("gt", "clear", "clean")
TRANS_DIRS = ("trans", "transmission")
SYNTH_MANIFEST = "synth.json"
SOTS_BORDER = 10
_SPLIT_ALIASES = {"train": ("train", "training"), "test": ("test", "testing"), "val": ("val", "valid", "validation")}
_OHAZE_RE = re.compile(r"^(?P<key>.+?)[_\- ]?(?P<kind>hazy|haze|gt|clear|clean)$", re.IGNORECASE)
_MAX_LISTED = 20


class DatasetError(ValueError):
    """A dataset folder that cannot be used as asked (missing, empty, unmatched, mismatched)."""


@dataclass(frozen=True)
class PairRecord:
    """One hazy/clear pair on disk and what is known about it.

    ``name``: unique id (the hazy file's stem); ``depth``: metric depth file (stored or
    generator-written); ``transmission``: transmission map; ``beta``/``airlight``: from the file
    name when it carries them; ``meta``: the generator's per-image JSON; ``clear_border``: pixels to
    crop from each side of the clear image when it is larger than the hazy one by twice this (SOTS).
    """

    name: str
    hazy: Path
    clear: Path
    layout: str
    depth: Path | None = None
    transmission: Path | None = None
    beta: float | None = None
    airlight: float | None = None
    meta: Path | None = None
    clear_border: int = 0


# --------------------------------------------------------------------------- folders and names
def _subdirs(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _find_child(d: Path, names: tuple[str, ...]) -> Path | None:
    by_lower = {p.name.lower(): p for p in _subdirs(d)}
    for n in names:
        if n in by_lower:
            return by_lower[n]
    return None


def _images(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))


def _pair_dirs(d: Path) -> tuple[Path, Path] | None:
    h, c = _find_child(d, HAZY_DIRS), _find_child(d, CLEAR_DIRS)
    return (h, c) if h is not None and c is not None else None


def _holds_data(d: Path) -> bool:
    if _pair_dirs(d) is not None:
        return True
    return any(_OHAZE_RE.match(p.stem) for p in _images(d))


def _resolve_split(root: Path, split: str) -> Path:
    """``ROOT/<split>`` (or an alias), else ROOT for a single-split dataset, else a nested data folder."""
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist or is not a folder")
    names = _SPLIT_ALIASES.get(split.lower(), (split.lower(),))
    found = _find_child(root, names)
    if found is not None:
        return found
    known = {n for v in _SPLIT_ALIASES.values() for n in v}
    splits = [d.name for d in _subdirs(root) if d.name.lower() in known]
    if splits:
        raise DatasetError(f"{root} has no '{split}' folder (it has: {', '.join(splits)})")
    if _holds_data(root):
        if split.lower() not in ("all", ""):
            warnings.warn(f"{root} has no '{split}' folder; using the whole folder as split '{split}'", stacklevel=3)
        return root
    nested = [d for d in _subdirs(root) if _holds_data(d)]
    if len(nested) == 1:
        return nested[0]
    if nested:
        raise DatasetError(f"{root} holds several data folders ({', '.join(d.name for d in nested)}) and none is "
                           f"named '{split}': pass split= one of them or point root at one")
    raise DatasetError(f"{root} has no '{split}' folder and no hazy/clear image folders "
                       f"(expected {root}/{split}/{{hazy,GT}} or similar)")


def _data_dir(split_dir: Path) -> Path:
    """The folder holding hazy/clear subfolders: SPLIT itself or one level down (SOTS nyuhaze500)."""
    if _pair_dirs(split_dir) is not None:
        return split_dir
    nested = [d for d in _subdirs(split_dir) if _pair_dirs(d) is not None]
    if len(nested) == 1:
        return nested[0]
    if not nested:
        raise DatasetError(f"{split_dir} has no hazy and clear folders (expected one of "
                           f"{'/'.join(HAZY_DIRS)} and one of GT/clear/clean)")
    raise DatasetError(f"{split_dir} holds several hazy/clear folder pairs: {', '.join(d.name for d in nested)}")


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f" ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return shown + more


def _nonempty_images(d: Path, what: str) -> list[Path]:
    files = _images(d)
    if not files:
        raise DatasetError(f"{what} folder {d} holds no images ({', '.join(IMAGE_EXTS)})")
    return files


def _by_stem(files: list[Path], what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    dup = []
    for f in files:
        if f.stem in out:
            dup.append(f.name)
        out[f.stem] = f
    if dup:
        raise DatasetError(f"{what}: several files share a name with different extensions: {_listing(dup)}")
    return out


def _raise_unmatched(hazy_missing: list[str], clear_missing: list[str], clear_dir: Path, hazy_dir: Path) -> None:
    parts = []
    if hazy_missing:
        parts.append(f"{len(hazy_missing)} hazy image(s) have no clear image in {clear_dir}: {_listing(hazy_missing)}")
    if clear_missing:
        parts.append(f"{len(clear_missing)} clear image(s) have no hazy image in {hazy_dir}: "
                     f"{_listing(clear_missing)}")
    if parts:
        raise DatasetError("unmatched pairs: " + "; ".join(parts))


def _float(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def _optional_file(d: Path | None, stem: str, exts: tuple[str, ...]) -> Path | None:
    if d is None:
        return None
    for e in exts:
        p = d / (stem + e)
        if p.is_file():
            return p
    return None


# --------------------------------------------------------------------------- layouts
def _pairs_records(split_dir: Path, layout: str = "pairs") -> list[PairRecord]:
    data = _data_dir(split_dir)
    hazy_dir, clear_dir = _pair_dirs(data)
    hazy = _by_stem(_nonempty_images(hazy_dir, "hazy"), str(hazy_dir))
    clear = _by_stem(_nonempty_images(clear_dir, "clear"), str(clear_dir))
    _raise_unmatched(sorted(set(hazy) - set(clear)), sorted(set(clear) - set(hazy)), clear_dir, hazy_dir)
    depth_dir = _find_child(data, ("depth",))
    meta_dir = _find_child(data, ("meta",)) if layout == "synthetic" else None
    recs = []
    for stem in sorted(hazy):
        recs.append(PairRecord(name=stem, hazy=hazy[stem], clear=clear[stem], layout=layout,
                               depth=_optional_file(depth_dir, stem, (".npy", ".png")),
                               meta=_optional_file(meta_dir, stem, (".json",))))
    return recs


def _keyed_records(split_dir: Path, layout: str) -> list[PairRecord]:
    """Hazy ``<id>_<...>`` -> clear ``<id>`` (ITS, OTS, SOTS, Haze4K)."""
    data = _data_dir(split_dir)
    hazy_dir, clear_dir = _pair_dirs(data)
    clear = _by_stem(_nonempty_images(clear_dir, "clear"), str(clear_dir))
    trans_dir = _find_child(data, TRANS_DIRS)
    depth_dir = _find_child(data, ("depth",))
    recs, missing, bad = [], [], []
    used = set()
    for f in _nonempty_images(hazy_dir, "hazy"):
        parts = f.stem.split("_")
        key = parts[0]
        nums = [_float(p) for p in parts[1:]]
        if len(parts) > 3 or any(v is None for v in nums):
            bad.append(f.name)
            continue
        if key not in clear:
            missing.append(f.name)
            continue
        used.add(key)
        beta = airlight = None
        trans = None
        if layout == "reside_its":
            # <id>_<k>_<A>; t maps are per hazy image (<id>_<k>)
            airlight = nums[1] if len(nums) == 2 else None
            if len(parts) >= 2:
                trans = _optional_file(trans_dir, f"{key}_{parts[1]}", (".png", ".npy"))
        elif len(nums) == 2:
            airlight, beta = nums
        if layout == "haze4k":
            trans = _optional_file(trans_dir, key, (".png", ".npy")) or _optional_file(
                trans_dir, f.stem, (".png", ".npy"))
        recs.append(PairRecord(name=f.stem, hazy=f, clear=clear[key], layout=layout,
                               depth=_optional_file(depth_dir, f.stem, (".npy", ".png"))
                               or _optional_file(depth_dir, key, (".npy", ".png")),
                               transmission=trans, beta=beta, airlight=airlight,
                               clear_border=SOTS_BORDER if layout == "sots" else 0))
    if bad:
        expected = {"reside_its": "<id>_<k>_<A>", "reside_ots": "<id>_<A>_<beta>", "haze4k": "<id>_<A>_<beta>",
                    "sots": "<id>_<k> or <id>_<A>_<beta>"}[layout]
        raise DatasetError(f"{len(bad)} hazy file name(s) in {hazy_dir} do not follow the {layout} pattern "
                           f"{expected}: {_listing(bad)}")
    clear_missing = sorted(set(clear) - used) if layout in ("haze4k",) else []
    _raise_unmatched(missing, clear_missing, clear_dir, hazy_dir)
    return recs


def _ohaze_records(split_dir: Path) -> list[PairRecord]:
    dirs = _pair_dirs(split_dir)
    if dirs is not None:
        hazy_files = _nonempty_images(dirs[0], "hazy")
        clear_files = _nonempty_images(dirs[1], "clear")
        hazy_dir, clear_dir = dirs
    else:
        files = _nonempty_images(split_dir, "image")
        hazy_files = [f for f in files if (m := _OHAZE_RE.match(f.stem)) and m["kind"].lower() in ("hazy", "haze")]
        clear_files = [f for f in files if (m := _OHAZE_RE.match(f.stem)) and m["kind"].lower() not in ("hazy", "haze")]
        hazy_dir = clear_dir = split_dir
        if not hazy_files:
            raise DatasetError(f"{split_dir} holds no *_hazy images (O-HAZE / NH-HAZE / Dense-Haze naming)")

    def keyed(files: list[Path], what: str) -> dict[str, Path]:
        out, bad = {}, []
        for f in files:
            m = _OHAZE_RE.match(f.stem)
            if m is None:
                bad.append(f.name)
                continue
            key = m["key"].rstrip("_- ")
            if key in out:
                bad.append(f.name)
            out[key] = f
        if bad:
            raise DatasetError(f"{len(bad)} {what} file name(s) do not follow <n>_hazy / <n>_GT naming "
                               f"(or repeat a number): {_listing(bad)}")
        return out

    hazy, clear = keyed(hazy_files, "hazy"), keyed(clear_files, "clear")
    _raise_unmatched(sorted(hazy[k].name for k in set(hazy) - set(clear)),
                     sorted(clear[k].name for k in set(clear) - set(hazy)), clear_dir, hazy_dir)
    return [PairRecord(name=k, hazy=hazy[k], clear=clear[k], layout="ohaze") for k in sorted(hazy)]


def detect_layout(root: str | Path) -> str:
    """Guess the layout of a dataset folder from its manifest, folder names and file names.

    Returns one of :data:`LAYOUTS` (never ``auto``); raises :class:`DatasetError` when unsure.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist or is not a folder")
    if (root / SYNTH_MANIFEST).is_file():
        return "synthetic"
    split_dir = None
    for s in ("train", "test", "val"):
        d = _find_child(root, _SPLIT_ALIASES[s])
        if d is not None:
            split_dir = d
            break
    if split_dir is None:
        if _holds_data(root):
            split_dir = root
        else:
            nested = [d for d in _subdirs(root) if _holds_data(d) or any(_pair_dirs(e) for e in _subdirs(d))]
            if not nested:
                raise DatasetError(f"cannot detect the layout of {root}: no train/test folder and no hazy/clear "
                                   f"image folders; pass layout= one of {LAYOUTS[1:]}")
            split_dir = nested[0]
    try:
        data = _data_dir(split_dir)
    except DatasetError:
        if any(_OHAZE_RE.match(p.stem) for p in _images(split_dir)):
            return "ohaze"
        raise
    hazy_dir, clear_dir = _pair_dirs(data)
    hazy = _images(hazy_dir)[:200]
    clear = _images(clear_dir)[:200]
    if not hazy or not clear:
        raise DatasetError(f"cannot detect the layout of {root}: {hazy_dir if not hazy else clear_dir} is empty")
    hazy_stems = [p.stem for p in hazy]
    clear_stems = {p.stem for p in clear}
    if sum(s in clear_stems for s in hazy_stems) > len(hazy_stems) // 2:
        return "pairs"
    if all(_OHAZE_RE.match(s) for s in hazy_stems):
        return "ohaze"
    parts = [s.split("_") for s in hazy_stems]
    if not all(p[0] in clear_stems for p in parts[:50]) and not any(p[0] in clear_stems for p in parts):
        raise DatasetError(f"cannot detect the layout of {root}: hazy names in {hazy_dir} (e.g. {hazy[0].name}) match "
                           f"no clear name in {clear_dir}; pass layout=")
    lowered = " ".join(x.lower() for x in root.resolve().parts[-3:])
    if "sots" in lowered or _sots_sizes(hazy[0], clear_dir):
        return "sots"
    trans_dir = _find_child(data, TRANS_DIRS)
    if all(len(p) == 3 for p in parts):
        ks = [p[1] for p in parts]
        if all(k.isdigit() for k in ks):
            return "reside_its"
        if "4k" in lowered or (trans_dir is not None and (trans_dir / (parts[0][0] + ".png")).is_file()):
            return "haze4k"
        betas = [_float(p[2]) or 0.0 for p in parts]
        return "haze4k" if max(betas) > 0.3 else "reside_ots"
    if all(len(p) == 2 for p in parts):
        return "reside_its"
    raise DatasetError(f"cannot detect the layout of {root} from names like {hazy[0].name}; pass layout=")


def _sots_sizes(hazy: Path, clear_dir: Path) -> bool:
    key = hazy.stem.split("_")[0]
    clear = _optional_file(clear_dir, key, IMAGE_EXTS + tuple(e.upper() for e in IMAGE_EXTS))
    if clear is None:
        return False
    a, b = cv2.imread(str(hazy), cv2.IMREAD_UNCHANGED), cv2.imread(str(clear), cv2.IMREAD_UNCHANGED)
    if a is None or b is None:
        return False
    return (b.shape[0] - a.shape[0], b.shape[1] - a.shape[1]) == (2 * SOTS_BORDER, 2 * SOTS_BORDER)


def list_pairs(root: str | Path, split: str = "test", layout: str = "auto") -> list[PairRecord]:
    """All hazy/clear pairs of one split, sorted by name; errors list unmatched files.

    ``layout``: one of :data:`LAYOUTS`.  Reads no image except for layout detection.
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise DatasetError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "auto":
        layout = detect_layout(root)
    split_dir = _resolve_split(root, split)
    if layout in ("pairs", "synthetic"):
        return _pairs_records(split_dir, layout)
    if layout == "ohaze":
        return _ohaze_records(split_dir)
    return _keyed_records(split_dir, layout)


# --------------------------------------------------------------------------- reading
def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as (H,W,3) float32 RGB in [0, 1] (8/16-bit, grey or with alpha)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"cannot read image {path}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    scale = 65535.0 if img.dtype == np.uint16 else 255.0 if img.dtype == np.uint8 else 1.0
    return img.astype(np.float32) * np.float32(1.0 / scale)


def _crop_border(a: np.ndarray, b: int) -> np.ndarray:
    return a[b:a.shape[0] - b, b:a.shape[1] - b]


def load_pair(rec: PairRecord) -> tuple[np.ndarray, np.ndarray]:
    """Hazy and clear (H,W,3) float32 RGB in [0, 1] at the same size (SOTS clear cropped)."""
    hazy, clear = read_rgb(rec.hazy), read_rgb(rec.clear)
    b = rec.clear_border
    if b and clear.shape[:2] == (hazy.shape[0] + 2 * b, hazy.shape[1] + 2 * b):
        clear = _crop_border(clear, b)
    if hazy.shape != clear.shape:
        raise DatasetError(f"size mismatch for {rec.hazy}: hazy is {hazy.shape[1]}x{hazy.shape[0]} but clear "
                           f"{rec.clear} is {clear.shape[1]}x{clear.shape[0]} (WxH)")
    return hazy, clear


def _fit_map(a: np.ndarray, shape: tuple[int, int], rec: PairRecord, path: Path) -> np.ndarray:
    b = rec.clear_border
    if a.shape == shape:
        return a
    if b and a.shape == (shape[0] + 2 * b, shape[1] + 2 * b):
        return _crop_border(a, b)
    raise DatasetError(f"size mismatch for {path}: it is {a.shape[1]}x{a.shape[0]} but the hazy image {rec.hazy} "
                       f"is {shape[1]}x{shape[0]} (WxH)")


class HazeDataset(Dataset):
    """Paired hazy/clear/depth samples; see the module docstring for the item format.

    ``crop``: square training crop (None = full images, for evaluation with batch 1);
    ``augment``: random crop position, horizontal flip and 90-degree rotations (``hflip_only``
    keeps only the flip); without it crops are centred.  ``depth``: one of
    :data:`~dcmpnet_core.data.depth_targets.DEPTH_SOURCES`, resolved per record (see
    :meth:`depth_source`).
    """

    def __init__(self, records: list[PairRecord], crop: int | None = 256, augment: bool = True,
                 hflip_only: bool = False, depth: str = "auto", depth_model: str | Path | None = None,
                 depth_model_output: str = "disparity", seed: int = 0) -> None:
        if not records:
            raise DatasetError("no image pairs to load")
        if crop is not None and (not isinstance(crop, (int, np.integer)) or crop < 8):
            raise DatasetError(f"crop must be an integer >= 8 or None, got {crop!r}")
        if depth not in DEPTH_SOURCES:
            raise DatasetError(f"depth must be one of {DEPTH_SOURCES}, got {depth!r}")
        if depth_model_output not in MODEL_OUTPUTS:
            raise DatasetError(f"depth_model_output must be one of {MODEL_OUTPUTS}, got {depth_model_output!r}")
        if depth == "model" and depth_model is None:
            raise DatasetError("depth='model' needs depth_model= a TorchScript (.pt/.ts) or ONNX (.onnx) file")
        if depth_model is not None and not Path(depth_model).is_file():
            raise DatasetError(f"depth model {depth_model} does not exist")
        self.records = list(records)
        self.crop = None if crop is None else int(crop)
        self.augment = bool(augment)
        self.hflip_only = bool(hflip_only)
        self.depth = depth
        self.depth_model_path = None if depth_model is None else Path(depth_model)
        self.depth_model_output = depth_model_output
        self.seed = int(seed)
        self._model: DepthModel | None = None
        self._check_sources()

    def _check_sources(self) -> None:
        need = {"stored": "depth", "synthetic": "depth", "transmission": "transmission"}.get(self.depth)
        if need is None:
            return
        missing = [r.name for r in self.records if getattr(r, need) is None]
        if self.depth == "synthetic":
            missing += [r.name for r in self.records if r.layout != "synthetic" and r.name not in missing]
        if missing:
            what = {"depth": "a depth file (depth/<stem>.png|.npy)", "transmission": "a transmission map"}[need]
            if self.depth == "synthetic":
                what = "generator depth (layout 'synthetic', depth/<stem>.npy)"
            raise DatasetError(f"depth='{self.depth}' but {len(missing)} pair(s) lack {what}: {_listing(missing)}")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_model"] = None            # loaded again in each worker
        return state

    def __len__(self) -> int:
        return len(self.records)

    def depth_source(self, rec: PairRecord) -> str:
        """The depth source used for one record: ``stored``, ``transmission``, ``synthetic``, ``model`` or ``none``."""
        if self.depth != "auto":
            return self.depth
        if rec.depth is not None:
            return "synthetic" if rec.layout == "synthetic" else "stored"
        if rec.transmission is not None:
            return "transmission"
        if self.depth_model_path is not None:
            return "model"
        return "none"

    def _depth_model(self) -> DepthModel:
        if self._model is None:
            self._model = DepthModel(self.depth_model_path, output=self.depth_model_output)
        return self._model

    def load_depth(self, rec: PairRecord, clear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Full-size depth (H,W) float32 (any positive scale, larger = farther) and validity (H,W) bool."""
        shape = clear.shape[:2]
        source = self.depth_source(rec)
        if source != "none" and rec.layout == "synthetic" and read_meta(rec).get("depth_target") is False:
            # "photo" samples: the depth the haze was made with is not the photo's depth, so no target
            return np.ones(shape, np.float32), np.zeros(shape, bool)
        if source in ("stored", "synthetic"):
            d, valid = load_stored_depth(rec.depth)
            return _fit_map(d, shape, rec, rec.depth), _fit_map(valid, shape, rec, rec.depth)
        if source == "transmission":
            t = _fit_map(load_transmission(rec.transmission), shape, rec, rec.transmission)
            return depth_from_transmission(t, rec.beta)
        if source == "model":
            return self._depth_model()(clear)
        return np.ones(shape, np.float32), np.zeros(shape, bool)

    def _rng(self, index: int) -> np.random.Generator:
        draw = int(torch.randint(0, 2**31 - 1, (1,)).item())
        return np.random.default_rng([self.seed, index, draw])

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        hazy, clear = load_pair(rec)
        depth, valid = self.load_depth(rec, clear)
        rng = self._rng(index) if self.augment else None
        hazy, clear, depth, valid = paired_augment([hazy, clear, depth, valid], self.crop, rng,
                                                   hflip_only=self.hflip_only,
                                                   nearest=[False, False, True, True])
        rel = normalize_depth(depth, valid)
        return {"hazy": image_to_tensor(hazy), "clear": image_to_tensor(clear),
                "depth": map_to_tensor(rel.astype(np.float32)), "depth_valid": map_to_tensor(valid.astype(bool)),
                "name": rec.name}


def build_dataset(root: str | Path, split: str = "train", layout: str = "auto", crop: int | None = 256,
                  augment: bool = True, hflip_only: bool = False, depth: str = "auto",
                  depth_model: str | None = None, seed: int = 0,
                  depth_model_output: str = "disparity") -> HazeDataset:
    """A map-style dataset of one split of a dehazing dataset; see :class:`HazeDataset`.

    Items: ``hazy``/``clear`` (3,H,W) float32 in [-1, 1], ``depth`` (1,H,W) float32 relative
    depth in (0, 1], ``depth_valid`` (1,H,W) bool, ``name`` str.  ``depth``: ``auto`` (stored
    depth, else transmission-derived, else the generator's, else the depth model when one is
    given, else none = all invalid), ``stored``, ``transmission``, ``synthetic``, ``model``
    (``depth_model`` file; ``depth_model_output`` says whether it predicts depth or disparity,
    see :class:`~dcmpnet_core.data.depth_targets.DepthModel`) or ``none``.
    """
    records = list_pairs(root, split, layout)
    if not records:
        raise DatasetError(f"no image pairs found under {root} for split '{split}'")
    return HazeDataset(records, crop=crop, augment=augment, hflip_only=hflip_only, depth=depth,
                       depth_model=depth_model, depth_model_output=depth_model_output, seed=seed)


def read_meta(rec: PairRecord) -> dict:
    """The generator's per-image metadata (beta, airlight, ...) of a synthetic record, or {}."""
    if rec.meta is None:
        return {}
    with open(rec.meta, encoding="utf-8") as fh:
        return json.load(fh)
