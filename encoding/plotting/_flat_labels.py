"""Names on a flatmap: the hemispheres, and ROI names that never cover each other.

Neighbouring ROIs (LOC, MT and OFA are a few millimetres apart) have their centres closer than a name
is wide. Names are placed largest ROI first, each at a point inside its ROI; a name that would cover
one already placed moves to the nearest free spot and a thin line ties it to its ROI. A name with no
free spot within a few lines of its ROI is left out (its outline stays) rather than drawn over another.
"""
from dataclasses import dataclass

import numpy as np
from matplotlib import patheffects

HEMISPHERE_GID = "hemisphere"
ROI_GID = "roi"
_HALO = [patheffects.withStroke(linewidth=1.5, foreground="white")]
_MAX_LINES_AWAY = 4     # how far (in text heights) a name may move from its ROI


@dataclass
class RoiName:
    """Where an ROI's name belongs: a member vertex nearest the members' centre."""

    name: str
    x: float
    y: float
    size: int      # member vertices drawn: larger ROIs are named first


def roi_name_anchor(name, x, y):
    """The member vertex nearest the centre of ``x, y`` (a concave ROI's centre can lie outside it)."""
    centre_x, centre_y = x.mean(), y.mean()
    nearest = np.argmin((x - centre_x) ** 2 + (y - centre_y) ** 2)
    return RoiName(name, float(x[nearest]), float(y[nearest]), int(x.size))


def freeze_layout(ax):
    """Fix the axes' limits and aspect, so pixel positions measured now are those of the saved figure."""
    ax.figure.draw_without_rendering()
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())


def name_hemispheres(ax, x, y, is_right):
    """"left hemisphere" and "right hemisphere" centred below each; returns their texts."""
    bottom = y.min() - 0.02 * np.ptp(y)
    texts = []
    for right, name in ((False, "left hemisphere"), (True, "right hemisphere")):
        side = x[is_right == right]
        if side.size:
            texts.append(ax.text((side.min() + side.max()) / 2, bottom, name, ha="center", va="top", fontsize=10,
                                 fontweight="bold", gid=HEMISPHERE_GID))
    return texts


def place_roi_names(ax, names, taken=()):
    """Draw the names, largest ROI first, none overlapping another or ``taken`` texts.

    Returns
    -------
    placed : list of Text, left_out : list of str
    """
    boxes = [text.get_window_extent() for text in taken]
    placed, left_out = [], []
    to_pixels, to_data = ax.transData, ax.transData.inverted()
    for roi in sorted(names, key=lambda r: -r.size):
        text = ax.text(roi.x, roi.y, roi.name, fontsize=6, ha="center", va="center", path_effects=_HALO,
                       gid=ROI_GID, zorder=4)
        extent = text.get_window_extent()
        box = extent.padded(extent.height / 8)   # a quarter line between names: "MT" "LOC" never read "MTLOC"
        anchor = to_pixels.transform((roi.x, roi.y))
        for dx, dy in _offsets(box.width, box.height):
            moved = box.translated(dx, dy)
            if not any(moved.overlaps(other) for other in boxes):
                break
        else:
            text.remove()
            left_out.append(roi.name)
            continue
        if dx or dy:
            text.set_position(to_data.transform(anchor + (dx, dy)))
            ax.plot([roi.x, text.get_position()[0]], [roi.y, text.get_position()[1]], color="black", lw=0.4,
                    zorder=3.5)
        boxes.append(moved)
        placed.append(text)
    return placed, left_out


def _offsets(width, height):
    """Pixel shifts to try, nearest first: whole text heights up and down, half widths sideways."""
    steps_y = 1.15 * height * np.arange(-_MAX_LINES_AWAY, _MAX_LINES_AWAY + 1)
    steps_x = 0.55 * width * np.arange(-2, 3)
    shifts = [(float(dx), float(dy)) for dx in steps_x for dy in steps_y]
    return sorted(shifts, key=lambda s: (s[0] ** 2 + s[1] ** 2, abs(s[0])))
