"""The safe writer: inputs are never overwritten, temp files never outlive a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cnncli import outputs
from cnncli.outputs import OutputError, atomic_write, check_output, sweep_stale, write_text


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "in.yaml"
    p.write_text("layers: []\n")
    return p


@pytest.mark.parametrize("how", ["same", "dotdot", "symlink", "hardlink", "symlink-dir"])
def test_an_input_is_never_written_over_even_with_force(src: Path, how: str) -> None:
    folder = src.parent
    if how == "same":
        target = src
    elif how == "dotdot":
        (folder / "sub").mkdir()
        target = folder / "sub" / ".." / "in.yaml"
    elif how == "symlink":
        target = folder / "link.yaml"
        target.symlink_to(src)
    elif how == "hardlink":
        target = folder / "hard.yaml"
        os.link(src, target)
    else:
        (folder / "alias").symlink_to(folder)
        target = folder / "alias" / "in.yaml"
    with pytest.raises(OutputError, match="is an input of this run.*even with --force"):
        check_output(target, [src], force=True)
    assert src.read_text() == "layers: []\n"


def test_existing_file_needs_force_and_directory_refused(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.svg"
    out.write_text("old")
    with pytest.raises(
        OutputError, match=r"^.*out\.svg: already exists; use --force to overwrite it$"
    ):
        check_output(out, [src], force=False)
    check_output(out, [src], force=True)
    with pytest.raises(OutputError, match="is a directory; give a file name"):
        check_output(tmp_path, [src], force=True)
    dangling = tmp_path / "dangling.svg"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="already exists"):
        check_output(dangling, [src], force=False)


def test_atomic_write_cleans_up_and_names_the_problem(tmp_path: Path) -> None:
    def half(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"o\.txt: cannot write \(No space left on device\)$"):
        atomic_write(tmp_path / "o.txt", half)
    assert listing(tmp_path) == []

    def interrupted(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "o.txt", interrupted)
    assert listing(tmp_path) == []
    assert outputs._pending == set()


def test_write_text_is_whole_utf8_with_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "t.svg"
    write_text(target, "α\nβ\r\n")
    assert target.read_bytes() == "α\nβ\r\n".encode()
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_missing_folder_and_long_names(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="directory '.*nodir' does not exist"):
        write_text(tmp_path / "nodir" / "o.txt", "x")
    with pytest.raises(OutputError, match="file name too long; use a shorter name"):
        write_text(tmp_path / ("n" * 256), "x")
    # 241-255 bytes: the name itself fits, the temp name falls back to a short one.
    for length in (241, 250, 255):
        name = "n" * (length - 4) + ".txt"
        write_text(tmp_path / name, "x")
        assert (tmp_path / name).read_text() == "x"
    assert all(not p.name.endswith(".part") for p in tmp_path.iterdir())


def test_make_dir_creates_parents_only_when_writing(tmp_path: Path) -> None:
    write_text(tmp_path / "a" / "b" / "o.txt", "x", make_dir=True)
    assert (tmp_path / "a" / "b" / "o.txt").read_text() == "x"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_a_killed_run_are_swept_live_ones_kept(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = tmp_path / f".o.png.{dead}-0123abcd.part"
    stale_short = tmp_path / f".cnncli.{dead}-89abcdef.part"
    live = tmp_path / f".o.png.{os.getpid()}-0123abcd.part"
    other = tmp_path / f".other.png.{dead}-0123abcd.part"
    unrelated = tmp_path / ".o.png.notours.part"
    for p in (stale, stale_short, live, other, unrelated):
        p.write_bytes(b"x")
    sweep_stale(tmp_path, "o.png")
    assert listing(tmp_path) == sorted(
        [live.name, other.name, unrelated.name]
    )  # the other target's leftover waits for a run writing that name


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cnncli import outputs

    outputs.install_signal_handlers()

    def slow(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"x" * 1000)
            fh.flush()
            print("writing", flush=True)
            while True:
                time.sleep(0.01)

    outputs.atomic_write(Path(sys.argv[1]), slow)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_removes_the_temp_file_and_says_one_line(tmp_path: Path, sig: int) -> None:
    target = tmp_path / "o.bin"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "writing\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    start = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 128 + sig
    assert time.monotonic() - start < 5
    name = signal.Signals(sig).name
    assert err == f"cnncli: error: interrupted by {name}; the unfinished output was removed\n"
    assert listing(tmp_path) == []


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_a_device_is_never_replaced_even_with_force(device: str) -> None:
    with pytest.raises(
        OutputError,
        match=f"^{device}: is a character device, not a regular file; give a file name$",
    ):
        check_output(Path(device), [], force=True)
    assert Path(device).is_char_device()


def test_a_named_pipe_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="p: is a named pipe, not a regular file"):
        check_output(fifo, [], force=True)


def test_a_folder_that_takes_no_files_is_named() -> None:
    with pytest.raises(
        OutputError, match=r"^/proc/o\.txt: cannot write \((No such file|Permission)"
    ):
        write_text(Path("/proc/o.txt"), "x")
