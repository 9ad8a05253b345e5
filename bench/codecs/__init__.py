"""Codecs: one module, one class each; found through the ``bench.codecs`` entry points."""

from bench.codecs.base import Codec, CodecError, CodecUnavailable, check_image

__all__ = ["Codec", "CodecError", "CodecUnavailable", "check_image"]
