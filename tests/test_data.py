"""MNIST loading: real files, tiny IDX/npz files, and every way they go wrong."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from napari_digits import data
from napari_digits.data import MnistError, load_mnist, read_idx


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(
        n.to_bytes(4, "big") for n in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def _tiny_set(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 5, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 3, dtype=np.uint8),
    }


def _write_idx_dir(directory: Path, arrays: dict, gz: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key, (stem, _magic) in data.IDX_FILES.items():
        raw = _idx_bytes(arrays[key])
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)
    return directory


def _assert_same(mnist, arrays):
    for key, expected in arrays.items():
        np.testing.assert_array_equal(getattr(mnist, key), expected)
        assert getattr(mnist, key).dtype == np.uint8


@pytest.mark.parametrize("gz", [True, False])
def test_tiny_idx_directory_roundtrip(tmp_path, gz):
    arrays = _tiny_set()
    mnist = load_mnist(_write_idx_dir(tmp_path / "m", arrays, gz))
    _assert_same(mnist, arrays)
    assert not mnist.x_train.flags.writeable


def test_npz_file_and_directory_holding_one(tmp_path):
    arrays = _tiny_set(1)
    np.savez(tmp_path / "mnist.npz", **arrays)
    _assert_same(load_mnist(tmp_path / "mnist.npz"), arrays)
    _assert_same(load_mnist(str(tmp_path)), arrays)


def test_mnist_dir_environment_variable(tmp_path, monkeypatch):
    arrays = _tiny_set(2)
    monkeypatch.setenv("MNIST_DIR", str(_write_idx_dir(tmp_path, arrays, gz=True)))
    _assert_same(load_mnist(), arrays)


def test_keras_cache_is_used_without_download(tmp_path, monkeypatch):
    arrays = _tiny_set(3)
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    np.savez(tmp_path / "datasets" / "mnist.npz", **arrays)
    monkeypatch.setattr(data, "MNIST_URL", "http://127.0.0.1:9/never-used.npz")
    _assert_same(load_mnist(), arrays)


def test_missing_mnist_never_downloads_and_says_how(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    fetched = []
    monkeypatch.setattr(
        data.urllib.request, "urlopen", lambda *a, **k: fetched.append(a)
    )
    with pytest.raises(MnistError) as info:
        load_mnist()
    message = str(info.value)
    assert str(tmp_path / "datasets" / "mnist.npz") in message  # where it looked
    assert "--download" in message and "Download MNIST" in message  # how to get it
    assert fetched == [] and not (tmp_path / "datasets").exists()


def test_offline_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(data, "MNIST_URL", "http://127.0.0.1:9/mnist.npz")
    with pytest.raises(MnistError, match=r"could not be downloaded.*MNIST_DIR"):
        load_mnist(download=True)
    assert list((tmp_path / "datasets").iterdir()) == []  # no partial file left


def test_download_when_asked_fills_the_keras_cache(tmp_path, monkeypatch):
    served = tmp_path / "served.npz"
    np.savez(served, **_tiny_set())
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data, "MNIST_URL", served.as_uri())
    monkeypatch.setattr(
        data, "MNIST_SHA256", hashlib.sha256(served.read_bytes()).hexdigest()
    )
    _assert_same(load_mnist(download=True), _tiny_set())
    cache = tmp_path / "keras" / "datasets"
    assert [p.name for p in cache.iterdir()] == ["mnist.npz"]  # no temporary left
    _assert_same(load_mnist(), _tiny_set())  # found there now, no download


def test_download_checks_the_hash(tmp_path):
    src = tmp_path / "served.npz"
    np.savez(src, **_tiny_set())
    url = src.as_uri()
    dest = tmp_path / "cache" / "mnist.npz"
    with pytest.raises(MnistError, match="corrupt"):
        data.download(dest, url, sha256="0" * 64)
    assert not dest.exists()
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    assert data.download(dest, url, sha256=good) == dest
    assert dest.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_idx_names_the_file(tmp_path, gz):
    directory = _write_idx_dir(tmp_path, _tiny_set(), gz)
    stem = "t10k-images-idx3-ubyte"
    name = f"{stem}.gz" if gz else stem
    raw = _idx_bytes(_tiny_set()["x_test"])[:-100]
    (directory / name).write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(MnistError, match=f"{name} is truncated"):
        load_mnist(directory)


def test_cut_gzip_stream_is_an_error(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.arange(10, dtype=np.uint8)))[:-12])
    with pytest.raises(MnistError, match=r"train-labels-idx1-ubyte.gz"):
        read_idx(path, data.LABELS_MAGIC)


@pytest.mark.parametrize("damage", ["cut", "flipped", "not_gzip"])
def test_damaged_gzip_is_one_message_naming_the_file(tmp_path, damage):
    directory = _write_idx_dir(tmp_path, _tiny_set(), gz=True)
    path = directory / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    if damage == "cut":
        raw = raw[: len(raw) // 2]
    elif damage == "flipped":  # a corrupt deflate block: zlib.error, not OSError
        raw[12:40] = bytes(28 * [0xFF])
    else:
        raw = bytearray(b"plain text, not gzip" * 10)
    path.write_bytes(bytes(raw))
    with pytest.raises(MnistError, match=r"train-images-idx3-ubyte\.gz") as info:
        load_mnist(directory)
    assert "\n" not in str(info.value)


def test_wrong_magic_names_the_file(tmp_path):
    directory = _write_idx_dir(tmp_path, _tiny_set(), gz=False)
    # labels where images belong
    (directory / "train-images-idx3-ubyte").write_bytes(
        _idx_bytes(np.zeros(5, np.uint8))
    )
    with pytest.raises(MnistError, match=r"train-images-idx3-ubyte.*magic number 2049"):
        load_mnist(directory)


def test_mismatched_counts_and_bad_labels(tmp_path):
    arrays = _tiny_set()
    arrays["y_train"] = arrays["y_train"][:4]
    with pytest.raises(MnistError, match="5 train images but 4 labels"):
        load_mnist(_write_idx_dir(tmp_path / "a", arrays, gz=True))
    arrays = _tiny_set()
    arrays["y_test"][0] = 12
    with pytest.raises(MnistError, match="not digits"):
        load_mnist(_write_idx_dir(tmp_path / "b", arrays, gz=True))


def test_wrong_image_size_in_npz(tmp_path):
    arrays = _tiny_set()
    arrays["x_test"] = np.zeros((3, 32, 32), np.uint8)
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(MnistError, match=r"\(32, 32\), not 28x28"):
        load_mnist(tmp_path / "mnist.npz")


def test_foreign_and_missing_files(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"not a zip file")
    with pytest.raises(MnistError, match=r"not a readable mnist.npz"):
        load_mnist(tmp_path / "mnist.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(MnistError, match=r"not a Keras mnist.npz"):
        load_mnist(tmp_path / "other.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MnistError, match="no MNIST IDX files"):
        load_mnist(tmp_path / "empty")
    with pytest.raises(MnistError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_subset_keeps_the_first_examples(tmp_path):
    arrays = _tiny_set()
    mnist = load_mnist(_write_idx_dir(tmp_path, arrays, gz=True)).subset(2, 1)
    assert mnist.x_train.shape == (2, 28, 28) and mnist.y_test.shape == (1,)
    np.testing.assert_array_equal(mnist.x_train, arrays["x_train"][:2])


def test_shared_mnist_checksums(mnist_dir):
    lines = (mnist_dir / "SHA256SUMS").read_text().split("\n")
    sums = dict(reversed(line.split()) for line in lines if line.strip())
    assert len(sums) == 4
    for name, digest in sums.items():
        assert data._sha256(mnist_dir / name) == digest, name


def test_full_mnist(mnist_dir):
    mnist = load_mnist(mnist_dir)
    assert mnist.x_train.shape == (60000, 28, 28)
    assert mnist.y_train.shape == (60000,)
    assert mnist.x_test.shape == (10000, 28, 28)
    assert mnist.y_test.shape == (10000,)
    assert mnist.x_train.dtype == mnist.y_test.dtype == np.uint8
    assert np.bincount(mnist.y_test).tolist()[:2] == [980, 1135]
    # white ink on black: the border is background
    assert mnist.x_train[:, 0, :].mean() < 1 and mnist.x_train.max() == 255
    assert load_mnist(mnist_dir) is mnist  # cached
