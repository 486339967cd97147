"""TIFF encode time and size: cnncli's TIFF writer (tifffile, with strips encoded by cnncli) vs
tifffile's own deflate, Pillow and OpenCV.

Run: .venv/bin/python benchmarks/bench_tiff.py [--repeat 7] [--image path] [--explore]

Prints a Markdown table per picture: median ms of interleaved runs (each writes a file into a
temporary folder, as ``cnncli filter`` does), ratio to Pillow's deflate (or OpenCV's when Pillow
cannot write the picture) and file size. Pictures, all from the 12-MP photo: the abs Sobel-x in
gray 8-bit (what ``cnncli filter -k sobel-x --gray`` writes), the RGB photo, and 16-bit versions
of both (the photo ×257 blurred with σ = 1 in float, so the low bytes carry real detail, as a
filtered 16-bit input does). cnncli's writer (``cnncli.images.write``) hands tifffile strips it
has differenced (horizontal predictor) and deflated with zlib level 1's run-length strategy on
every core, fed in 64-row bands as ``cnncli filter`` makes them. ``--explore`` adds strip sizes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import PIL
import tifffile
from interleaved import arguments, cv2, measure, report  # benchmarks/interleaved.py
from PIL import Image

from cnncli.images import write as cnncli_write


def sobel_x(gray: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """|Sobel-x| of a gray float picture (reflect101 borders)."""
    g = np.pad(gray, 1, mode="reflect")
    dx = g[:, 2:] - g[:, :-2]
    out: npt.NDArray[np.float32] = np.abs(dx[:-2] + 2 * dx[1:-1] + dx[2:])
    return out


def blur16(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint16]:
    """The photo as 16-bit: ×257, a 5-tap binomial blur (σ = 1) in float, rounded."""
    x = rgb.astype(np.float32) * 257
    for axis in (0, 1):
        p = np.pad(x, [(2, 2) if a == axis else (0, 0) for a in range(3)], mode="reflect")
        n = x.shape[axis]
        x = sum(
            (w / 16) * np.take(p, np.arange(i, i + n), axis=axis)
            for i, w in enumerate((1, 4, 6, 4, 1))
        )  # type: ignore[assignment]
    return np.clip(np.rint(x), 0, 65535).astype(np.uint16)


def cases(img: npt.NDArray[Any], folder: Path, explore: bool) -> dict[str, Callable[[], int]]:
    out: dict[str, Callable[[], int]] = {}

    def ours(threads: int, strip_bytes: int = cnncli_write._STRIP_BYTES) -> Callable[[], int]:
        path = folder / "ours.tif"
        c = 1 if img.ndim == 2 else img.shape[2]
        bits = 8 * img.dtype.itemsize
        out = cnncli_write._Output(path, "TIFF", img.shape[:2], c, bits)

        def run() -> int:
            saved = cnncli_write._STRIP_BYTES, os.environ.get("CNNCLI_THREADS")
            cnncli_write._STRIP_BYTES = strip_bytes
            os.environ["CNNCLI_THREADS"] = str(threads)
            try:
                bands = (img[r : r + 64] for r in range(0, img.shape[0], 64))
                cnncli_write._write_tiff(path, out, bands)
            finally:
                cnncli_write._STRIP_BYTES = saved[0]
                if saved[1] is None:
                    del os.environ["CNNCLI_THREADS"]
                else:
                    os.environ["CNNCLI_THREADS"] = saved[1]
            return path.stat().st_size

        return run

    def tiffile_own(level: int | None) -> Callable[[], int]:
        path = folder / "tifffile.tif"
        photometric = "minisblack" if img.ndim == 2 else "rgb"
        opts: dict[str, Any] = {"compression": None, "predictor": None}
        if level is not None:
            opts = {"compression": "zlib", "compressionargs": {"level": level}, "predictor": True}

        def run() -> int:
            tifffile.imwrite(path, img, photometric=photometric, maxworkers=2, **opts)
            return path.stat().st_size

        return run

    c = 1 if img.ndim == 2 else img.shape[2]
    if img.dtype == np.uint8:
        im = Image.fromarray(img, mode="L" if c == 1 else "RGB")

        def pillow() -> int:
            path = folder / "pillow.tif"
            im.save(path, compression="tiff_deflate")
            return path.stat().st_size

        out["Pillow tiff_deflate (level 6, no predictor)"] = pillow
    elif c == 1:
        im16 = Image.fromarray(img)  # I;16

        def pillow16() -> int:
            path = folder / "pillow.tif"
            im16.save(path, compression="tiff_deflate")
            return path.stat().st_size

        out["Pillow tiff_deflate (level 6, no predictor)"] = pillow16
    if cv2 is not None:
        bgr = img if c == 1 else np.ascontiguousarray(img[..., ::-1])

        def opencv(params: list[int]) -> Callable[[], int]:
            def run() -> int:
                path = folder / "cv2.tif"
                assert cv2.imwrite(str(path), bgr, params)
                return path.stat().st_size

            return run

        out["cv2.imwrite (LZW + predictor, default)"] = opencv([])
        out["cv2.imwrite deflate + predictor"] = opencv([cv2.IMWRITE_TIFF_COMPRESSION, 8])
        out["cv2.imwrite deflate, no predictor"] = opencv(
            [cv2.IMWRITE_TIFF_COMPRESSION, 8, cv2.IMWRITE_TIFF_PREDICTOR, 1]
        )
    out["cnncli (tifffile, own strips), 2 threads"] = ours(2)
    out["cnncli (tifffile, own strips), 1 thread"] = ours(1)
    for level in (1, 6):
        out[f"tifffile's own zlib level {level} + predictor, 2 threads"] = tiffile_own(level)
    out["tifffile none"] = tiffile_own(None)
    if explore:
        for kb in (64, 128, 256, 1024, 2048):
            out[f"cnncli, {kb} KB strips"] = ours(2, kb << 10)
    return out


def bench(name: str, img: npt.NDArray[Any], repeat: int, explore: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:  # the cases write their files here
        runs = cases(img, Path(tmp), explore)
        med, sizes = measure(runs, repeat)
    ref = next((k for k in runs if k.startswith(("Pillow", "cv2"))), None)
    report(name, img, med, sizes, ref, ref.split(" ")[0] if ref else "-")


def main() -> None:
    ap = arguments(__doc__)
    ap.add_argument("--explore", action="store_true", help="also more levels and strip sizes")
    ap.add_argument("--only", default="", help="run only pictures whose name contains this")
    args = ap.parse_args()
    with Image.open(args.image) as im:
        rgb = np.asarray(im.convert("RGB"))
    gray = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    rgb16 = blur16(rgb)
    gray16 = rgb16.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    pictures = {
        "gray |Sobel-x| edge map, 8-bit": np.clip(np.rint(sobel_x(gray)), 0, 255).astype(np.uint8),
        "RGB photo, 8-bit": rgb,
        "gray |Sobel-x| edge map, 16-bit": np.clip(np.rint(sobel_x(gray16)), 0, 65535).astype(
            np.uint16
        ),
        "RGB photo, 16-bit": rgb16,
    }
    print(f"cv2 {cv2.__version__ if cv2 else 'not installed'}, Pillow {PIL.__version__}")
    for name, img in pictures.items():
        if args.only in name:
            bench(name, img, args.repeat, args.explore)


if __name__ == "__main__":
    main()
