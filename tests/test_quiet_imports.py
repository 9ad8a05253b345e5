"""Third-party imports stay quiet: compressai without torch_geometric's jit warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_compressai_imports_without_the_jit_script_deprecation_warning():
    """In a fresh process with every warning shown: none about ``torch.jit.script``.

    The filter lives only while compressai is imported: afterwards the filters are as before.
    """
    code = (
        "import warnings\n"
        "before = list(warnings.filters)\n"
        "import bench._compressai\n"
        "assert warnings.filters == before, 'the filter outlived the import'\n"
        "import compressai.models, bench.learned.network\n"
        "print('imported')\n"
    )
    run = subprocess.run([sys.executable, "-W", "always", "-c", code], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "imported", run.stderr
    assert "torch.jit.script" not in run.stderr, run.stderr
