"""The entry-point registry: built-ins, third-party plugins, duplicates, did-you-mean."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bench.registry import CODECS, UnknownPluginError, create_codec, list_codecs


def test_builtins_are_registered():
    assert {"jpeg", "original"} <= set(list_codecs())
    assert list_codecs("jp*")[0] == "jpeg"
    assert create_codec("jpeg").name == "jpeg"


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownPluginError, match="did you mean 'jpeg'"):
        CODECS.get("jepg")


def _plugin_env(tmp_path, entries: str) -> dict:
    """A directory holding a real installed-distribution record plus its module."""
    site = tmp_path / "site"
    dist = site / "mycodec-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mycodec\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(entries)
    (site / "mycodec.py").write_text(textwrap.dedent("""
        import numpy as np
        from bench.codecs import Codec

        class Raw(Codec):
            name = "raw"
            qualities = ("only",)
            def version(self): return "raw-1"
            def encode(self, image, roi, quality):
                h, w, _ = image.shape
                return h.to_bytes(4, "big") + w.to_bytes(4, "big") + image.tobytes()
            def decode(self, data):
                h, w = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big")
                return np.frombuffer(data[8:], np.uint8).reshape(h, w, 3)
    """))
    return site


def test_third_party_codec_registers_with_one_entry_point(tmp_path):
    site = _plugin_env(tmp_path, "[bench.codecs]\nraw = mycodec:Raw\n")
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(site)!r})
        import numpy as np
        from bench.registry import create_codec, list_codecs
        assert "raw" in list_codecs(), list_codecs()
        c = create_codec("raw")
        img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
        assert (c.decode(c.encode(img, None, "only")) == img).all()
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_duplicate_name_is_an_error(tmp_path):
    site = _plugin_env(tmp_path, "[bench.codecs]\njpeg = mycodec:Raw\n")
    code = (f"import sys; sys.path.insert(0, {str(site)!r})\n"
            "from bench.registry import list_codecs\nlist_codecs()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "registered twice" in out.stderr and "mycodec:Raw" in out.stderr
