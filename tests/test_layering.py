"""The import graph runs one way, and SoundLens installs a single top-level name.

Layers (lowest first): models (with models/errors.py, which imports nothing) <- training and
realtime <- tools (the CLI). No library module imports the CLI; realtime does not import training
(the live pipeline must not pull in the trainer). Checked on the source with `ast`, so function-local
imports count too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
LIBRARY = ("models", "training", "realtime")
FORBIDDEN = {"models": ("tools", "training", "realtime"), "training": ("tools",),
             "realtime": ("tools", "training")}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in a file, absolute names; relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                package = path.relative_to(REPO).parent.parts[
                    : len(path.relative_to(REPO).parent.parts) - node.level + 1]
                module = ".".join(("soundlens", *package, *([module] if module else [])))
            if module == "soundlens":  # `from soundlens import models`
                found += [(node.lineno, f"soundlens.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "soundlens" and len(parts) > 1:
        return parts[1]
    return parts[0] if parts[0] in (*LIBRARY, "tools") else None


@pytest.mark.parametrize("package", LIBRARY)
def test_library_packages_import_only_downwards(package):
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in _imports(path):
            if _layer(module) in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", (*LIBRARY, "tools"))
def test_no_function_is_longer_than_60_lines(package):
    """Small pieces (issue 12): every function of the shipped packages fits on a screen."""
    long = []
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            if function and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} "
                            f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "split these functions:\n" + "\n".join(long)


def test_code_imports_soundlens_names_only():
    """Every import of a SoundLens module goes through `soundlens.` (a bare `import models` would
    pick up whatever `models` package comes first on sys.path)."""
    bare = []
    for folder in (*LIBRARY, "tools", "tests", "bench", "docs"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for line, module in _imports(path):
                if module.split(".")[0] in (*LIBRARY, "tools"):
                    bare.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not bare, "bare imports:\n" + "\n".join(bare)


def test_every_package_folder_is_installed():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {"soundlens." + ".".join(p.parent.relative_to(REPO).parts)
               for folder in (*LIBRARY, "tools") for p in (REPO / folder).rglob("__init__.py")}
    assert on_disk == listed, (f"not installed: {sorted(on_disk - listed)}; listed but absent: "
                               f"{sorted(listed - on_disk)}")
    assert {k.split(".")[1] for k in config["package-dir"]} == {*LIBRARY, "tools"}


def test_soundlens_works_next_to_other_packages_named_models_and_tools(tmp_path):
    """A throwaway `models` and `tools` first on sys.path (as an official SSL repository's own
    `models/` would be): both they and SoundLens import, each its own."""
    for name in ("models", "tools"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"OWNER = 'someone else: {name}'\n")
    code = ("import models, tools\n"
            "import soundlens.models, soundlens.tools.main\n"
            "from soundlens.training.engine import localization_hits\n"
            "assert models.OWNER == \"someone else: models\" and tools.OWNER == \"someone else: tools\"\n"
            "assert 'ezvsl' in soundlens.models.available()\n"
            "m = soundlens.models.create('ezvsl', encoder='lite')\n"
            "print(type(m).__module__, soundlens.tools.main.__name__)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["soundlens.models.methods.ezvsl", "soundlens.tools.main"]


def test_the_wheel_installs_one_top_level_package(tmp_path):
    """`pip install .` puts exactly `soundlens` (and its dist-info) into site-packages, with the
    shipped weights inside it."""
    import zipfile

    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300,
                           cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("soundlens-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"soundlens", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "soundlens/models/weights/default.safetensors" in names and "soundlens/tools/main.py" in names
    assert not any(n.startswith("soundlens/tests/") for n in names)


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _local_imports(tree: ast.AST) -> list[ast.stmt]:
    """Import statements whose enclosing scope is a function (classes and blocks inside one count)."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and in_function:
                found.append(child)
            visit(child, in_function or isinstance(child, FUNCTIONS))

    visit(tree, False)
    return found


@pytest.mark.parametrize("package", (*LIBRARY, "tools"))
def test_function_local_imports_say_why(package):
    """Issue 12: a function-local import is there to keep start-up fast (torch, cv2, PyQt5... only
    when used) or to break an import cycle, and says which. Rule: every function-local import has a
    `#` comment on one of its own lines, on an earlier import of the run of import statements it
    belongs to, or on the line directly above that run (a run: consecutive import statements; blank
    lines are skipped). Everything else goes to the module's top-level imports."""
    silent = []
    for path in sorted((REPO / package).rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        import_lines = {i for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                        for i in range(n.lineno, n.end_lineno + 1)}
        for node in _local_imports(tree):
            if any("#" in lines[i - 1] for i in range(node.lineno, node.end_lineno + 1)):
                continue
            above = node.lineno - 1
            while above > 0 and (above in import_lines or not lines[above - 1].strip()):
                if above in import_lines and "#" in lines[above - 1]:
                    break
                above -= 1
            if above > 0 and (above in import_lines or lines[above - 1].strip().startswith("#")):
                continue
            silent.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not silent, ("function-local imports that do not say why they are local (say it in a comment "
                        "or move them to the top):\n" + "\n".join(silent))
