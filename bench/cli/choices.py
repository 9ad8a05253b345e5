"""Option choices that live in heavy library modules, read only when argparse needs them.

Every ``bench`` call builds the parser of every command, ``bench --help`` and ``--version``
included, so a ``choices=`` list imported from the library at build time makes each call pay
for that library's imports: ``bench.report``'s tables alone pull in pandas and scipy (about
1–3 s). :class:`LazyChoices` names the constant instead of importing it; argparse reads it
when it checks a value or prints that command's help, i.e. when the command runs anyway.
The constant keeps its one definition in the library.

argparse reads ``choices`` at build time only to draw a metavar, so an option with lazy
choices needs ``metavar=``, and its help shows the choices with ``%(choices)s``;
``tests/test_cli_startup.py`` fails if building the parser imports a heavy module.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence


class LazyChoices(Sequence):
    """The keys of ``module.attribute`` (a tuple, list or dict), imported on first use."""

    def __init__(self, module: str, attribute: str) -> None:
        self.module = module
        self.attribute = attribute
        self._values: tuple | None = None

    def values(self) -> tuple:
        """The choices, importing their module the first time."""
        if self._values is None:
            self._values = tuple(getattr(importlib.import_module(self.module), self.attribute))
        return self._values

    def __getitem__(self, index):
        return self.values()[index]

    def __len__(self) -> int:
        return len(self.values())

    def __contains__(self, value) -> bool:
        return value in self.values()

    def __iter__(self):
        return iter(self.values())

    def __repr__(self) -> str:
        return f"LazyChoices({self.module}.{self.attribute})"
