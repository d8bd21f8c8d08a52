"""Coordinate atlases: spheres around published MNI centres, on a volume grid or on an fsaverage mesh.

The centres are those of Seitzman et al. 2020 (NeuroImage 206:116290): 300 ROIs of 4-5 mm radius over
cortex, subcortex and cerebellum, each assigned to one of 13 networks (15 unassigned), which nilearn ships
with its package (``nilearn.datasets.fetch_coords_seitzman_2018`` reads a file inside nilearn, nothing is
downloaded).

- On a volume (MNI152 voxels inside a brain mask) an ROI is the voxels whose centre lies within its
  radius of the ROI's centre, as nilearn's ``NiftiSpheresMasker`` draws spheres; a sphere that holds no
  voxel of the mask is left out, never replaced by its nearest voxel.
- On fsaverage meshes an ROI is the vertices of its hemisphere's mid-thickness surface (the mean of the
  pial and white surfaces) within its radius of the centre. fsaverage coordinates are in MNI305 space,
  within a few mm of MNI152, which nilearn also assumes when it samples MNI volumes onto fsaverage;
  subcortical and cerebellar ROIs have no vertex and are left out. On fsaverage5, 95 % of the cortical
  spheres hold vertices (median 10), and the median distance of a centre to the nearest vertex is 2 mm.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: the anatomical regions of Seitzman's ROIs that lie on each hemisphere's cortex ("cortexMid": midline,
#: drawn on both)
_CORTEX = {"left": ("cortexL", "cortexMid"), "right": ("cortexR", "cortexMid")}
UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class Spheres:
    """Published ROI centres: arrays of shape (n_rois, 3) and (n_rois,)."""
    centres: np.ndarray     # MNI152 mm
    radii: np.ndarray       # mm
    networks: np.ndarray    # network of each ROI (str)
    regions: np.ndarray     # anatomical region of each ROI (str)

    def names(self):
        """One name per ROI, "<network>_<k>" with k counted within the network from 1, in file order."""
        counts, names = {}, []
        for network in self.networks:
            counts[network] = counts.get(network, 0) + 1
            names.append(f"{network}_{counts[network]:02d}")
        return names


@lru_cache(maxsize=1)
def seitzman_spheres():
    """The 300 ROIs of Seitzman et al. 2020, in the order of the file nilearn ships."""
    from nilearn.datasets import fetch_coords_seitzman_2018

    atlas = fetch_coords_seitzman_2018(ordered_regions=False)
    return Spheres(atlas.rois[["x", "y", "z"]].to_numpy(float), np.asarray(atlas.radius, float),
                   np.array([str(n) for n in atlas.networks], dtype=object),
                   np.array([str(r) for r in atlas.regions], dtype=object))


def _within(points, spheres, keep):
    """Indices of ``points`` within each kept sphere's radius: dict name -> sorted int64 indices."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    found = {}
    for name, centre, radius, kept in zip(spheres.names(), spheres.centres, spheres.radii, keep):
        if kept:
            index = np.asarray(tree.query_ball_point(centre, radius), dtype=np.int64)
            if index.size:
                found[name] = np.sort(index)
    return found


def spheres_in_volume(spheres, mask, affine):
    """Each sphere's voxels among those of a brain mask.

    Parameters
    ----------
    spheres : Spheres
    mask : bool array of shape (x, y, z)
    affine : array of shape (4, 4)
        Voxel to MNI152 mm.

    Returns
    -------
    dict ROI name -> indices of masked voxels (the mask's C order, the columns of a volume run)
    """
    ijk = np.argwhere(mask)              # C order, as the loader's boolean indexing
    world = ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
    return _within(world, spheres, np.ones(len(spheres.radii), bool))


def spheres_on_meshes(spheres, midthickness):
    """Each sphere's vertices on a left and right mid-thickness surface.

    Parameters
    ----------
    spheres : Spheres
    midthickness : sequence of two arrays of shape (n_vertices_hemisphere, 3)
        Left then right vertex coordinates (mm).

    Returns
    -------
    dict ROI name -> vertex indices of the pair (left vertices first, right offset by the left count);
    a midline ROI found on both hemispheres gets the vertices of both
    """
    found, offset = {}, 0
    for side, coordinates in zip(("left", "right"), midthickness):
        on_side = np.isin(spheres.regions, _CORTEX[side])
        for name, index in _within(np.asarray(coordinates, float), spheres, on_side).items():
            found[name] = np.union1d(found[name], index + offset) if name in found else index + offset
        offset += len(coordinates)
    return found


def networks_of(spheres):
    """ROI name -> network, for every sphere."""
    return dict(zip(spheres.names(), spheres.networks))
