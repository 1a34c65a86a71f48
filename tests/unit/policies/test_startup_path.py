"""What the jailer and the VMM's threads pay for: no heavy or jail-unsafe imports."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                            capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_compiling_needs_neither_pyseccomp_nor_find_library() -> None:
    # find_library spawns ldconfig and gcc: slow, and impossible inside a jail.
    modules = _modules_after(
        "from jailer import policies\nfrom jailer.policies import compiler\n"
        "compiler.compile_category(policies.load_policy(policies.shipped_policy_path('baseline')), 'baseline')"
    )
    assert not {"pyseccomp", "ctypes.util", "subprocess"} & modules


def test_loader_imports_only_ctypes() -> None:
    modules = _modules_after("import jailer.policies.loader")
    assert not {"pyseccomp", "json", "dataclasses", "jailer.policies.model", "jailer.policies.compiler"} & modules


def test_loading_and_compiling_import_neither_typing_nor_dataclasses() -> None:
    # The jailer keeps both off its start-up path; it compiles the outer filter there.
    modules = _modules_after(
        "from jailer import policies\nfrom jailer.policies import compiler\n"
        "compiler.compile_category(policies.load_policy(policies.shipped_policy_path('baseline')), 'baseline')"
    )
    assert not {"typing", "dataclasses"} & modules
