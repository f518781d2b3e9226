"""davam_plugin imports in one direction, without cycles (issue 12).

Every ``davam_plugin/**/*.py`` is parsed with ``ast``; each module belongs to a layer, lowest
first:

0. helpers: ``metrics``, ``generated_text``, ``input_checks``, ``checkpoint_safety``,
   ``atomic_checkpoint``, ``periodic_checkpoint``, ``clean_exit``, ``data/*`` (datasets, corpus preprocessing) and
   ``optim/*`` (the learning-rate scheduler) - they know no model;
1. ``modules/*``: kernels and network pieces (recurrences, quantizer, bottlenecks, ...);
2. ``models/*``;
3. ``criterions/*``;
4. ``checkpoint_reading``: reading and checking checkpoint files, the stage-two prior;
5. ``tasks/*`` (which build models from checkpoints: ``--davam-path``, ``--prior-path``);
6. ``loading``: ``load_sentence_model`` and friends, the scripts' entry point;
7. ``evaluation``;
8. the package ``__init__`` (the registry entry fairseq's ``--user-dir`` imports: it may
   import everything);
9. ``cli/*``: the command-line tools.

An import of a davam_plugin module - at module level or inside a function, ``import x``,
``from x import y`` (``y`` a submodule counts as importing it) or a relative import - may
only go to the same or a lower layer, and the graph of these imports has no cycle. Python
also runs a package's ``__init__`` before any of its submodules; those implicit edges are left
out (a package ``__init__`` importing its own submodules would otherwise always be a cycle).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "davam_plugin"

LAYERS = (
    ("helpers", ("metrics", "generated_text", "input_checks", "checkpoint_safety", "atomic_checkpoint",
                 "periodic_checkpoint", "clean_exit", "data", "optim")),  # fmt: skip
    ("modules", ("modules",)),
    ("models", ("models",)),
    ("criterions", ("criterions",)),
    ("checkpoint_reading", ("checkpoint_reading",)),
    ("tasks", ("tasks",)),
    ("loading", ("loading",)),
    ("evaluation", ("evaluation",)),
    ("registry", ("__init__",)),
    ("cli", ("cli",)),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file()


def layer_of(name: str) -> int:
    """The layer index of a davam_plugin module (by its first component below the package)."""
    parts = name.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    for index, (_, heads) in enumerate(LAYERS):
        if head in heads:
            return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS in {__file__} (and the docstring)")


def modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def imports_of(name: str, path: Path, source=None):
    """(imported davam_plugin module, line) for every import statement in the file (or ``source``)."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in known_modules or is_package(sub) else target, node.lineno))
    return [(t, line) for t, line in found if t == "davam_plugin" or t.startswith("davam_plugin.")]


known_modules = set(modules())


def import_graph():
    graph = {}
    for name, path in modules().items():
        edges = {}
        for target, line in imports_of(name, path):
            if target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph.get(node, {}):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def upward_imports(graph):
    bad = []
    for name, edges in sorted(graph.items()):
        for target, line in sorted(edges.items()):
            if layer_of(target) > layer_of(name):
                bad.append(
                    f"{name} (layer {LAYERS[layer_of(name)][0]}) line {line} imports {target} "
                    f"(layer {LAYERS[layer_of(target)][0]})"
                )
    return bad


def test_every_module_has_a_layer():
    for name in known_modules:
        layer_of(name)
    assert {"davam_plugin.loading", "davam_plugin.checkpoint_reading", "davam_plugin.tasks.sentence_vae"} <= known_modules


def test_no_upward_import():
    assert upward_imports(import_graph()) == []


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_function_level_imports_are_seen():
    """The parser sees imports inside functions, relative imports and submodule imports."""
    graph = import_graph()
    assert "davam_plugin.models.davam_prior" in graph["davam_plugin.checkpoint_reading"]
    assert "davam_plugin.criterions.awd_elbo" in graph["davam_plugin.criterions"]  # from . import awd_elbo
    src = "def f():\n    from davam_plugin.loading import load_prior\n"
    path = PACKAGE / "metrics.py"
    tree_imports = [t for t, _ in imports_of("davam_plugin.metrics", path, src)]
    assert tree_imports == ["davam_plugin.loading"]
    fake = dict(graph, **{"davam_plugin.metrics": {"davam_plugin.loading": 2}})
    assert upward_imports(fake) and "davam_plugin.metrics" in upward_imports(fake)[0]


def test_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1, "b": 1}}) is None

