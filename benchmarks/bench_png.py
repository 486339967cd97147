"""PNG encode time: cnncli.png (1 and 2 threads, each filter mode) vs Pillow vs OpenCV.

Run: .venv/bin/python benchmarks/bench_png.py [--repeat 7] [--image path]

Prints a Markdown table per picture: median ms of interleaved runs, ratio to cv2.imencode and
file size. Pictures: the abs Sobel-x of the 12-MP photo in gray 8-bit (an edge map, what
`cnncli filter -k sobel-x --gray` writes) and the RGB photo itself.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import numpy as np
import PIL
from interleaved import arguments, cv2, measure, report  # benchmarks/interleaved.py
from PIL import Image

from cnncli.images._png import write_png


def edge_map(gray: np.ndarray) -> np.ndarray:
    """|Sobel-x| of a gray uint8 picture, clipped to uint8 (reflect101 borders)."""
    edges: np.ndarray
    if cv2 is not None:
        edges = cv2.convertScaleAbs(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3))
        return edges
    g = np.pad(gray.astype(np.float32), 1, mode="reflect")
    dx = g[:, 2:] - g[:, :-2]
    s = dx[:-2] + 2 * dx[1:-1] + dx[2:]
    edges = np.clip(np.abs(s) + 0.5, 0, 255).astype(np.uint8)
    return edges


def cases(img: np.ndarray) -> dict[str, Callable[[], int]]:
    def ours(threads: int, filters: str) -> Callable[[], int]:
        def run() -> int:
            bio = io.BytesIO()
            write_png(bio, img, threads=threads, filters=filters)  # type: ignore[arg-type]
            return bio.tell()

        return run

    def pillow() -> int:
        bio = io.BytesIO()
        Image.fromarray(img).save(bio, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
        return bio.tell()

    out: dict[str, Callable[[], int]] = {}
    if cv2 is not None:
        bgr = img if img.ndim == 2 else np.ascontiguousarray(img[..., ::-1])
        out["cv2.imencode('.png')"] = lambda: int(cv2.imencode(".png", bgr)[1].nbytes)
    out["Pillow save (level 1, Z_RLE)"] = pillow
    for filters in ("up", "none-sub-up", "all"):
        for threads in (1, 2):
            out[f"cnncli.png {filters}, {threads} thread{'s' if threads > 1 else ''}"] = ours(
                threads, filters
            )
    return out


def bench(name: str, img: np.ndarray, repeat: int) -> None:
    runs = cases(img)
    med, sizes = measure(runs, repeat)
    ref = "cv2.imencode('.png')"
    report(name, img, med, sizes, ref if ref in runs else None, "cv2")


def main() -> None:
    args = arguments(__doc__).parse_args()
    with Image.open(args.image) as im:
        rgb = np.asarray(im.convert("RGB"))
        gray = np.asarray(im.convert("L"))
    print(f"cv2 {cv2.__version__ if cv2 else 'not installed'}, Pillow {PIL.__version__}")
    bench("gray |Sobel-x| edge map", edge_map(gray), args.repeat)
    bench("RGB photo", rgb, args.repeat)


if __name__ == "__main__":
    main()
