"""A bundle's manifest: its format, the packages it was made with, the sha256 of every file.

Reading a bundle starts here: a bundle of another format, a file missing or altered
since it was written (its sha256 differs) is refused with the file's name, before
anything in it is loaded.
"""

from __future__ import annotations

import hashlib
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from springtail.common.io import read_json

NAME = "springtail-model"  # the bundle's folder and artifact name
FORMAT = 1  # the bundle layout; a reader refuses any other
MANIFEST = "manifest.json"
PACKAGES = ("springtail", "torch", "torchvision", "timm", "safetensors", "xgboost", "scikit-learn",
            "numpy", "pillow")
NUMERIC = ("torch", "timm", "xgboost", "numpy")  # another version may move the last digits


def package_versions() -> dict[str, str]:
    """The installed version of each package the bundle's predictions depend on."""
    return {name: metadata.version(name) for name in PACKAGES}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root`` but the manifest, in path order."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {p.relative_to(root).as_posix(): sha256(p) for p in files}


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of the bundle at ``root``, once every file it lists is found unaltered.

    Raises:
        FileNotFoundError: ``root`` or its manifest is missing, or a listed file is.
        ValueError: naming the file: a manifest of another format, or a file whose sha256
            differs from the one recorded when the bundle was written.
    """
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such model bundle folder (run `dvc repro bundle`, `dvc pull`, "
                                f"or `dvc artifacts get <repo> springtail-model`)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing: {root} is not a springtail model bundle")
    try:
        manifest = read_json(path)
        made_by = manifest["packages"]["springtail"]
        if manifest["format"] != FORMAT:
            raise ValueError(f"{path}: bundle format {manifest['format']} (made by springtail {made_by}); "
                             f"this springtail {metadata.version('springtail')} reads format {FORMAT}")
        files = dict(manifest["files"])
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not a springtail bundle manifest (no {err})") from None
    for rel, expected in files.items():
        file = root / rel
        if not file.is_file():
            raise FileNotFoundError(f"{file}: missing from the model bundle (listed in {path})")
        if sha256(file) != expected:
            raise ValueError(f"{file}: altered since the bundle was written (its sha256 differs from "
                             f"{path}); refusing to load it")
    _warn_on_other_packages(manifest["packages"], path)
    return manifest


def _warn_on_other_packages(made_with: dict[str, str], path: Path) -> None:
    installed = package_versions()
    moved = [f"{name} {made_with.get(name)} -> {installed[name]}" for name in NUMERIC
             if made_with.get(name) != installed[name]]
    if moved:
        warnings.warn(f"{path}: made with other package versions ({'; '.join(moved)}): predictions "
                      f"may differ from the bundle's own in the last digits", stacklevel=3)
