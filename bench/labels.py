"""Labels: one name for "a codec run with these options", e.g. ``ggm`` or ``ggm@roi-none``.

A run of a codec is identified in the store, the ``bench run`` table and every report by its
*label*. The rule (:func:`codec_label`), the same for every codec, built-in or third-party:

* a codec with its default options is labelled by its plain registered name (``ggm``);
* every option whose value differs from the codec's default (the default of that parameter
  of the codec class's constructor; an option without a default always counts) adds
  ``@key-value``, in sorted key order: ``ggm@roi-none``, ``jpeg@roi_method-blur@sigma-2.5``.

Keys are Python identifiers (constructor keywords), so the first ``-`` of a part ends the
key. Values are written as text (``true``/``false``, shortest float form, sequences joined
by ``,``) and percent-escaped except for letters, digits and ``._-~+`` (``,`` only between
sequence items): a label holds ``@`` only between parts and never ``/``, ``:`` or spaces, so
it is safe as a directory name, in ``--quality LABEL:Q`` and on a command line, and
:func:`split_label` reads it back. Codec names therefore must not contain ``@``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any
from urllib.parse import quote, unquote

#: Separates the codec name and the option parts of a label.
SEP = "@"
_SAFE = "+"  # kept as is besides letters, digits and "_.-~" (quote's own safe set)


def _text(value: Any) -> str:
    """One option value as label text, escaped (a sequence: its items, comma-joined)."""
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    if isinstance(value, bool) or value is None:
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, PurePath):
        text = value.as_posix()
    else:
        text = str(value)
    return quote(text, safe=_SAFE)


def _is_default(key: str, value: Any, defaults: Mapping[str, Any]) -> bool:
    """Whether ``value`` equals the option's default (``60 == 60.0``, but ``True != 1``)."""
    if key not in defaults:
        return False
    default = defaults[key]
    if isinstance(value, bool) != isinstance(default, bool):
        return False
    try:
        return bool(value == default)
    except Exception:  # an option type without a plain truth value: count it as set
        return False


def codec_label(name: str, options: Mapping[str, Any] | None = None,
                defaults: Mapping[str, Any] | None = None) -> str:
    """The label of codec ``name`` run with ``options`` (see the module docstring).

    ``defaults`` are the codec's default option values (:func:`option_defaults`); options
    equal to their default are left out, so the default run keeps the plain name.
    """
    if not name or SEP in name:
        raise ValueError(f"codec name {name!r} cannot be labelled: it is empty or holds {SEP!r}")
    defaults = defaults or {}
    parts = [name]
    for key in sorted(options or {}):
        if not key.isidentifier():
            raise ValueError(f"codec {name}: option name {key!r} is not an identifier")
        value = options[key]
        if not _is_default(key, value, defaults):
            parts.append(f"{key}-{_text(value)}")
    return SEP.join(parts)


def option_defaults(cls: type) -> dict[str, Any]:
    """The keyword defaults of a codec class's constructor: ``{"roi": "gt", …}``."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature: every option counts
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def label_for(name: str, options: Mapping[str, Any] | None = None) -> str:
    """The label of registered codec ``name`` with ``options``, its defaults looked up."""
    from bench.registry import CODECS

    return codec_label(name, options, option_defaults(CODECS.get(name)))


def split_label(label: str) -> tuple[str, dict[str, str]]:
    """``"ggm@roi-none"`` → ``("ggm", {"roi": "none"})``: the name and the option texts."""
    name, *parts = label.split(SEP)
    options = {}
    for part in parts:
        key, dash, text = part.partition("-")
        if not dash or not key.isidentifier():
            raise ValueError(f"label {label!r}: part {part!r} is not key-value")
        options[key] = unquote(text)
    return name, options


def codec_name(label: str) -> str:
    """The registered codec name a label starts with (the label itself for a plain name)."""
    return label.split(SEP, 1)[0]
