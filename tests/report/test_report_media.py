"""The report's thumbnails read images through the one media check (swift_ext.io.media)."""

import os
import time

RED_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c63f8cf"
                        "c000000301010018dd8db00000000049454e44ae426082")


def test_the_report_thumbnails_refuse_a_fifo_and_system_files_without_hanging(tmp_path):
    """A FIFO named as an image hung `report` (issue 17, lows): the thumbnails read through the media check."""
    from swift_ext.report.page import Thumbnails

    png = tmp_path / "red.png"
    png.write_bytes(RED_PNG)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    thumbs = Thumbnails()
    t0 = time.monotonic()
    assert [thumbs.id_of(p) for p in (str(fifo), "/dev/zero", "/proc/self/environ", str(png))] == [None] * 3 + ["i0"]
    assert time.monotonic() - t0 < 5 and thumbs.uris["i0"].startswith("data:image/png;base64,")
