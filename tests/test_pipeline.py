"""cnncli.filtering.pipeline and batch as a library: a spec, a job, one call, a result object."""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from cnncli.enums import Border, Mapping
from cnncli.errors import UsageError
from cnncli.filtering import batch, pipeline
from cnncli.filtering.correlate import apply_kernel, output_tap, plan_geometry


def _no_warnings(message: str) -> None:
    raise AssertionError(f"unexpected warning: {message}")


def test_filter_file_returns_a_result_and_writes_what_the_core_computes(tmp_path: Path) -> None:
    r = np.random.default_rng(11)
    image = r.uniform(0, 255, (23, 31)).astype(np.float32)
    np.save(tmp_path / "x.npy", image)
    spec = pipeline.build_spec(
        "sobel-x", then=["relu"], warn=_no_warnings, stride=(2, 1), border=Border.REPLICATE
    )
    job = pipeline.FilterJob(tmp_path / "x.npy", tmp_path / "y.npy")
    result = pipeline.filter_file(job, spec, [job.source], warn=_no_warnings)
    assert result == pipeline.FilterResult(
        job.source, job.output, result.described, "sobel-x → relu", "raw", "border replicate"
    )
    want = np.maximum(apply_kernel(spec.kernel, image, stride=(2, 1), border="replicate"), 0)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


def test_spec_names_and_mapping() -> None:
    spec = pipeline.build_spec("sobel-x", then=["maxpool:2"], warn=_no_warnings, flip=True)
    assert spec.slug == "sobel-x-conv_maxpool2"
    assert spec.label == "sobel-x (convolve) → maxpool2"
    assert spec.how is spec.kernel.mapping
    assert pipeline.build_spec("box", warn=_no_warnings, mapping=Mapping.CLIP).how is Mapping.CLIP
    with pytest.raises(UsageError, match=r"^--anchor 0,3 is outside the 3×3 kernel"):
        pipeline.build_spec("box", warn=_no_warnings, anchor=(0, 3))


def test_batch_plans_names_beside_the_inputs(tmp_path: Path) -> None:
    for name in ("a.png", "b.npy"):
        (tmp_path / name).write_bytes(b"")
    paths, problems = batch.expand([str(tmp_path), str(tmp_path / "*.zzz")])
    assert problems == [f"{tmp_path / '*.zzz'}: no files match"]
    spec = pipeline.build_spec("emboss", warn=_no_warnings)
    jobs = batch.plan(paths, None, None, spec)
    assert [j.output.name for j in jobs if j.output] == ["a_emboss.png", "b_emboss.npy"]


@pytest.mark.parametrize("kernel_hw", [(3, 3), (2, 4), (1, 5)])
def test_one_place_combines_anchor_and_flip(kernel_hw: tuple[int, int]) -> None:
    """The flipped kernel's tap on the output pixel is the mirrored anchor; plan_geometry pads
    by exactly that tap (stride 1, no dilation: before = tap)."""
    kh, kw = kernel_hw
    assert output_tap(kernel_hw) == ((kh - 1) // 2, (kw - 1) // 2)
    for anchor in [(0, 0), (kh - 1, kw - 1), (kh // 2, kw - 1)]:
        for flip in (False, True):
            tap = output_tap(kernel_hw, anchor, flip)
            geom = plan_geometry((9, 10), kernel_hw, anchor=anchor, flip=flip)
            assert tuple(ax.pad_before for ax in geom.axes) == tap
            mirrored = (kh - 1 - anchor[0], kw - 1 - anchor[1])
            assert tap == (mirrored if flip else anchor)


def test_scipy_is_hidden_from_the_warm_up_thread_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warm-up thread's hook fails imports of the package in that thread alone: another
    thread importing it meanwhile gets the real module, and nothing is left behind."""
    (tmp_path / "hidden_pkg").mkdir()
    (tmp_path / "hidden_pkg" / "__init__.py").write_text("VALUE = 7\n")
    (tmp_path / "hidden_pkg" / "sub.py").write_text("VALUE = 8\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("hidden_pkg", "hidden_pkg.sub"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    finders = list(sys.meta_path)
    seen: dict[str, object] = {}

    def other_thread() -> None:
        seen["other"] = importlib.import_module("hidden_pkg.sub").VALUE

    with pipeline.hidden_in_this_thread("hidden_pkg"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("hidden_pkg")
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("hidden_pkg.sub")

        def compile_thread() -> None:  # the warm-up's compile threads are hidden from too
            try:
                importlib.import_module("hidden_pkg.sub")
            except ModuleNotFoundError:
                seen["warm"] = "hidden"

        t = threading.Thread(target=compile_thread, name=f"{pipeline.WARM_THREAD_PREFIX}-x")
        t.start()
        t.join()
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
    assert seen == {"other": 8, "warm": "hidden"}
    assert sys.meta_path == finders
    assert importlib.import_module("hidden_pkg").VALUE == 7
    monkeypatch.delitem(sys.modules, "hidden_pkg.sub")
    with pipeline.hidden_in_this_thread("hidden_pkg"):  # in use already: nothing is hidden
        assert importlib.import_module("hidden_pkg.sub").VALUE == 8


def test_a_filter_run_leaves_scipy_importable(tmp_path: Path) -> None:
    """No ``sys.modules['scipy'] = None`` survives (or exists): SciPy imports after a run."""
    pytest.importorskip("scipy")
    import subprocess

    np.save(tmp_path / "x.npy", np.arange(64, dtype=np.float32).reshape(8, 8))
    code = (
        "import sys; from cnncli.cli import main\n"
        "try:\n"
        f"    main(['filter', {str(tmp_path / 'x.npy')!r}, '-k', 'sobel', '-o', "
        f"{str(tmp_path / 'y.npy')!r}])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "assert sys.modules.get('scipy', 'absent') is not None\n"
        "import scipy; print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr
