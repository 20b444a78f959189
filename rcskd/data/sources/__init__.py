"""Data sources, one registry (`rcskd.registry.SOURCES`); importing this package registers them."""

from rcskd.data.sources import cifar100, dicom, figshare_mat, imagefolder, phantom  # noqa: F401
from rcskd.data.sources.base import SPLITS, Sample, Source, to_uint8

__all__ = ["SPLITS", "Sample", "Source", "to_uint8"]
