"""The items judged: names, optionally with one image each.

An items file is a TSV/CSV with a ``name`` column, or a text file with one name per line. Optional
columns: ``label``, the words the judge reads (default: the name; e.g. ``air conditioner`` for THINGS'
``air_conditioner``, or ``bat (animal)`` for ``bat1``), and ``image``. Names identify items in triplet
files, embeddings and RSA. With ``--images folder/`` every item needs an image: the ``image`` column's file
(relative to the folder), or else ``<folder>/<name>.<jpg|jpeg|png|webp>``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class Items:
    """Item names in a fixed order (row ``i`` of every triplet file and embedding), and their images.

    Attributes
    ----------
    names : tuple of str
    images : tuple of str or None
        One image path per item, or None when the items are names only.
    labels : tuple of str or None
        What the judge reads for each item (None: the names).
    """

    names: tuple
    images: tuple | None = None
    labels: tuple | None = None

    @property
    def words(self) -> tuple:
        """The text shown to the judge for each item."""
        return self.labels or self.names

    def __len__(self):
        return len(self.names)

    @property
    def fingerprint(self) -> str:
        """Changes when a name, the order or an image path changes (compared when a store is reopened)."""
        text = json.dumps({"names": list(self.names), "images": list(self.images or []),
                           "labels": list(self.labels or [])})
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]

    def index(self) -> dict:
        return {name: i for i, name in enumerate(self.names)}


def read_items(path, images=None) -> Items:
    """Read an items file; with ``images`` (a folder), find every item's image and check it exists.

    Raises
    ------
    InputError
        Missing file, no ``name`` column, an empty or repeated name, or a missing image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: items file not found.")
    if path.suffix.lower() in (".tsv", ".csv"):
        table = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str,
                            keep_default_na=False)
        if "name" not in table.columns:
            raise InputError(f"{path}: field 'name' is missing; an items table needs a name column "
                             f"(found {', '.join(table.columns)}).")
        names = [n.strip() for n in table["name"]]
        listed = [i.strip() for i in table["image"]] if "image" in table.columns else None
        labels = [t.strip() or n for t, n in zip(table["label"], names)] if "label" in table.columns else None
    else:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        listed = labels = None
    for row, name in enumerate(names):
        if not name:
            raise InputError(f"{path}: field 'name' is empty in row {row + 1}.")
    repeated = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) < len(names) else []
    if repeated:
        raise InputError(f"{path}: field 'name' lists '{repeated[0]}' more than once; item names must be unique.")
    if len(names) < 3:
        raise InputError(f"{path}: field 'name' lists {len(names)} items; a triplet needs at least 3.")
    labels = tuple(labels) if labels is not None and labels != names else None
    if images is None:
        return Items(tuple(names), None, labels)
    return Items(tuple(names), tuple(_find_images(path, names, listed, Path(images))), labels)


def _find_images(path, names, listed, folder):
    if not folder.is_dir():
        raise InputError(f"--images {folder}: folder not found.")
    found = []
    for row, name in enumerate(names):
        if listed is not None and listed[row]:
            image = folder / listed[row]
            if not image.is_file():
                raise InputError(f"{path}: field 'image' of item '{name}' names {image}, which does not exist.")
        else:
            candidates = [folder / f"{name}{suffix}" for suffix in IMAGE_SUFFIXES]
            image = next((c for c in candidates if c.is_file()), None)
            if image is None:
                raise InputError(f"--images {folder}: no image for item '{name}' (looked for {name}.jpg, "
                                 f".jpeg, .png, .webp; or give an 'image' column in {path}).")
        found.append(str(image.resolve()))
    return found


def load_image(path):
    """One item image as RGB (PIL), or an InputError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise InputError(f"{path}: not a readable image ({err}).") from None
