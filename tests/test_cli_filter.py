"""``napari-digits filter`` on real image files."""

import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from skimage import data

from napari_digits import kernels
from napari_digits.cli import main


@pytest.fixture
def portrait_png(tmp_path) -> Path:
    path = tmp_path / "portrait.png"
    iio.imwrite(path, data.astronaut()[::4, ::4])
    return path


def test_sobel_on_a_png_portrait_writes_float32_tiff(portrait_png, tmp_path, capsys):
    out = tmp_path / "edges.tif"
    args = ["filter", str(portrait_png), "--kernel", "sobel", "--sigma", "3"]
    assert main([*args, "--out", str(out)]) == 0
    result = tifffile.imread(out)
    source = iio.imread(portrait_png)
    assert result.dtype == np.float32 and result.shape == source.shape
    np.testing.assert_allclose(result, kernels.apply_named(source, "sobel", rgb=True))
    printed = capsys.readouterr()
    assert "edges.tif" in printed.out and "--sigma does not apply" in printed.err


def test_parameters_mode_and_grey_npy(tmp_path):
    image = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    src, out = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, image)
    args = ["filter", str(src), "--kernel", "gaussian", "--sigma", "1.5"]
    assert main([*args, "--mode", "constant", "--cval", "1", "--out", str(out)]) == 0
    expected = kernels.apply_named(
        image, "gaussian", sigma=1.5, mode="constant", cval=1
    )
    np.testing.assert_allclose(np.load(out), expected)


def test_custom_kernel_on_a_tiff_stack(tmp_path):
    stack = np.random.default_rng(1).integers(0, 999, (3, 16, 16), dtype=np.uint16)
    src, out = tmp_path / "stack.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, stack, photometric="minisblack")
    weights = "0 -1 0; -1 5 -1; 0 -1 0"
    args = ["filter", str(src), "--kernel", "custom", "--weights", weights]
    assert main([*args, "--out", str(out)]) == 0
    np.testing.assert_allclose(
        tifffile.imread(out), kernels.apply_named(stack, "sharpen")
    )


@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin:DeprecationWarning")
@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (None, [], "no such file"),
        ("garbage", [], "cannot read"),
        ("nan", [], "NaN/inf"),
        ("ok", ["--kernel", "custom", "--weights", "1 0; 0 1"], "odd size"),
        ("ok", ["--kernel", "custom"], "needs --weights"),
        ("ok", ["--out-png"], "cannot hold float32"),
    ],
)
def test_bad_input_is_a_message_and_exit_1(tmp_path, capsys, make, extra, message):
    src = tmp_path / "in.npy"
    if make == "garbage":
        src = tmp_path / "in.png"
        src.write_bytes(b"not an image")
    elif make == "nan":
        np.save(src, np.array([[0.0, np.nan], [1.0, 2.0]]))
    elif make == "ok":
        np.save(src, np.ones((5, 5)))
    out = tmp_path / ("out.png" if "--out-png" in extra else "out.tif")
    extra = [e for e in extra if e != "--out-png"]
    kernel = [] if "--kernel" in extra else ["--kernel", "sobel"]
    assert main(["filter", str(src), *kernel, *extra, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("napari-digits filter: error: ") and message in err
    assert err.count("\n") == 1  # one line, never a traceback
    assert not out.exists()


def test_the_installed_program_runs_without_qt_or_tensorflow(portrait_png, tmp_path):
    out = tmp_path / "edges.tif"
    code = (
        "import sys; from napari_digits.cli import main; "
        f"rc = main(['filter', {str(portrait_png)!r}, '--kernel', 'sobel', "
        f"'--out', {str(out)!r}]); "
        "assert not {'tensorflow', 'napari', 'qtpy'} & set(sys.modules); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.exists()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_digits",
            "filter",
            "missing.png",
            "--kernel",
            "sobel",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "no such file" in bad.stderr
