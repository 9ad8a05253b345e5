"""compressai, imported without the one deprecation warning its import raises.

bench does not call ``torch.jit.script``. The ``FutureWarning: `torch.jit.script` is
deprecated`` seen when the learned codecs load comes from compressai 1.2.8: ``import
compressai`` imports ``compressai.transforms.point``, which imports torch_geometric (a hard
dependency of compressai), whose ``nn.pool.select.base`` and ``nn.pool.connect.base`` call
``torch.jit.script`` at import, and recent torch releases (2.14 here) warn on each call.
Importing this module imports compressai with exactly that warning (message and category)
ignored, and only for the duration of the import: the filter is gone afterwards, so a later
``torch.jit.script`` anywhere still warns. Import it before the first ``compressai`` import
(``import bench._compressai  # noqa: F401``).
"""

from __future__ import annotations

import warnings

#: The warning silenced while compressai is imported (a regular expression on its message).
JIT_SCRIPT_DEPRECATION = r"`torch\.jit\.script` is deprecated"

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=JIT_SCRIPT_DEPRECATION, category=FutureWarning)
    import compressai  # noqa: F401
