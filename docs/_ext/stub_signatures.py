"""Signatures of the compiled core's methods, typed as ``_core.pyi`` types them.

The compiled methods (``Counter.inc``, ``Histogram.observe``...) carry only
an untyped signature line that Cython embeds in their docstrings
(``CounterCore.inc(self, labels, exemplar=None)``). For every such method
autodoc documents, this extension takes the parameters' and the return's
types from the hand-written stub (checked against the built module by
stubtest), and the defaults from the embedded line, which has the real ones
where the stub writes ``...``. The stub's private aliases (``_Labels``...)
are written out.
"""

import ast
import copy
import os
from typing import Any, Dict, List, Optional, Tuple

import aioprometheus
from aioprometheus import _core

STUB = os.path.join(os.path.dirname(aioprometheus.__file__), "_core.pyi")


def _parse_stub(path: str) -> Tuple[Dict[str, Any], Dict[str, ast.AST]]:
    tree = ast.parse(open(path, encoding="utf-8").read())
    aliases: Dict[str, ast.AST] = {}
    classes: Dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.value is not None and node.target.id.startswith("_"):
                aliases[node.target.id] = node.value
        elif isinstance(node, ast.ClassDef):
            methods = {
                item.name: item
                for item in node.body
                if isinstance(item, ast.FunctionDef)
                and not any(
                    isinstance(d, ast.Name) and d.id == "property"
                    for d in item.decorator_list
                )
            }
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            classes[node.name] = (methods, bases)
    return classes, aliases


CLASSES, ALIASES = _parse_stub(STUB)


class _Expand(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in ALIASES:
            return self.visit(ALIASES[node.id])
        return node


def _text(annotation: Optional[ast.AST]) -> Optional[str]:
    if annotation is None:
        return None
    return ast.unparse(_Expand().visit(copy.deepcopy(annotation)))


def _stub_method(cls_name: str, name: str) -> Optional[ast.FunctionDef]:
    seen: List[str] = [cls_name]
    while seen:
        methods, bases = CLASSES.get(seen.pop(0), ({}, []))
        if name in methods:
            return methods[name]
        seen.extend(bases)
    return None


def _embedded_defaults(obj: Any) -> Dict[str, str]:
    """The defaults of Cython's embedded signature line, as source text."""
    first = (obj.__doc__ or "").lstrip().split("\n", 1)[0]
    if "(" not in first:
        return {}
    args = first[first.index("(") : first.rindex(")") + 1]
    try:
        tree = ast.parse(f"def f{args}: pass")
    except SyntaxError:
        return {}
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef)
    positional = fn.args.args
    defaults = dict(
        zip(
            [a.arg for a in positional[len(positional) - len(fn.args.defaults) :]],
            [ast.unparse(d) for d in fn.args.defaults],
        )
    )
    for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults):
        if d is not None:
            defaults[a.arg] = ast.unparse(d)
    return defaults


def _signature(fn: ast.FunctionDef, defaults: Dict[str, str]) -> str:
    args = fn.args
    parts: List[str] = []
    positional = args.args
    first_default = len(positional) - len(args.defaults)
    for i, a in enumerate(positional):
        if i == 0 and a.arg in ("self", "cls"):
            continue
        text = a.arg
        annotation = _text(a.annotation)
        if annotation:
            text += f": {annotation}"
        if i >= first_default:
            text += " = " + defaults.get(
                a.arg, ast.unparse(args.defaults[i - first_default])
            )
        parts.append(text)
    if args.vararg:
        parts.append("*" + args.vararg.arg)
    elif args.kwonlyargs:
        parts.append("*")
    for a, d in zip(args.kwonlyargs, args.kw_defaults):
        text = a.arg + (f": {_text(a.annotation)}" if a.annotation else "")
        if d is not None:
            text += " = " + defaults.get(a.arg, ast.unparse(d))
        parts.append(text)
    if args.kwarg:
        text = "**" + args.kwarg.arg
        if args.kwarg.annotation:
            text += f": {_text(args.kwarg.annotation)}"
        parts.append(text)
    return "(" + ", ".join(parts) + ")"


def _compiled_owner(obj: Any) -> Optional[str]:
    owner = getattr(obj, "__objclass__", None)
    if owner is not None and getattr(owner, "__module__", "") == _core.__name__:
        return owner.__name__
    return None


def process_signature(app, what, name, obj, options, signature, return_annotation):
    owner = _compiled_owner(obj)
    if what != "method" or owner is None:
        return None
    fn = _stub_method(owner, obj.__name__)
    if fn is None:
        return None
    returns = _text(fn.returns)
    return _signature(fn, _embedded_defaults(obj)), returns


def process_docstring(app, what, name, obj, options, lines):
    """Drop the embedded ``Class.method(self, ...)`` line if autodoc left it."""
    owner = _compiled_owner(obj)
    if owner and lines and lines[0].startswith(f"{owner}.{obj.__name__}("):
        del lines[: 2 if len(lines) > 1 and not lines[1].strip() else 1]


def skip_member(app, what, name, obj, skip, options):
    """Skip aliases of compiled methods (``Histogram.add`` is ``observe``, as
    in 23.12): their embedded line names the original, so autodoc finds no
    signature for them."""
    if _compiled_owner(obj) and getattr(obj, "__name__", name) != name:
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", skip_member)
    app.connect("autodoc-process-signature", process_signature)
    app.connect("autodoc-process-docstring", process_docstring)
    return {"parallel_read_safe": True, "version": "1"}
