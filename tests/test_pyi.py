"""python/keensight/_core.pyi describes the built keensight._core: every function, method,
property and class attribute, with the same parameters (names, order, kinds, which have
defaults and, where both are literals, the defaults themselves), parameter types and
return types as the signatures pybind11 writes into the docstrings.

Generic on purpose: whatever the bindings define is checked, so a function added to
cpp/bindings/ without regenerating the stub fails here (regenerate it with
pybind11-stubgen, as the stub's header says, or edit it by hand)."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

import keensight
from keensight import _core

STUB = Path(keensight.__file__).with_name("_core.pyi")
MODULE = "keensight._core."

# pybind11's own members of every class, not part of the bindings.
PYBIND11_INTERNALS = {"_pybind11_conduit_v1_"}


# ------------------------------------------------------------------------------------------
# Signatures as comparable data
# ------------------------------------------------------------------------------------------

def _normalise_type(text: Optional[str]) -> Optional[str]:
    """One spelling per type: the stub names classes of this module without the module
    prefix and writes pybind11's ``object`` as ``typing.Any``."""
    if text is None:
        return None
    text = text.replace(MODULE, "")
    text = re.sub(r"\bobject\b", "typing.Any", text)
    return text


def _types_agree(runtime: Optional[str], stub: Optional[str]) -> bool:
    """Equal types, or a bare container in the docstring that the stub refines
    (pybind11 writes ``py::tuple`` as ``tuple``; the stub may say ``tuple[int, int]``)."""
    runtime, stub = _normalise_type(runtime), _normalise_type(stub)
    if runtime == stub:
        return True
    return runtime in ("tuple", "dict", "list") and stub is not None and stub.startswith(runtime + "[")


def _literal(node: Optional[ast.expr]):
    if node is None:
        return None
    try:
        return ("literal", ast.literal_eval(node))
    except ValueError:
        return ("expr", ast.unparse(node))


def _params(fn: ast.FunctionDef) -> List[Tuple[str, str, bool, Optional[str], object]]:
    """(kind, name, has default, annotation, default) per parameter, in order."""
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = []
    for p, d in zip(positional, defaults):
        kind = "positional-only" if p in a.posonlyargs else "positional"
        out.append((kind, p.arg, d is not None, ast.unparse(p.annotation) if p.annotation else None, _literal(d)))
    if a.vararg:
        out.append(("*args", a.vararg.arg, False, None, None))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append(("keyword-only", p.arg, d is not None, ast.unparse(p.annotation) if p.annotation else None,
                    _literal(d)))
    if a.kwarg:
        out.append(("**kwargs", a.kwarg.arg, False, None, None))
    return out


def _parse_signature(line: str, name: str) -> ast.FunctionDef:
    """A pybind11 signature line ``name(a: T, b: T = 1) -> R`` as an ast function."""
    # Defaults pybind11 cannot repr as Python (``<Border.REFLECT_101: 4>``, ``<... object at 0x..>``)
    text = re.sub(r"<[^<>]*>", "...", line.strip())
    src = f"def {name or 'fget'}{text[text.index('('):]}: ..."
    return ast.parse(src).body[0]


def _runtime_signatures(obj, name: str) -> List[ast.FunctionDef]:
    """Every signature pybind11 recorded for a function or method (several if overloaded)."""
    doc = getattr(obj, "__doc__", None) or ""
    lines = doc.splitlines()
    if not lines:
        return []
    if lines[0].startswith(f"{name}(*args, **kwargs)") and len(lines) > 1 and "Overloaded function" in lines[1]:
        sigs = [re.sub(r"^\d+\. ", "", ln) for ln in lines if re.match(rf"^\d+\. {re.escape(name)}\(", ln)]
    else:
        sigs = [lines[0]] if lines[0].startswith(f"{name}(") else []
    return [_parse_signature(s, name) for s in sigs]


def _compare(where: str, runtime: ast.FunctionDef, stub: ast.FunctionDef, problems: List[str],
             skip_self_type: bool = False) -> None:
    rp, sp = _params(runtime), _params(stub)
    rnames = [(k, n) for k, n, *_ in rp]
    snames = [(k, n) for k, n, *_ in sp]
    if rnames != snames:
        problems.append(f"{where}: parameters {[n for _, n in rnames]} ({[k for k, _ in rnames]}) in _core, "
                        f"{[n for _, n in snames]} ({[k for k, _ in snames]}) in the stub")
        return
    for i, ((_, n, rdef, rtype, rval), (_, _, sdef, stype, sval)) in enumerate(zip(rp, sp)):
        if rdef != sdef:
            problems.append(f"{where}: parameter {n!r} has {'a' if rdef else 'no'} default in _core, "
                            f"{'a' if sdef else 'no'} default in the stub")
        elif rdef and rval[0] == sval[0] == "literal" and rval[1] != sval[1]:
            problems.append(f"{where}: parameter {n!r} defaults to {rval[1]!r} in _core, {sval[1]!r} in the stub")
        if i == 0 and n == "self" and (skip_self_type or stype is None):
            continue  # the stub leaves `self` unannotated
        if not _types_agree(rtype, stype):
            problems.append(f"{where}: parameter {n!r} is {_normalise_type(rtype)} in _core, "
                            f"{_normalise_type(stype)} in the stub")
    rret = ast.unparse(runtime.returns) if runtime.returns else None
    sret = ast.unparse(stub.returns) if stub.returns else None
    if not _types_agree(rret, sret):
        problems.append(f"{where}: returns {_normalise_type(rret)} in _core, {_normalise_type(sret)} in the stub")


# ------------------------------------------------------------------------------------------
# The stub as data
# ------------------------------------------------------------------------------------------

def _decorators(fn: ast.FunctionDef) -> List[str]:
    return [ast.unparse(d) for d in fn.decorator_list]


class _StubClass:
    def __init__(self, node: ast.ClassDef) -> None:
        self.methods: Dict[str, List[ast.FunctionDef]] = {}
        self.static: set = set()
        self.properties: Dict[str, ast.FunctionDef] = {}
        self.setters: set = set()
        self.attributes: Dict[str, Tuple[str, Optional[ast.expr]]] = {}
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                decos = _decorators(item)
                if "property" in decos:
                    self.properties[item.name] = item
                elif any(d.endswith(".setter") for d in decos):
                    self.setters.add(item.name)
                else:
                    self.methods.setdefault(item.name, []).append(item)
                    if "staticmethod" in decos:
                        self.static.add(item.name)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                self.attributes[item.target.id] = (ast.unparse(item.annotation), item.value)


def _stub():
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    functions: Dict[str, List[ast.FunctionDef]] = {}
    classes: Dict[str, _StubClass] = {}
    attributes: Dict[str, Tuple[str, Optional[ast.expr]]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = _StubClass(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            attributes[node.target.id] = (ast.unparse(node.annotation), node.value)
    return functions, classes, attributes


def _check_constant(where: str, raw, stub_attr: Optional[Tuple[str, Optional[ast.expr]]],
                    problems: List[str]) -> None:
    """A module or class constant: present, annotated with its type, its literal value equal."""
    if stub_attr is None:
        problems.append(f"{where}: constant missing from the stub")
        return
    annotation, value = stub_attr
    literal = _literal(value)
    if literal is not None and literal[0] == "literal" and literal[1] is not Ellipsis and literal[1] != raw:
        problems.append(f"{where}: is {raw!r} in _core, {ast.unparse(value)} in the stub")
    want = type(raw).__name__
    if want not in annotation:
        problems.append(f"{where}: is a {want} in _core, annotated {annotation} in the stub")


def _is_pybind_function(obj) -> bool:
    return type(obj).__name__ in ("builtin_function_or_method", "instancemethod")


def _public_names(namespace) -> List[str]:
    return sorted(n for n in namespace if not n.startswith("_") or n in ("__init__", "__len__", "__getstate__",
                                                                            "__setstate__", "__iter__",
                                                                            "__getitem__", "__contains__",
                                                                            "__eq__", "__repr__"))


def _check_functions(where: str, runtime_obj, stub_defs: List[ast.FunctionDef], name: str,
                     problems: List[str]) -> None:
    sigs = _runtime_signatures(runtime_obj, name)
    if not sigs:
        problems.append(f"{where}: _core gives no signature in its docstring")
        return
    if len(sigs) != len(stub_defs):
        problems.append(f"{where}: {len(sigs)} signature(s) in _core, {len(stub_defs)} in the stub")
        return
    for k, (r, s) in enumerate(zip(sigs, stub_defs)):
        _compare(where if len(sigs) == 1 else f"{where} (overload {k + 1})", r, s, problems)


# ------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------

def core_problems() -> List[str]:
    functions, classes, attributes = _stub()
    problems: List[str] = []
    runtime_names = set()
    # Private module functions (the GEMM test bindings, _gemm_*) are bindings too.
    module_names = sorted(set(_public_names(dir(_core))) |
                          {n for n in dir(_core) if n.startswith("_") and not n.startswith("__")
                           and _is_pybind_function(getattr(_core, n))})
    for name in module_names:
        obj = getattr(_core, name)
        if name == "__doc__" or isinstance(obj, type(_core)):
            continue  # submodules would have stubs of their own
        if not callable(obj):
            runtime_names.add(name)
            _check_constant(name, obj, attributes.get(name), problems)
        elif isinstance(obj, type):
            runtime_names.add(name)
            if name not in classes:
                problems.append(f"class {name}: missing from the stub")
                continue
            _check_class(name, obj, classes[name], problems)
        elif _is_pybind_function(obj):
            runtime_names.add(name)
            if name not in functions:
                problems.append(f"{name}: missing from the stub")
                continue
            _check_functions(name, obj, functions[name], name, problems)
    for name in sorted(set(functions) | set(classes) | (set(attributes) - {"__all__"})):
        if name not in runtime_names:
            problems.append(f"{name}: in the stub but not in _core")
    return problems


def _check_class(cname: str, cls: type, stub: _StubClass, problems: List[str]) -> None:
    members = {n: v for n, v in vars(cls).items() if n not in PYBIND11_INTERNALS}
    seen = set()
    for name in _public_names(members):
        raw = members[name]
        where = f"{cname}.{name}"
        seen.add(name)
        if isinstance(raw, staticmethod):
            if name not in stub.methods:
                problems.append(f"{where}: missing from the stub")
            elif name not in stub.static:
                problems.append(f"{where}: a staticmethod in _core, not in the stub")
            else:
                _check_functions(where, raw.__func__, stub.methods[name], name, problems)
        elif isinstance(raw, property):
            ret = _runtime_signatures(raw.fget, "")  # "(arg0: Cls) -> T"
            rtype = ast.unparse(ret[0].returns) if ret and ret[0].returns else None
            if name in stub.properties:
                node = stub.properties[name]
                stype = ast.unparse(node.returns) if node.returns else None
                writable = name in stub.setters
            elif name in stub.attributes:
                stype, writable = stub.attributes[name][0], True
            else:
                problems.append(f"{where}: property missing from the stub")
                continue
            if not _types_agree(rtype, stype):
                problems.append(f"{where}: property of type {_normalise_type(rtype)} in _core, "
                                f"{_normalise_type(stype)} in the stub")
            if writable != (raw.fset is not None):
                problems.append(f"{where}: {'writable' if raw.fset is not None else 'read-only'} in _core, "
                                f"{'writable' if writable else 'read-only'} in the stub")
        elif _is_pybind_function(raw):
            if name not in stub.methods:
                problems.append(f"{where}: missing from the stub")
            elif name in stub.static:
                problems.append(f"{where}: a method in _core, a staticmethod in the stub")
            else:
                _check_functions(where, raw, stub.methods[name], name, problems)
        elif not callable(raw) and not isinstance(raw, str):  # class constants (MAX_EF), enum members
            _check_constant(where, raw, stub.attributes.get(name), problems)
    for name in sorted(set(stub.methods) | set(stub.properties) | set(stub.attributes)):
        if name not in seen and name not in PYBIND11_INTERNALS:
            problems.append(f"{cname}.{name}: in the stub but not in _core")


def test_core_stub_matches_the_signatures():
    problems = core_problems()
    assert not problems, "python/keensight/_core.pyi disagrees with the built _core:\n  " + "\n  ".join(problems)


def test_the_comparison_finds_mismatches(tmp_path, monkeypatch):
    """The checker itself: a stub with a renamed parameter, a dropped default, a wrong
    return type, a missing function and a stale one is refused, each one named."""
    text = STUB.read_text(encoding="utf-8")
    broken = (text.replace("def gaussian_kernel(ksize:", "def gaussian_kernel(size:")
                  .replace("def metric_name(metric: str) -> str:", "def metric_name(metric: str) -> int:")
                  .replace("def set_isa(isa: str) -> str:", "def set_isa(isa: str = 'avx2') -> str:")
                  .replace("def max_kernel_size() -> int:", "def no_such_function() -> int:")
                  .replace("    def memory_usage(self) -> int:", "    def memory_usage(self, extra: int) -> int:")
                  .replace("MAX_EF: typing.ClassVar[int] = 1048576", "MAX_EF: typing.ClassVar[int] = 1024"))
    stub = tmp_path / "_core.pyi"
    stub.write_text(broken, encoding="utf-8")
    monkeypatch.setattr(__import__(__name__), "STUB", stub)
    problems = "\n".join(core_problems())
    assert "gaussian_kernel: parameters ['ksize', 'sigma']" in problems and "['size', 'sigma']" in problems
    assert "metric_name: returns str in _core, int in the stub" in problems
    assert "set_isa: parameter 'isa' has no default in _core, a default in the stub" in problems
    assert "max_kernel_size: missing from the stub" in problems
    assert "no_such_function: in the stub but not in _core" in problems
    assert "HNSWIndex.memory_usage: parameters" in problems
    assert "HNSWIndex.MAX_EF: is 1048576 in _core, 1024 in the stub" in problems


@pytest.mark.parametrize("line,params,returns", [
    ("f(a: int, b: str = 'x,y)', *, c: typing.Any = None) -> tuple[int, int]",
     [("positional", "a", False), ("positional", "b", True), ("keyword-only", "c", True)], "tuple[int, int]"),
    ("f(self: keensight._core.X, border: int = <Border.REFLECT_101: 4>) -> None",
     [("positional", "self", False), ("positional", "border", True)], "None"),
    ("f(*args, **kwargs) -> typing.Any", [("*args", "args", False), ("**kwargs", "kwargs", False)], "typing.Any"),
])
def test_docstring_signatures_parse(line, params, returns):
    fn = _parse_signature(line, "f")
    assert [p[:3] for p in _params(fn)] == params
    assert ast.unparse(fn.returns) == returns


def test_the_package_is_marked_typed():
    """PEP 561: the py.typed marker ships beside the stub (in the wheel too: scikit-build-core
    copies every file of python/keensight/)."""
    assert Path(keensight.__file__).with_name("py.typed").is_file()
    assert STUB.is_file()
