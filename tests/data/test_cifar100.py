import os
import pickle

import numpy as np
import pytest

from rcskd.config import params_from_dict
from rcskd.data.sources.cifar100 import Cifar100Source, load_pickle
from rcskd.errors import DataError
from tests.fixtures import write_cifar


def source(root):
    cfg = params_from_dict({"data": {"source": "cifar100", "root": str(root)}}).data
    return Cifar100Source(cfg, seed=0)


def test_reads_train_and_test_with_fine_labels(tmp_path):
    write_cifar(tmp_path, 12, 4)
    src = source(tmp_path)
    samples = list(src)
    assert src.classes == [f"class{i}" for i in range(5)]
    assert len(samples) == len(src) == 16
    assert [s.split for s in samples].count("test") == 4
    assert samples[0].image.shape == (32, 32, 3) and samples[0].image.dtype == np.uint8
    raw = load_pickle(tmp_path / "cifar-100-python" / "train")
    assert [s.label for s in samples[:12]] == raw["fine_labels"]
    # channel-first rows of 3072 become HxWx3
    first = raw["data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(samples[0].image, first)


def test_root_may_be_the_cifar_folder_itself(tmp_path):
    folder = write_cifar(tmp_path, 2, 2)
    assert len(source(folder)) == 4


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickles_with_code_are_refused(tmp_path):
    folder = write_cifar(tmp_path, 2, 2)
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [Evil()]}))
    with pytest.raises(DataError, match=r"meta: not a CIFAR python pickle .*refusing"):
        source(tmp_path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(DataError, match="meta: file not found"):
        source(tmp_path)
    folder = write_cifar(tmp_path, 2, 2)
    (folder / "test").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8)}))
    with pytest.raises(DataError, match=r"test: missing 'data' or 'fine_labels'"):
        source(tmp_path)
