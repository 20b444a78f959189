"""rcskd: compress medical-image classifiers with RC-SKD (prune, then distill) in a DVC pipeline."""

__version__ = "0.1.0"
