"""Every audit action the code writes has a label (issue 11 §6: ``login`` and friends were
shown raw in the audit log), found in the source, not listed by hand.

The actions are the values reaching an entry's ``"action"`` in ``app/services/audit.py``
(``record``'s argument, the row-change hook's): followed through parameters to every call
site in ``app/``, ``sync/`` and ``views/``, through local and module constants, function
results, conditionals and f-strings. An expression the walk cannot follow fails the test,
so a new way of writing an action is seen, not skipped.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.services import audit
from config import BASE_DIR
from views.display import ACTION_LABELS

PACKAGES = ("app", "sync", "views")
AUDIT_MODULE = "app.services.audit"


@dataclass
class Module:
    name: str
    tree: ast.Module
    #: local name -> (module, name) it was imported as; (module, "") for ``import``/``from x import module``
    imports: dict[str, tuple[str, str]]


def _modules() -> dict[str, Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((Path(BASE_DIR) / package).rglob("*.py")):
            name = ".".join(path.relative_to(BASE_DIR).with_suffix("").parts).removesuffix(".__init__")
            tree = ast.parse(path.read_text(encoding="utf-8"))
            found[name] = Module(name, tree, _imports(tree))
    return found


def _imports(tree: ast.Module) -> dict[str, tuple[str, str]]:
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name] = (alias.name, "")
    return names


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


class Walk:
    """Resolves an expression to the strings it can hold."""

    def __init__(self) -> None:
        self.modules = _modules()
        self.parents = {name: _parents(module.tree) for name, module in self.modules.items()}
        self.defs = {name: {node.name: node for node in ast.walk(module.tree)
                            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
                     for name, module in self.modules.items()}
        self.calls = [(name, node) for name, module in self.modules.items() for node in ast.walk(module.tree)
                      if isinstance(node, ast.Call)]
        self.unresolved: list[str] = []

    def function(self, module: str, node: ast.AST) -> ast.FunctionDef | None:
        while node is not None and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node = self.parents[module].get(node)
        return node

    def values(self, module: str, expr: ast.AST, seen: frozenset = frozenset()) -> set[str]:
        key = (module, id(expr))
        if key in seen:
            return set()
        seen = seen | {key}
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.IfExp):
            return self.values(module, expr.body, seen) | self.values(module, expr.orelse, seen)
        if isinstance(expr, ast.JoinedStr):
            parts = [self.values(module, v.value if isinstance(v, ast.FormattedValue) else v, seen)
                     for v in expr.values]
            return {"".join(combo) for combo in itertools.product(*parts)}
        if isinstance(expr, ast.Name):
            return self.name(module, expr, seen)
        if isinstance(expr, ast.Call):
            target = self.definition(module, expr.func)
            if target is not None:
                where, function = target
                returns = [n.value for n in ast.walk(function) if isinstance(n, ast.Return) and n.value is not None]
                return set().union(*(self.values(where, value, seen) for value in returns))
        self.unresolved.append(f"{module}:{getattr(expr, 'lineno', '?')} {ast.unparse(expr)}")
        return set()

    def name(self, module: str, expr: ast.Name, seen: frozenset) -> set[str]:
        function = self.function(module, expr)
        if function is not None:
            params = [a.arg for a in (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs)]
            if expr.id in params:
                return self.arguments(module, function, expr.id, seen)
            assigned = [node.value for node in ast.walk(function) if isinstance(node, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets)]
            if assigned:
                return set().union(*(self.values(module, value, seen) for value in assigned))
        for node in self.modules[module].tree.body:  # a module constant
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets):
                return self.values(module, node.value, seen)
        source = self.modules[module].imports.get(expr.id)
        if source and source[0] in self.modules:
            return self.name(source[0], ast.Name(id=source[1]), seen)
        self.unresolved.append(f"{module}:{getattr(expr, 'lineno', '?')} {expr.id}")
        return set()

    def definition(self, module: str, func: ast.AST) -> tuple[str, ast.FunctionDef] | None:
        """The function a call's ``func`` names: a local def, ``name`` imported from a module,
        or ``module.name``."""
        if isinstance(func, ast.Name):
            if func.id in self.defs[module]:
                return module, self.defs[module][func.id]
            source = self.modules[module].imports.get(func.id)
            if source and source[0] in self.modules:
                return self.definition(source[0], ast.Name(id=source[1]))
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            source = self.modules[module].imports.get(func.value.id)
            if source:
                target = f"{source[0]}.{source[1]}" if source[1] else source[0]
                if target in self.modules:
                    return self.definition(target, ast.Name(id=func.attr))
        return None

    def arguments(self, module: str, function: ast.FunctionDef, param: str, seen: frozenset) -> set[str]:
        """Every value passed for ``param`` to ``function`` (defined in ``module``), and its default."""
        positional = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
        index = positional.index(param) if param in positional else None
        if index is not None and positional and positional[0] == "self":
            index -= 1
        found = set()
        defaults = dict(zip(positional[len(positional) - len(function.args.defaults):], function.args.defaults,
                            strict=True))
        defaults.update({a.arg: d for a, d in zip(function.args.kwonlyargs, function.args.kw_defaults, strict=True)
                         if d is not None})
        if param in defaults and not (isinstance(defaults[param], ast.Constant) and defaults[param].value is None):
            found |= self.values(module, defaults[param], seen)
        for caller, call in self.calls:
            name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)
            if name != function.name or self.definition(caller, call.func) != (module, function):
                continue
            given = [k.value for k in call.keywords if k.arg == param]
            if index is not None and index < len(call.args):
                given.append(call.args[index])
            for value in given:
                found |= self.values(caller, value, seen)
        return found


def written_actions() -> tuple[set[str], list[str]]:
    """The actions the code writes, and the expressions the walk could not follow."""
    walk = Walk()
    actions: set[str] = set()
    for node in ast.walk(walk.modules[AUDIT_MODULE].tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "action":
                    actions |= walk.values(AUDIT_MODULE, value)
    return actions, walk.unresolved


def test_every_action_the_code_writes_has_a_label() -> None:
    actions, unresolved = written_actions()
    assert unresolved == []
    # The walk reaches the kinds of writers there are: the row-change hook, constants, f-strings.
    assert {"create", "permission_change", "archive", "login", "login_throttled", "step_up_failure",
            "login_totp_success", "dismiss_duplicate", "totp_reenrol"} <= actions
    assert sorted(actions - set(ACTION_LABELS)) == []


def test_change_rows_leave_the_records_own_id_out(ctx: Any) -> None:
    changes = '{"id": [null, 7], "name": [null, "Acme"]}'
    assert [row[0] for row in audit.change_rows(changes, "Customer", {"name": "Customer name"})] == ["Customer name"]
    assert [row[0] for row in audit.change_rows(changes)] == ["name"]


def test_a_reason_the_code_writes_is_read_in_the_readers_language(ctx: Any) -> None:
    from flask_babel import force_locale
    from flask_babel import lazy_gettext as _l

    from app.services import message_text

    stored = audit.stored_reason(_l("sync #%(run)d %(target)s", run=3, target="团队表格"))
    assert message_text.text(stored) == "sync #3 团队表格"
    with force_locale("en"):
        assert message_text.shown(stored) == "sync #3 团队表格"
    assert audit.stored_reason("checked by phone") == "checked by phone"  # a person's words stay as typed
    assert audit.stored_reason("x" * 300) == "x" * 256
