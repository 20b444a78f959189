"""Real brain anatomy for the phantom: the MNI ICBM152 2009a template shipped inside nilearn.

The template (T1, grey- and white-matter probability maps, 1 mm, skull-stripped) loads offline from
nilearn's package data. Licence notice (kept as its authors ask):
  Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal
  Neurological Institute, McGill University. Permission to use, copy, modify, and distribute
  this software and its documentation for any purpose and without fee is hereby granted,
  provided that the above copyright notice appear in all copies. The authors and McGill
  University make no representations about the suitability of this software for any purpose.
  It is provided "as is" without express or implied warranty.
  (Fonov et al., NeuroImage 2011; Fonov et al., NeuroImage 2009.)
nilearn itself is BSD-3-Clause licensed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# The pituitary gland (sella turcica) in MNI millimetres, read off the template's mid-sagittal
# slice: below the hypothalamus, in front of the brainstem.
SELLA_MNI = np.array([0.0, 2.0, -30.0])


@dataclass(frozen=True)
class Anatomy:
    """Template volumes (voxel grid = 1 mm MNI) and candidate lesion sites, all in MNI mm."""

    t1: np.ndarray  # float32, [0, 1]
    gm: np.ndarray  # grey-matter probability
    wm: np.ndarray  # white-matter probability
    brain: np.ndarray  # float32 brain mask (0/1), sampled with interpolation for soft edges
    origin: np.ndarray  # MNI mm of voxel (0, 0, 0)
    centre: np.ndarray  # brain centroid, MNI mm
    deep_wm: np.ndarray  # (N, 3) MNI mm: deep white matter, glioma sites
    surface: np.ndarray  # (M, 3) MNI mm: brain surface (convexity, falx), meningioma sites
    surface_normal: np.ndarray  # (M, 3) outward unit normals at `surface`

    def sample(self, volume: np.ndarray, mni: np.ndarray) -> np.ndarray:
        """Trilinear sample of `volume` at MNI points of shape (..., 3); 0 outside."""
        vox = (mni - self.origin).reshape(-1, 3).T
        out = ndimage.map_coordinates(volume, vox, order=1, mode="constant", cval=0.0)
        return out.reshape(mni.shape[:-1])


@functools.lru_cache(maxsize=1)
def load_anatomy() -> Anatomy:
    """Load the template once per process (about 3 s, most of it the depth map)."""
    from nilearn import datasets  # heavy import, only when the phantom is used

    t1_img = datasets.load_mni152_template(resolution=1)
    t1 = t1_img.get_fdata(dtype=np.float32)
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    origin = t1_img.affine[:3, 3].astype(np.float64)
    brain = ndimage.binary_fill_holes(t1 > 0.1)
    depth = ndimage.distance_transform_edt(brain).astype(np.float32)
    rng = np.random.default_rng(0)  # candidate subsampling only; fixed so sites are stable

    deep = np.argwhere((wm > 0.6) & (depth > 14))
    deep = deep[rng.permutation(len(deep))[:20000]]
    shell = np.argwhere((depth > 0) & (depth <= 1.5))
    shell = shell[shell[:, 2] + origin[2] > -25]  # convexity and falx, not the skull base
    shell = shell[rng.permutation(len(shell))[:20000]]
    grad = np.stack(np.gradient(ndimage.gaussian_filter(depth, 2.0)), axis=-1)
    normals = -grad[shell[:, 0], shell[:, 1], shell[:, 2]]
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-6
    centre = np.argwhere(brain).mean(axis=0) + origin
    return Anatomy(
        t1=t1,
        gm=gm,
        wm=wm,
        brain=brain.astype(np.float32),
        origin=origin,
        centre=centre,
        deep_wm=deep + origin,
        surface=shell + origin,
        surface_normal=normals,
    )
