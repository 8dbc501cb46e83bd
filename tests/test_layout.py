"""The package's layers: the library (arcface_keras/*.py) is Keras-only and
never imports the toolkit or the studies; the toolkit never imports the studies."""

import ast
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "arcface_keras")


def _imported(path):
    """The arcface_keras modules `path` imports (module level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("arcface_keras"):
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("arcface_keras"))
    return names


def _modules(folder):
    for base, _, files in os.walk(folder):
        yield from (os.path.join(base, name) for name in files if name.endswith(".py"))


def test_the_library_imports_neither_the_toolkit_nor_the_studies():
    library = [os.path.join(PACKAGE, name) for name in os.listdir(PACKAGE) if name.endswith(".py")]
    for path in library:
        wrong = [name for name in _imported(path) if name.startswith(("arcface_keras.toolkit", "arcface_keras.studies"))]
        assert not wrong, (os.path.basename(path), wrong)
    for path in _modules(os.path.join(PACKAGE, "toolkit")):
        if os.sep + "commands" + os.sep in path:  # the commands run the studies too
            continue
        wrong = [name for name in _imported(path) if name.startswith("arcface_keras.studies")]
        assert not wrong, (os.path.relpath(path, PACKAGE), wrong)


@pytest.mark.slow
def test_under_jax_the_library_loads_no_tensorflow_matplotlib_or_scikit_learn():
    # Keras itself imports matplotlib and scikit-learn when they are installed: measured against Keras alone.
    code = ("import sys, keras; before = set(sys.modules); import arcface_keras; from arcface_keras import "
            "ArcFaceClassifier, callbacks, catalog, numerics, partial_fc, tta; "
            "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    result = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, timeout=300,
                            cwd=ROOT, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert not loaded & {"tensorflow", "matplotlib", "sklearn"}, loaded


def test_the_library_calls_no_keras_ops_scatter():
    # Keras 3.15's PyTorch backend runs `ops.scatter` as a Python loop over every index
    # (keras/src/backend/torch/core.py): 3 s for the kernel gradient of a 1,000-class head.
    # `ops.scatter_update` (with reduction="add" where indices repeat) is one vectorised call.
    for path in _modules(PACKAGE):
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Attribute) and node.attr == "scatter" and getattr(node.value, "id", "") == "ops":
                raise AssertionError(f"{os.path.relpath(path, ROOT)}:{node.lineno} calls ops.scatter")
