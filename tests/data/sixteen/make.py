"""Make the 16-bit fixtures: known samples (truth.npy) written as Netpbm, then converted by
ImageMagick (a real encoder, not ours) into the PNG and TIFF layouts cnncli must read.

Run from this directory with ImageMagick 6 or 7 on PATH: python make.py
"""

import subprocess

import numpy as np

h, w = 13, 17
truth = np.random.default_rng(16).integers(0, 65536, (h, w, 4), dtype=np.uint16)
np.save("truth.npy", truth)


def pam(name: str, px: np.ndarray, tupltype: str) -> None:
    head = f"P7\nWIDTH {w}\nHEIGHT {h}\nDEPTH {px.shape[2]}\nMAXVAL 65535\nTUPLTYPE {tupltype}\nENDHDR\n"
    with open(name, "wb") as fh:
        fh.write(head.encode() + px.astype(">u2").tobytes())


with open("rgb16.ppm", "wb") as fh:  # read by cnncli directly (Pillow scales it to 8 bits)
    fh.write(f"P6\n{w} {h}\n65535\n".encode() + truth[..., :3].astype(">u2").tobytes())
pam("rgb.pam", truth[..., :3], "RGB")
pam("rgba.pam", truth, "RGB_ALPHA")
pam("ga.pam", truth[..., [0, 3]], "GRAYSCALE_ALPHA")
im = ["convert"]
png16 = ["-define", "png:bit-depth=16"]
runs = {
    "rgb16_interlaced.png": ["rgb.pam", *png16, "-interlace", "PNG"],
    "rgba16.png": ["rgba.pam", *png16],
    "ga16_interlaced.png": ["ga.pam", *png16, "-define", "png:color-type=4", "-interlace", "PNG"],
    "rgb16_zip.tif": ["rgb.pam", "-depth", "16", "-compress", "zip"],
    "rgb16_lzw_tiled.tif": [
        "rgb.pam",
        "-depth",
        "16",
        "-compress",
        "lzw",
        "-define",
        "tiff:tile-geometry=16x16",
    ],
    "rgb16_msb_raw.tif": [
        "rgb.pam",
        "-depth",
        "16",
        "-define",
        "tiff:endian=msb",
        "-compress",
        "none",
    ],
    "rgb16_rot6.tif": ["rgb.pam", "-depth", "16", "-orient", "RightTop", "-compress", "zip"],
    "rgba16_zip.tif": ["rgba.pam", "-depth", "16", "-compress", "zip"],
    "rgb16_planar.tif": ["rgb.pam", "-depth", "16", "-interlace", "plane", "-compress", "zip"],
}
for out, args in runs.items():
    subprocess.run([*im, *args, out], check=True)
for tmp in ("rgb.pam", "rgba.pam", "ga.pam"):
    subprocess.run(["rm", tmp], check=True)
