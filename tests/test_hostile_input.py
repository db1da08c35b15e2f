"""Hostile input to import and downloads (issue 14, "Import and downloads")."""

import csv
import io
import struct
import zlib

import pandas as pd
import PIL.Image

from daam_store.cli import store_main
from daam_store.store import open_store, queries
from daam_store.store.testing import synthetic_experiment
from daam_store.store.transfer import import_directory
from daam_store.views.common import CARD_PIXELS, generation_cards
from daam_store.views.compare import to_csv

FORMULAS = ['=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


def read_back(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def test_csv_download_neutralises_formulas_and_keeps_numbers():
    frame = pd.DataFrame({"prompt": [*FORMULAS, "a cat"], "score": [-0.5] * len(FORMULAS) + [1.25]})
    header, *rows = read_back(to_csv(frame))
    assert header == ["prompt", "score"]
    assert [row[0] for row in rows] == [f"'{text}" for text in FORMULAS] + ["a cat"]
    assert {float(row[1]) for row in rows} == {-0.5, 1.25}


def test_csv_download_neutralises_row_labels_and_headers_of_a_matrix():
    matrix = pd.DataFrame([[-1.0, 0.5], [0.5, -1.0]], index=["=cmd", "dog"], columns=["=cmd", "dog"])
    header, first, second = read_back(to_csv(matrix))
    assert header == ["", "'=cmd", "dog"]
    assert first == ["'=cmd", "-1.0", "0.5"] and second == ["dog", "0.5", "-1.0"]


def png_header(width: int, height: int) -> bytes:
    """A PNG that only claims its size: PIL reads the header, and nothing may decode further."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def original_layout(path, prompt="a cat and a dog", seed="1234", size=(32, 32)):
    path.mkdir(parents=True)
    PIL.Image.new("RGB", size, (200, 30, 30)).save(path / "output.png")
    (path / "prompt.txt").write_text(prompt)
    (path / "seed.txt").write_text(seed)
    return path


def own_layout(path, clip_tokenizer, metadata: str):
    synthetic_experiment(clip_tokenizer, "a red cat", seed=1).save(path)
    (path / "metadata.json").write_text(metadata)
    return path


def test_each_bad_folder_is_refused_in_one_line_and_the_rest_are_imported(tmp_path, clip_tokenizer, capsys):
    batch = tmp_path / "batch"
    good = original_layout(batch / "0-good")
    own_layout(batch / "1-malformed-json", clip_tokenizer, "{not json")
    own_layout(batch / "2-list-json", clip_tokenizer, "[1, 2]")
    original_layout(batch / "3-big-seed", seed="1" * 40)
    (original_layout(batch / "4-bomb") / "output.png").write_bytes(png_header(20000, 20000))
    (original_layout(batch / "5-too-large") / "output.png").write_bytes(png_header(5000, 5000))
    linked = original_layout(batch / "6-linked")
    (linked / "prompt.txt").unlink()
    (linked / "prompt.txt").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "secret.txt").write_text("root:x:0:0:root:/root:/bin/bash")

    url = f"sqlite:///{tmp_path / 'h.db'}"
    assert store_main(["import", str(batch), "--db", url]) == 2
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert len(errors) == 6 and all(line.startswith("error: ") for line in errors)
    assert "Traceback" not in captured.err and "root:x" not in captured.err
    for reason in (
        "not readable JSON",
        "JSON object",
        "64-bit",
        "decompression bomb",
        "5000 x 5000",
        "outside its folder",
    ):
        assert reason in captured.err
    assert f"{good} -> generation" in captured.out and "imported 1 of 7 directories" in captured.out
    with open_store(url) as store, store.session() as session:
        assert [row.prompt for row in queries.list_generations(session)] == ["a cat and a dog"]


def test_the_image_size_limit_is_configurable(tmp_path, monkeypatch, capsys):
    folder = original_layout(tmp_path / "exp", size=(100, 100))
    url = f"sqlite:///{tmp_path / 'l.db'}"
    monkeypatch.setenv("DAAM_STORE_MAX_IMAGE_PIXELS", str(64 * 64))
    assert store_main(["import", str(folder), "--db", url]) == 2
    assert "100 x 100 pixels, more than the 4096 allowed" in capsys.readouterr().err
    monkeypatch.setenv("DAAM_STORE_MAX_IMAGE_PIXELS", str(100 * 100))
    assert store_main(["import", str(folder), "--db", url]) == 0


def test_home_cards_hold_thumbnails_not_full_images(tmp_path):
    url = f"sqlite:///{tmp_path / 't.db'}"
    folder = original_layout(tmp_path / "large", size=(3000, 2000))
    with open_store(url) as store:
        import_directory(store, folder)
        with store.session() as session:
            (card,) = generation_cards(session, queries.list_generations(session))
    assert max(card.image.size) <= CARD_PIXELS and card.image.size[0] > card.image.size[1]


def test_a_link_loop_is_that_folder_s_one_line_and_the_rest_go_on(tmp_path, capsys):
    folders = {name: tmp_path / "in" / name for name in ("loop", "good")}
    for folder in folders.values():
        folder.mkdir(parents=True)
        PIL.Image.new("RGB", (8, 8)).save(folder / "output.png")
        (folder / "prompt.txt").write_text("a dog")
    (folders["loop"] / "seed.txt").symlink_to(folders["loop"] / "other.txt")
    (folders["loop"] / "other.txt").symlink_to(folders["loop"] / "seed.txt")
    code = store_main(["import", *map(str, folders.values()), "--db", f"sqlite:///{tmp_path / 'store.db'}"])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {folders['loop']}: cannot be imported"), err
    assert "imported 1 of 2 directories" in captured.out


def test_a_stored_decompression_bomb_is_one_line_not_a_crash():
    """An image stored before the import limit (or written by another tool) that PIL refuses as a bomb."""
    import pytest

    from daam_store.store.errors import CorruptBlobError
    from daam_store.store.reader import image_from_png, thumbnail_from_png

    bomb = png_header(40_000, 40_000)  # 1.6 G pixels: PIL refuses it when opening, before any decoding
    for decode in (image_from_png, lambda data: thumbnail_from_png(data, 320)):
        with pytest.raises(CorruptBlobError, match="does not decode"):
            decode(bomb)


def test_a_named_pipe_in_a_folder_is_refused_in_one_line_not_waited_on(tmp_path, capsys):
    """Opening a FIFO for reading waits for a writer that never comes: each folder with one where a file is read
    (output.png, prompt.txt, an overlay, or one level up as the original daam keeps them) is refused at once."""
    import os
    import signal

    import pytest

    batch = tmp_path / "batch"
    above = original_layout(batch / "pipe-seed-above")
    good = original_layout(tmp_path / "good")
    pipes = {
        "output.png": original_layout(batch / "pipe-image"),
        "prompt.txt": original_layout(batch / "pipe-prompt"),
        "a.heat_map.png": original_layout(batch / "pipe-overlay"),
    }
    for name, folder in pipes.items():
        (folder / name).unlink(missing_ok=True)
        os.mkfifo(folder / name)
    os.mkfifo(batch / "seed.txt")  # one level up: read by every folder without a seed.txt of its own
    (above / "seed.txt").unlink()

    def hung(*_):
        pytest.fail("import waited on a named pipe")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        code = store_main(["import", str(batch), str(good), "--db", f"sqlite:///{tmp_path / 'p.db'}"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert code == 2 and len(errors) == 4, captured.err
    for line in errors:
        assert line.startswith("error: ") and "not a regular file" in line and "refused" in line, line
    assert any(f"{batch / 'seed.txt'} is not a regular file" in line for line in errors)
    assert f"{good} -> generation" in captured.out and "imported 1 of 5 directories" in captured.out, captured.out


def _memory_kb(field: str) -> int:
    for line in open("/proc/self/status").read().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_home_cards_never_hold_a_large_image_decoded(tmp_path):
    """A legal 4096 x 4096 image is 64 MB decoded (PIL keeps RGB in 4 bytes a pixel), and PIL's `thumbnail`
    decodes a PNG whole first. Home's cards are made a band of rows at a time: the process's peak memory (Linux
    resets it on writing 5 to /proc/self/clear_refs) grows by a few MB, and the card is the same picture."""
    import numpy as np
    from sqlalchemy import update

    from daam_store.store.reader import thumbnail_from_png
    from daam_store.store.schema import Image as ImageRow
    from daam_store.views.home import store_overview

    side = 4096
    ramp = np.arange(side, dtype=np.uint32) * 255 // (side - 1)
    pixels = np.stack(
        [
            np.add.outer(ramp, ramp) // 2,
            np.broadcast_to(ramp, (side, side)),
            np.add.outer(ramp, np.zeros(side, np.uint32)),
        ],
        -1,
    )
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels.astype(np.uint8), "RGB").save(buffer, "PNG", compress_level=1)
    large = buffer.getvalue()
    del pixels
    url = f"sqlite:///{tmp_path / 'big.db'}"
    with open_store(url) as store:
        generation_id = import_directory(store, original_layout(tmp_path / "small")).generation_id
        with store.write_session() as session:  # as a legal 4096 x 4096 import stores it, without the slow encode
            session.execute(update(ImageRow).where(ImageRow.generation_id == generation_id).values(png=large))
        store_overview(store)  # first use: imports, caches, connections
        with open("/proc/self/clear_refs", "w") as reset:
            reset.write("5")
        before = _memory_kb("VmRSS")
        (card,) = store_overview(store).latest
        growth_mb = (_memory_kb("VmHWM") - before) / 1024
    assert card.image.size == (CARD_PIXELS, CARD_PIXELS)
    reference = np.asarray(thumbnail_from_png(large, CARD_PIXELS), dtype=float)
    assert np.abs(np.asarray(card.image, dtype=float) - reference).mean() < 2
    assert growth_mb < 24, f"peak memory grew by {growth_mb:.0f} MB for one card"


def test_a_damaged_or_bomb_image_is_one_line_for_the_band_thumbnail():
    import pytest

    from daam_store.store.errors import CorruptBlobError
    from daam_store.store.thumbnail import png_thumbnail

    buffer = io.BytesIO()
    PIL.Image.new("RGB", (600, 400), (10, 200, 30)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    start = data.find(b"IDAT") + 4
    data[start + 2 : start + 40] = b"\xff" * 38  # the compressed pixels, garbled; chunk lengths intact
    for damaged in (bytes(data), png_header(40_000, 40_000), buffer.getvalue()[:200]):
        with pytest.raises(CorruptBlobError, match="does not decode"):
            png_thumbnail(damaged, 320)
