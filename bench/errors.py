"""The errors codecs raise, in a module of their own so that any layer can raise them.

:mod:`bench.codecs.base` re-exports both; the learned model's coding functions
(:mod:`bench.learned.coding`) raise them without importing the codec package.
"""

from __future__ import annotations


class CodecError(RuntimeError):
    """A codec failed on one image; the harness stores it as an error row and goes on."""


class CodecUnavailable(CodecError):
    """The codec cannot run here (missing program, missing weights); the reason says why."""
