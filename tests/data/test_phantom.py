import dataclasses
from collections import Counter

import numpy as np
import pytest

from rcskd.config import params_from_dict
from rcskd.data.sources.phantom import CLASSES, PhantomSource, make_patient, render_slice
from rcskd.data.sources.phantom_anatomy import SELLA_MNI, load_anatomy


def phantom(seed=0, **cfg):
    raw = {"data": {"phantom": {"patients": 8, "slices_per_patient": 2, "size": 40, **cfg}}}
    return PhantomSource(params_from_dict(raw).data, seed)


def test_deterministic_given_seed_and_different_across_seeds():
    a, b, c = list(phantom(0)), list(phantom(0)), list(phantom(1))
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, c, strict=True))


def test_sizes_labels_and_patients():
    src = phantom(patients=12, slices_per_patient=3, size=32)
    samples = list(src)
    assert len(samples) == len(src) == 36
    assert src.classes == ["glioma", "meningioma", "notumor", "pituitary"]
    assert all(s.image.shape == (32, 32) and s.image.dtype == np.uint8 for s in samples)
    assert Counter(s.label for s in samples) == {0: 9, 1: 9, 2: 9, 3: 9}
    per_patient = Counter(s.patient for s in samples)
    assert len(per_patient) == 12 and set(per_patient.values()) == {3}
    labels = {}
    for s in samples:
        assert labels.setdefault(s.patient, s.label) == s.label  # one class per patient
    assert samples[0].split is None  # prepare splits by patient


def draw(label, seed=0, d=0.5):
    return make_patient(np.random.default_rng(seed), CLASSES.index(label), 3, d)


@pytest.mark.parametrize("seed", range(5))
def test_lesion_sites_are_class_typical(seed):
    anat = load_anatomy()

    def at(volume, point):
        return float(anat.sample(volume, np.asarray(point)[None])[0])

    glioma = draw("glioma", seed)
    centre = glioma.blobs[-1].centre
    assert at(anat.brain, centre) > 0.99 and at(anat.wm, centre) > 0.5  # intra-axial, in WM
    meningioma = draw("meningioma", seed)
    assert at(anat.brain, meningioma.blobs[-1].centre) < 0.5  # extra-axial, on the surface
    pituitary = draw("pituitary", seed)
    assert np.linalg.norm(pituitary.blobs[0].centre - SELLA_MNI) < 8  # sellar, midline
    notumor = draw("notumor", seed)
    assert notumor.blobs == [] and notumor.mass is None


@pytest.mark.parametrize(("label", "sign"), [("meningioma", 1), ("pituitary", 1), ("glioma", 0)])
def test_lesions_are_visible_and_meningioma_enhances_on_t1c(label, sign):
    p = dataclasses.replace(draw(label, seed=3), sequence="t1c", contrast=1.0)
    centre_level = float(np.median(p.levels))
    plain = dataclasses.replace(p, blobs=[], mass=None)
    with_lesion = render_slice(p, centre_level, 128, 0.0, np.random.default_rng(9)).astype(float)
    without = render_slice(plain, centre_level, 128, 0.0, np.random.default_rng(9)).astype(float)
    diff = with_lesion - without
    changed = np.abs(diff) > 25
    assert changed.sum() >= 20  # a lesion of more than a few pixels
    if sign:  # enhancing lesions add clearly brighter pixels (the rest may dim slightly, as the
        # per-image intensity normalisation makes room for them)
        assert (diff > 40).sum() >= 15


def test_difficulty_lowers_lesion_contrast():
    easy = draw("glioma", 1, d=0.0)
    hard = draw("glioma", 1, d=1.0)
    assert hard.contrast == pytest.approx(easy.contrast * 0.7)
