"""Name -> plugin lookup over Python entry points, shared by codecs and tasks.

Built-in codecs and tasks are declared through the same entry-point groups a third-party
package uses (``bench.codecs``, ``bench.tasks``), so there is one source of truth. A plugin
class is imported only when it is asked for, which keeps ``bench --help`` instant.
"""

from __future__ import annotations

import difflib
import fnmatch
from importlib.metadata import EntryPoint, entry_points
from typing import Any


class UnknownPluginError(KeyError):
    """A name that no installed plugin registers; the message suggests close names."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the message as is
        return str(self.args[0])


class DuplicatePluginError(RuntimeError):
    """Two installed distributions register the same name in one group."""


class Registry:
    """Plugins of one entry-point group, read once and loaded lazily."""

    def __init__(self, group: str, kind: str):
        self.group = group
        self.kind = kind
        self._points: dict[str, EntryPoint] | None = None
        self._loaded: dict[str, Any] = {}

    def _entry_points(self) -> dict[str, EntryPoint]:
        if self._points is None:
            points: dict[str, EntryPoint] = {}
            for ep in entry_points(group=self.group):
                seen = points.get(ep.name)
                if seen is not None and seen.value != ep.value:
                    raise DuplicatePluginError(
                        f"{self.kind} name {ep.name!r} is registered twice in entry-point group "
                        f"{self.group!r}: {seen.value} and {ep.value}; uninstall one of them"
                    )
                points[ep.name] = ep
            self._points = points
        return self._points

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style pattern, sorted."""
        return sorted(n for n in self._entry_points() if fnmatch.fnmatchcase(n, pattern))

    def get(self, name: str) -> Any:
        """The plugin class registered as ``name``."""
        if name in self._loaded:
            return self._loaded[name]
        points = self._entry_points()
        if name not in points:
            close = difflib.get_close_matches(name, list(points), n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise UnknownPluginError(
                f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(points)) or 'none'})"
            )
        obj = points[name].load()
        self._loaded[name] = obj
        return obj

    def create(self, name: str, **kwargs: Any) -> Any:
        """An instance of the plugin registered as ``name``."""
        return self.get(name)(**kwargs)


CODECS = Registry("bench.codecs", "codec")
TASKS = Registry("bench.tasks", "task")


def create_codec(name: str, **kwargs: Any):
    """A codec instance by registered name (see ``bench codecs``).

    ``roi_method="blur"`` (with an optional ``roi_source``, the predicted ROI's key) wraps a
    codec that does not code an ROI itself in the background pre-filter
    (:class:`bench.roi_prefilter.PrefilteredCodec`); a method in the codec class's
    ``roi_methods`` (e.g. ``"qp"`` for hevc: the encoder's own spatial rate control) goes to
    its constructor instead. Every other keyword goes to the codec.
    """
    method = kwargs.pop("roi_method", None)
    if method is None:
        return CODECS.create(name, **kwargs)
    from bench.roi_prefilter import METHODS, PrefilteredCodec

    cls = CODECS.get(name)
    if method in getattr(cls, "roi_methods", ()):  # the encoder's own ROI rate control
        return cls(roi_method=method, **kwargs)
    if method not in METHODS:
        raise ValueError(f"codec {name} has no ROI method {method!r}: it is one of the "
                         f"encoder's own (codecs with it: {', '.join(native_roi_codecs(method))})"
                         f"; every codec takes {', '.join(METHODS)}")
    source = kwargs.pop("roi_source", None)
    return PrefilteredCodec(CODECS.create(name, **kwargs), method, source)


def native_roi_codecs(method: str) -> list[str]:
    """Installed codecs whose encoder implements ROI ``method`` itself (e.g. ``qp``)."""
    found = []
    for name in CODECS.names():
        try:
            if method in getattr(CODECS.get(name), "roi_methods", ()):
                found.append(name)
        except Exception:  # a broken plugin does not hide the others
            continue
    return found


def list_codecs(pattern: str = "*") -> list[str]:
    """Names of the installed codecs matching a shell-style pattern."""
    return CODECS.names(pattern)
