"""Safety: no pickle is loaded anywhere (weights and latents are safetensors). The path rules (links,
outputs never inputs, unusual file names) are tested through the CLI in tests/cli/test_paths.py."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "ginr_cli").rglob("*.py"), *(ROOT / "scripts").glob("*.py")])
PICKLING = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle", "shelve", "marshal"}


def unsafe_loads(tree: ast.AST) -> list[str]:
    """Pickle imports and uses, `torch.load` without weights_only=True, `np.load(allow_pickle=True)`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLING]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLING:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in PICKLING:
                found.append(f"{node.value.id}.{node.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
            owner = ast.unparse(node.func.value)
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if owner == "torch" and keywords.get("weights_only") != "True":
                found.append(f"line {node.lineno}: torch.load without weights_only=True")
            if owner in ("np", "numpy") and keywords.get("allow_pickle", "False") != "False":
                found.append(f"line {node.lineno}: np.load with allow_pickle")
    return found


def test_no_pickle_is_loaded_anywhere():
    assert len(SOURCES) > 30
    problems = {str(p.relative_to(ROOT)): unsafe_loads(ast.parse(p.read_text(), str(p))) for p in SOURCES}
    assert {k: v for k, v in problems.items() if v} == {}


def test_the_scan_catches_what_it_looks_for():
    code = (
        "import pickle\nfrom joblib import load\nimport torch, numpy as np\n"
        "torch.load(f)\ntorch.load(f, weights_only=False)\ntorch.load(f, weights_only=True)\n"
        "np.load(f, allow_pickle=True)\nnp.load(f)\ndata = pickle.loads(b)\n"
    )
    assert unsafe_loads(ast.parse(code)) == [
        "import pickle",
        "from joblib import ...",
        "line 4: torch.load without weights_only=True",
        "line 5: torch.load without weights_only=True",
        "line 7: np.load with allow_pickle",
        "pickle.loads",
    ]
