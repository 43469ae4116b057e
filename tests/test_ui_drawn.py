"""Pictures go to the page as files written once (studio/ui/drawn.py): Gradio rewrote its cached PNG
of a returned PIL image in place whenever the same picture came back (a second identical draw, the
History re-sent), and a browser fetching it meanwhile read a cut-short file (CI, 2026-12-07)."""

import os
import threading

import numpy as np
from PIL import Image

from studio.ui import drawn


def _picture(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (256, 256, 3), dtype=np.uint8))


def test_the_same_picture_is_one_file_written_once_inside_gradios_cache(tmp_path, monkeypatch):
    from gradio import utils

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    a = drawn.as_file(_picture(1))
    inode = os.stat(a).st_ino
    assert drawn.as_file(_picture(1)) == a and os.stat(a).st_ino == inode  # not written again
    assert drawn.as_file(_picture(2)) != a
    assert utils.is_in_or_equal(a, utils.get_upload_folder())  # served as it is: Gradio copies nothing
    with Image.open(a) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(_picture(1)))


def test_a_reader_never_sees_a_cut_short_picture_while_it_is_returned_again(tmp_path, monkeypatch):
    """The same loop over Gradio's own ``processing_utils.save_pil_to_cache`` (gradio 6.31) read the
    file empty 221 times in 40 returns of the picture."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    pic = _picture(3)
    path = drawn.as_file(pic)
    size = len(open(path, "rb").read())
    stop, short = threading.Event(), []

    def read():
        while not stop.is_set():
            n = len(open(path, "rb").read())
            if n != size:
                short.append(n)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(40):
            assert drawn.as_file(pic) == path
    finally:
        stop.set()
        reader.join()
    assert short == []
