"""The embedded phantom: a deterministic, offline 4-class brain-MRI dataset mirroring Brain-4.

Each synthetic patient gets real anatomy (MNI152 template, see phantom_anatomy.py) resliced in an
axial, coronal or sagittal plane with a random tilt, head shape and smooth elastic warp; an MRI
contrast (T1 with contrast, T2 or FLAIR); and, unless `notumor`, a 3-D lesion with class-typical
site and look, sliced at several levels so every slice of a patient shows the same lesion:

- glioma: intra-axial in deep white matter, irregular, ring-enhancing with a necrotic core or
  heterogeneous solid, with surrounding oedema and mass effect;
- meningioma: extra-axial, dural-based on the convexity or falx, homogeneous and bright, flattened
  against the skull, sometimes with a dural tail, pushing the brain inward;
- pituitary: at the sella (midline, skull base), sometimes with suprasellar extension.

`notumor` patients are sliced around a decoy site drawn like a tumour site, so the slice level and
plane do not give the class away. Bias field, Rician noise, blur and gamma vary per slice.
`difficulty` in [0, 1] lowers lesion contrast and size and slices further from the lesion centre.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rcskd.config import DataConfig, PhantomConfig
from rcskd.data.sources.base import Sample, Source
from rcskd.data.sources.parallel import ordered_map
from rcskd.data.sources.phantom_anatomy import SELLA_MNI, Anatomy, load_anatomy
from rcskd.registry import SOURCES

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
SEQUENCES = ("t1c", "t2", "flair")
# Plane name -> (column direction, row direction, slice normal) in MNI axes.
PLANES = {
    "axial": ((1, 0, 0), (0, -1, 0), (0, 0, 1)),
    "coronal": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    "sagittal": ((0, 1, 0), (0, 0, -1), (1, 0, 0)),
}
# Tissue intensities per sequence (white matter, grey matter, CSF), and the layers outside the
# brain (subarachnoid CSF, skull, diploe, scalp). T1c uses the template's own T1 contrast.
TISSUE = {"t2": (0.38, 0.58, 0.95), "flair": (0.45, 0.62, 0.08)}
LAYERS = {
    "t1c": (0.2, 0.04, 0.35, 0.65),
    "t2": (0.9, 0.04, 0.3, 0.45),
    "flair": (0.1, 0.04, 0.3, 0.5),
}
# Lesion part intensities per sequence.
LOOK = {
    "oedema": {"t1c": 0.5, "t2": 0.86, "flair": 0.9},
    "solid": {"t1c": 0.45, "t2": 0.8, "flair": 0.8},
    "rim": {"t1c": 1.2, "t2": 0.62, "flair": 0.72},
    "necrosis": {"t1c": 0.15, "t2": 0.97, "flair": 0.25},
    "meningioma": {"t1c": 1.0, "t2": 0.86, "flair": 0.86},  # above grey matter
    "pituitary": {"t1c": 0.92, "t2": 0.72, "flair": 0.7},
}


@dataclass
class Blob:
    """A lesion part: irregular ellipsoid with a look, a texture amount and an edge softness."""

    centre: np.ndarray
    inv_axes: np.ndarray  # 3x3: offset -> unit-ball coordinates
    bumps: np.ndarray  # (K, 3) directions * angular frequency
    bump_amp: np.ndarray
    bump_phase: np.ndarray
    look: str
    texture: float
    edge: float
    scale: float = 1.0  # radius multiplier, e.g. the oedema halo or the necrotic core

    def rho(self, q: np.ndarray) -> np.ndarray:
        """Normalised radial distance: < 1 inside, 1 on the (bumpy) surface."""
        e = (q - self.centre) @ self.inv_axes.T
        r = np.linalg.norm(e, axis=-1)
        u = e / (r[..., None] + 1e-6)
        mod = 1.0 + np.sum(self.bump_amp * np.sin(u @ self.bumps.T + self.bump_phase), axis=-1)
        return r / (self.scale * np.maximum(mod, 0.3))


@dataclass
class Patient:
    """Everything shared by one patient's slices."""

    label: int
    sequence: str
    basis: np.ndarray  # 3x3 rows: column dir, row dir, normal
    shape_matrix: np.ndarray  # head shape: plane space -> template space (about the centre)
    warp: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # elastic: freq, phase, dir, amp
    fov_mm: float  # field of view (mm) across the image
    origin: np.ndarray  # plane centre in plane space
    levels: np.ndarray  # slice offsets along the normal (mm)
    blobs: list[Blob]
    mass: tuple[np.ndarray, float, float] | None  # centre, strength, reach (mm)
    layers_mm: tuple[float, float, float]  # CSF, skull, scalp thickness
    contrast: float  # fraction of full lesion contrast


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A random rotation with each Euler angle within +-max_deg."""
    a, b, c = np.deg2rad(rng.uniform(-max_deg, max_deg, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _frame(normal: np.ndarray) -> np.ndarray:
    """Orthonormal rows (normal, t1, t2)."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(normal[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    t1 = np.cross(normal, helper)
    t1 /= np.linalg.norm(t1)
    return np.stack([normal, t1, np.cross(normal, t1)])


def _blob(rng, centre, radii, frame, look, irregular, texture, edge, scale=1.0) -> Blob:
    k = 5
    dirs = rng.normal(size=(k, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    inv_axes = np.diag(1.0 / np.asarray(radii, float)) @ frame
    return Blob(
        centre=np.asarray(centre, float),
        inv_axes=inv_axes,
        bumps=dirs * rng.uniform(1.5, 4.0, (k, 1)),
        bump_amp=rng.uniform(0, irregular, k) / np.sqrt(k),
        bump_phase=rng.uniform(0, 2 * np.pi, k),
        look=look,
        texture=texture,
        edge=edge,
        scale=scale,
    )


def _lesion(rng, kind: str, anat: Anatomy, d: float) -> tuple[np.ndarray, float, list[Blob], tuple]:
    """Site, radius, parts and mass effect of a lesion of `kind` (a tumour class name)."""
    eye = np.eye(3)
    if kind == "glioma":
        r = rng.uniform(12 - 4 * d, 28)
        c = anat.deep_wm[rng.integers(len(anat.deep_wm))]
        frame = _rotation(rng, 90)
        radii = r * rng.uniform(0.75, 1.15, 3)
        irr = rng.uniform(0.2, 0.45)
        blobs = [_blob(rng, c, radii, frame, "oedema", irr, 0.05, 0.3, rng.uniform(1.4, 2.1))]
        if rng.random() < 0.6:  # high grade: enhancing rim around a necrotic core
            blobs.append(_blob(rng, c, radii, frame, "rim", irr, 0.08, 0.12))
            blobs.append(_blob(rng, c, radii, frame, "necrosis", irr, 0.06, 0.2, 0.6))
        else:  # low grade: heterogeneous, non-enhancing
            blobs.append(_blob(rng, c, radii, frame, "solid", irr, 0.12, 0.2))
        return c, r, blobs, (c, rng.uniform(0.25, 0.45), 1.6 * r)
    if kind == "meningioma":
        r = rng.uniform(14 - 4 * d, 30)
        i = rng.integers(len(anat.surface))
        s, nrm = anat.surface[i], anat.surface_normal[i]
        c = s + nrm * 0.1 * r  # mostly against the brain, compressing it
        frame = _frame(nrm)
        radii = np.array([0.7, 1.1, 1.1]) * r * rng.uniform(0.85, 1.15, 3)
        blobs = [_blob(rng, c, radii, frame, "meningioma", 0.08, 0.03, 0.08)]
        if rng.random() < 0.5:  # dural tail along the surface
            tail = np.array([1.5, 1.9 * r, 1.9 * r])
            blobs.insert(0, _blob(rng, s, tail, frame, "meningioma", 0.05, 0.02, 0.3))
        return c, r, blobs, (c, rng.uniform(0.4, 0.6), 1.4 * r)
    # pituitary: macroadenomas, as in Brain-4 (a microadenoma is invisible at 64 px)
    r = rng.uniform(7, 16)
    c = SELLA_MNI + rng.normal(0, 1.5, 3)
    blobs = [_blob(rng, c, r * rng.uniform(0.85, 1.15, 3), eye, "pituitary", 0.1, 0.06, 0.12)]
    if rng.random() < 0.4:  # suprasellar extension
        up = c + np.array([0.0, 0.0, 0.9 * r])
        blobs.append(_blob(rng, up, 0.7 * r * np.ones(3), eye, "pituitary", 0.1, 0.06, 0.12))
    return c, r, blobs, (c + np.array([0.0, 0.0, 0.5 * r]), rng.uniform(0.25, 0.4), 1.5 * r)


def make_patient(rng: np.random.Generator, label: int, n_slices: int, d: float) -> Patient:
    """Draw one synthetic patient of class `CLASSES[label]`."""
    anat = load_anatomy()
    kind = CLASSES[label]
    if kind == "notumor":  # decoy site, so slice positions look like a tumour patient's
        kind_for_site = ("glioma", "meningioma", "pituitary")[rng.integers(3)]
    else:
        kind_for_site = kind
    site, radius, blobs, mass = _lesion(rng, kind_for_site, anat, d)
    if CLASSES[label] == "notumor":
        blobs, mass = [], None
    plane = ("axial", "coronal", "sagittal")[rng.choice(3, p=[0.4, 0.3, 0.3])]
    basis = _rotation(rng, 8) @ np.array(PLANES[plane], float).T
    basis = basis.T * np.array([[1 if rng.random() < 0.5 else -1], [1], [1]])
    shape_matrix = np.diag(rng.uniform(0.9, 1.1, 3)) @ _rotation(rng, 4)
    site_plane = anat.centre + np.linalg.solve(shape_matrix, site - anat.centre)
    jitter = basis[0] * rng.normal(0, 5) + basis[1] * rng.normal(0, 5)
    reach = radius * (0.6 + 0.3 * d)
    levels = (site_plane - anat.centre) @ basis[2] + rng.uniform(-reach, reach, n_slices)
    k = 4
    freq = rng.normal(size=(k, 3))
    freq *= (2 * np.pi / rng.uniform(60, 120, (k, 1))) / np.linalg.norm(freq, axis=1, keepdims=True)
    dirs = rng.normal(size=(k, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    warp = (freq, rng.uniform(0, 2 * np.pi, k), dirs, rng.uniform(1.0, 3.0, k))
    contrast = rng.uniform(0.85, 1.0) * (1.0 - 0.3 * d)
    return Patient(
        label=label,
        sequence=SEQUENCES[rng.choice(3, p=[0.7, 0.2, 0.1])],  # mostly T1c, as Brain-4
        basis=basis,
        shape_matrix=shape_matrix,
        warp=warp,
        fov_mm=rng.uniform(190, 240),
        origin=anat.centre + jitter,
        levels=levels,
        blobs=blobs,
        mass=mass,
        layers_mm=(rng.uniform(1.5, 3), rng.uniform(4, 8), rng.uniform(4, 8)),
        contrast=contrast,
    )


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma)
    return field / (field.std() + 1e-8)


def render_slice(
    p: Patient, level: float, size: int, d: float, rng: np.random.Generator
) -> np.ndarray:
    """Render one slice of patient `p` as a uint8 size x size image."""
    anat = load_anatomy()
    px = p.fov_mm / size  # mm per pixel
    ax = (np.arange(size) - size / 2 + 0.5) * px
    rows, cols = np.meshgrid(ax, ax, indexing="ij")
    pts = (
        p.origin + cols[..., None] * p.basis[0] + rows[..., None] * p.basis[1] + level * p.basis[2]
    )
    q = anat.centre + (pts - anat.centre) @ p.shape_matrix.T
    freq, phase, dirs, amp = p.warp
    q = q + (amp * np.sin(pts @ freq.T + phase)) @ dirs
    q_anat = q
    if p.mass is not None:  # pull the sampled anatomy towards the lesion: tissue is pushed away
        c, strength, reach = p.mass
        off = q - c
        shrink = 1.0 - strength * np.exp(-np.sum(off**2, axis=-1) / reach**2)
        q_anat = c + off * shrink[..., None]

    brain = anat.sample(anat.brain, q_anat)
    if p.sequence == "t1c":
        img = anat.sample(anat.t1, q_anat)
    else:
        wm, gm = anat.sample(anat.wm, q_anat), anat.sample(anat.gm, q_anat)
        csf = np.clip(brain - wm - gm, 0, 1)
        w, g, f = TISSUE[p.sequence]
        img = w * wm + g * gm + f * csf
    img = img * (1 + 0.03 * _smooth_noise(rng, size, 1.2))  # individual fine texture

    head = brain > 0.5
    lesion = np.zeros(brain.shape, bool)
    for blob in p.blobs:
        inside = np.clip((1.0 - blob.rho(q)) / blob.edge + 0.5, 0.0, 1.0)
        if blob.look in ("oedema", "rim", "necrosis", "solid"):
            inside = inside * np.clip(brain * 1.5, 0, 1)  # intra-axial: stays in the brain
        else:
            head |= inside > 0.5
        value = LOOK[blob.look][p.sequence] * (1 + blob.texture * _smooth_noise(rng, size, 2.0))
        img = img + inside * p.contrast * (value - img)
        lesion |= inside > 0.1

    csf_mm, skull_mm, scalp_mm = p.layers_mm
    dist = ndimage.distance_transform_edt(~head) * px
    csf_v, skull_v, diploe_v, scalp_v = LAYERS[p.sequence]
    outside = np.select(
        [dist <= 0, dist < csf_mm, dist < csf_mm + skull_mm, dist < csf_mm + skull_mm + scalp_mm],
        [img, csf_v, skull_v, scalp_v],
        0.0,
    )
    diploe = np.abs(dist - csf_mm - skull_mm / 2) < skull_mm / 6
    img = np.where(diploe & (dist > 0), diploe_v, outside)

    yy, xx = rows / (size * px), cols / (size * px)
    coef = rng.normal(0, 0.25, 5)
    bias = np.exp(
        coef[0] * xx + coef[1] * yy + coef[2] * xx**2 + coef[3] * yy**2 + coef[4] * xx * yy
    )
    img = ndimage.gaussian_filter(img * bias, rng.uniform(0.3, 1.0))
    sigma = 0.015 + 0.04 * d
    img = np.sqrt(
        (img + rng.normal(0, sigma, img.shape)) ** 2 + rng.normal(0, sigma, img.shape) ** 2
    )
    # Window on the tissue outside the lesion, as a reader would: a bright lesion saturates
    # instead of dimming the whole slice (which would be a global shortcut for the class).
    reference = img[~lesion] if (~lesion).sum() > img.size // 4 else img
    img = np.clip(img / (np.percentile(reference, 99.5) + 1e-6), 0, 1) ** rng.uniform(0.8, 1.25)
    return (img * 255 + 0.5).astype(np.uint8)


@SOURCES.register("phantom")
class PhantomSource(Source):
    """Synthetic patients, `slices_per_patient` slices each; classes balanced over patients."""

    def __init__(self, cfg: DataConfig, seed: int) -> None:
        super().__init__(cfg, seed)
        self.pcfg: PhantomConfig = cfg.phantom
        self.classes = list(CLASSES)
        order = np.random.default_rng([seed, 0]).permutation(self.pcfg.patients)
        self.patient_labels = order % len(CLASSES)

    def __len__(self) -> int:
        return self.pcfg.patients * self.pcfg.slices_per_patient

    def __iter__(self) -> Iterator[Sample]:
        """Patients in order. Each patient draws from its own generator, so they are rendered
        in worker processes (one per core, up to 4) and still come out identical and in order."""
        jobs = [
            (self.seed, i, int(label), self.pcfg) for i, label in enumerate(self.patient_labels)
        ]
        load_anatomy()  # once, before any worker forks: they share it
        for samples in ordered_map(_render_patient, jobs):
            yield from samples


def _render_patient(job: tuple[int, int, int, PhantomConfig]) -> list[Sample]:
    """All slices of patient `i` (its own generator: the result does not depend on order)."""
    seed, i, label, cfg = job
    rng = np.random.default_rng([seed, 1, i])
    patient = make_patient(rng, label, cfg.slices_per_patient, cfg.difficulty)
    pid = f"phantom-{i:05d}"
    return [
        Sample(render_slice(patient, float(level), cfg.size, cfg.difficulty, rng), label, pid,
               f"phantom://{pid}/slice-{j}")
        for j, level in enumerate(patient.levels)
    ]  # fmt: skip
