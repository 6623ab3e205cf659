"""A small formula evaluator for the Sheets emulator (``tests/fakes/sheets.py``).

Google computes a formula typed into a sheet (``USER_ENTERED`` ``=...``) and every read but
``FORMULA`` answers with the result (``=4/2`` -> ``2``, ``=3/2`` -> ``1.5``: the gspread
cassette ``test_get_all_values_date_time_render_options``). This evaluates the part of the
language a person types into a CRM sheet: numbers, "text" (``""`` an escaped quote), ``TRUE`` /
``FALSE``, references to cells of the same sheet (``B2``, ``$B$2``, ranges ``A1:B3`` as function
arguments), ``+ - * / ^ & %``, unary minus, comparisons (``= <> < > <= >=``), parentheses and
the functions in ``FUNCTIONS``. Anything else is the error Google shows: an unknown function is
``#NAME?``, a division by zero ``#DIV/0!``, text in arithmetic ``#VALUE!``, a reference to
itself ``#REF!``, unparsable text ``#ERROR!``. Not emulated (and so an error, never a guess):
other sheets' cells, named ranges, array formulas, locale-specific separators.

``shift_rows`` moves references when rows are inserted or deleted, as Google does, so a
formula keeps pointing at the cell it pointed at.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

_EPOCH_DAY = date(1899, 12, 30)
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"]|"")*")
  | (?P<error>\#(?:REF!|NAME\?|VALUE!|DIV/0!|N/A|NUM!|NULL!|ERROR!))
  | (?P<ref>\$?[A-Za-z]{1,3}\$?\d+(?::\$?[A-Za-z]{1,3}\$?\d+)?)(?![A-Za-z0-9_(])
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op><=|>=|<>|[-+*/^&=<>(),%])
""", re.VERBOSE)
_CELL = re.compile(r"(?<![A-Za-z0-9_])(\$?)([A-Za-z]{1,3})(\$?)(\d+)(?![A-Za-z0-9_(])")
#: ``ErrorValue.type`` (API reference) -> the text a cell shows.
ERROR_TEXT = {"ERROR": "#ERROR!", "NULL_VALUE": "#NULL!", "DIVIDE_BY_ZERO": "#DIV/0!", "VALUE": "#VALUE!",
              "REF": "#REF!", "NAME": "#NAME?", "NUM": "#NUM!", "N_A": "#N/A"}


@dataclass(frozen=True)
class ErrorValue:
    """A formula's error result: ``type`` as the API names it, ``message`` as Google words it."""

    type: str
    message: str

    @property
    def text(self) -> str:
        return ERROR_TEXT[self.type]


class DateSerial(float):
    """A number that is a date (days since 1899-12-30): ``TODAY()``, and a date plus or minus days."""


class _Fail(Exception):
    def __init__(self, error: ErrorValue) -> None:
        super().__init__(error.message)
        self.error = error


def _fail(kind: str, message: str) -> _Fail:
    return _Fail(ErrorValue(kind, message))


# --- parsing ----------------------------------------------------------------------------

def _tokens(text: str) -> list[tuple[str, str]]:
    out, at = [], 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if not match:
            raise _fail("ERROR", "Formula parse error.")
        at = match.end()
        if match.lastgroup != "space":
            out.append((match.lastgroup, match.group()))
    return out


class _Parser:
    """Recursive descent, lowest precedence first: comparison, ``&``, ``+ -``, ``* /``, ``^``,
    unary sign, ``%``, then a number, text, reference, function call or parenthesis."""

    def __init__(self, text: str) -> None:
        self.tokens, self.at = _tokens(text), 0

    def parse(self) -> tuple:
        tree = self.comparison()
        if self.at != len(self.tokens):
            raise _fail("ERROR", "Formula parse error.")
        return tree

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self, *ops: str) -> str | None:
        kind, text = self.peek()
        if kind == "op" and text in ops:
            self.at += 1
            return text
        return None

    def binary(self, ops: tuple[str, ...], operand: Callable[[], tuple]) -> tuple:
        tree = operand()
        while (op := self.take(*ops)) is not None:
            tree = ("op", op, tree, operand())
        return tree

    def comparison(self) -> tuple:
        return self.binary(("=", "<>", "<", ">", "<=", ">="), self.concat)

    def concat(self) -> tuple:
        return self.binary(("&",), self.additive)

    def additive(self) -> tuple:
        return self.binary(("+", "-"), self.term)

    def term(self) -> tuple:
        return self.binary(("*", "/"), self.power)

    def power(self) -> tuple:
        return self.binary(("^",), self.unary)

    def unary(self) -> tuple:
        sign = self.take("-", "+")
        if sign is not None:
            return ("neg", self.unary()) if sign == "-" else self.unary()
        tree = self.primary()
        while self.take("%") is not None:
            tree = ("op", "/", tree, ("num", 100.0))
        return tree

    def primary(self) -> tuple:
        kind, text = self.peek()
        self.at += 1
        if kind == "number":
            return ("num", float(text))
        if kind == "string":
            return ("str", text[1:-1].replace('""', '"'))
        if kind == "ref":
            return ("ref", text.upper().replace("$", ""))
        if kind == "error":  # a reference to a deleted row is written #REF!
            kind_of = {text: name for name, text in ERROR_TEXT.items()}[text]
            return ("error", ErrorValue(kind_of, "Reference does not exist." if kind_of == "REF" else text))
        if kind == "name":
            if self.take("(") is not None:
                return ("call", text.upper(), self.arguments())
            if text.upper() in ("TRUE", "FALSE"):
                return ("bool", text.upper() == "TRUE")
            return ("name", text)
        if kind == "op" and text == "(":
            tree = self.comparison()
            if self.take(")") is None:
                raise _fail("ERROR", "Formula parse error.")
            return tree
        raise _fail("ERROR", "Formula parse error.")

    def arguments(self) -> list[tuple]:
        args: list[tuple] = []
        if self.take(")") is not None:
            return args
        while True:
            args.append(self.comparison())
            if self.take(")") is not None:
                return args
            if self.take(",") is None:
                raise _fail("ERROR", "Formula parse error.")


# --- values ------------------------------------------------------------------------------

def _number(value: Any, where: str) -> float:
    if isinstance(value, ErrorValue):
        raise _Fail(value)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return value
    if value == "":
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise _fail("VALUE", f"Function {where} parameter expects number values. But '{value}' is a text and "
                             "cannot be coerced to a number.") from None


def as_text(value: Any) -> str:
    """A value as ``&`` and text functions see it (a number in its shortest form)."""
    if isinstance(value, ErrorValue):
        raise _Fail(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return number_text(value)
    return value


def number_text(value: float) -> str:
    """A number as Sheets' automatic format shows it: integers whole, others to 10 decimals."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(round(value, 10), ".15g")


def _rank(value: Any) -> tuple[int, Any]:
    """Sheets orders numbers < text < booleans; text compares without case."""
    if isinstance(value, bool):
        return 2, value
    if isinstance(value, (int, float)):
        return 0, value
    return (1, value.lower()) if value != "" else (0, 0.0)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "<>": lambda a, b: a != b, "<": lambda a, b: a < b,
    ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}
_NAMES = {"+": "ADD", "-": "MINUS", "*": "MULTIPLY", "/": "DIVIDE", "^": "POW"}


class _Evaluator:
    def __init__(self, lookup: Callable[[int, int], Any]) -> None:
        self.lookup = lookup

    def value(self, tree: tuple) -> Any:
        kind = tree[0]
        if kind in ("num", "str", "bool"):
            return tree[1]
        if kind == "ref":
            if ":" in tree[1]:
                raise _fail("VALUE", "An array value could not be found.")
            value = self.lookup(*cell_index(tree[1]))
            if isinstance(value, ErrorValue):
                raise _Fail(value)
            return value
        if kind == "error":
            raise _Fail(tree[1])
        if kind == "name":
            raise _fail("NAME", f"Unknown range name: '{tree[1]}'.")
        if kind == "neg":
            operand = self.value(tree[1])
            result = -_number(operand, "MINUS")
            return DateSerial(result) if isinstance(operand, DateSerial) else result
        if kind == "op":
            return self.operator(tree[1], self.value(tree[2]), self.value(tree[3]))
        return self.call(tree[1], tree[2])

    def operator(self, op: str, left: Any, right: Any) -> Any:
        if op in _COMPARE:
            for side in (left, right):
                if isinstance(side, ErrorValue):
                    raise _Fail(side)
            return _COMPARE[op](_rank(left), _rank(right))
        if op == "&":
            return as_text(left) + as_text(right)
        a, b = _number(left, _NAMES[op]), _number(right, _NAMES[op])
        if op == "/" and b == 0:
            raise _fail("DIVIDE_BY_ZERO", "Function DIVIDE parameter 2 cannot be zero.")
        result = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0.0}.get(op)
        if op == "^":
            try:
                result = a ** b
            except (OverflowError, ZeroDivisionError):
                raise _fail("NUM", "Function POW caused a number overflow.") from None
            if isinstance(result, complex):
                raise _fail("NUM", "Function POW parameter 1 value is negative and parameter 2 is not an integer.")
        if op in "+-" and isinstance(left, DateSerial) != isinstance(right, DateSerial):
            return DateSerial(result)  # a date plus days is a date
        return result

    def flat(self, args: list[tuple]) -> list[tuple[Any, bool]]:
        """Each argument's values, with whether it came from a reference (ranges skip text)."""
        out = []
        for tree in args:
            if tree[0] == "ref":
                for cell in cells_of(tree[1]):
                    value = self.lookup(*cell)
                    if isinstance(value, ErrorValue):
                        raise _Fail(value)
                    out.append((value, True))
            else:
                out.append((self.value(tree), False))
        return out

    def numbers(self, name: str, args: list[tuple]) -> list[float]:
        return [_number(v, name) for v, ref in self.flat(args)
                if not ref or (isinstance(v, (int, float)) and not isinstance(v, bool))]

    def call(self, name: str, args: list[tuple]) -> Any:
        if name not in FUNCTIONS:
            raise _fail("NAME", f"Unknown function: '{name.lower()}'.")
        low, high = FUNCTIONS[name]
        if not low <= len(args) <= high:
            raise _fail("N_A", f"Wrong number of arguments to {name}. Expected between {low} and {high} "
                               f"arguments, but got {len(args)} arguments.")
        if name == "IF":
            chosen = args[1] if _truth(self.value(args[0])) else (args[2] if len(args) > 2 else ("bool", False))
            return self.value(chosen)
        return getattr(self, "fn_" + name.lower())(args)

    def fn_sum(self, args: list[tuple]) -> float:
        return math.fsum(self.numbers("SUM", args))

    def fn_average(self, args: list[tuple]) -> float:
        values = self.numbers("AVERAGE", args)
        if not values:
            raise _fail("DIVIDE_BY_ZERO", "Evaluation of function AVERAGE caused a divide by zero error.")
        return math.fsum(values) / len(values)

    def fn_min(self, args: list[tuple]) -> float:
        return min(self.numbers("MIN", args), default=0.0)

    def fn_max(self, args: list[tuple]) -> float:
        return max(self.numbers("MAX", args), default=0.0)

    def fn_count(self, args: list[tuple]) -> float:
        return float(sum(1 for v, _ in self.flat(args) if isinstance(v, (int, float)) and not isinstance(v, bool)))

    def fn_abs(self, args: list[tuple]) -> float:
        return abs(_number(self.value(args[0]), "ABS"))

    def fn_round(self, args: list[tuple]) -> float:
        value = _number(self.value(args[0]), "ROUND")
        places = int(_number(self.value(args[1]), "ROUND")) if len(args) > 1 else 0
        scale = 10.0 ** places
        return math.copysign(math.floor(abs(value) * scale + 0.5) / scale, value)  # half away from zero

    def fn_concatenate(self, args: list[tuple]) -> str:
        return "".join(as_text(v) for v, _ in self.flat(args))

    def fn_len(self, args: list[tuple]) -> float:
        return float(len(as_text(self.value(args[0]))))

    def fn_upper(self, args: list[tuple]) -> str:
        return as_text(self.value(args[0])).upper()

    def fn_lower(self, args: list[tuple]) -> str:
        return as_text(self.value(args[0])).lower()

    def fn_trim(self, args: list[tuple]) -> str:
        return " ".join(as_text(self.value(args[0])).split())

    def fn_today(self, args: list[tuple]) -> DateSerial:
        return DateSerial((date.today() - _EPOCH_DAY).days)


#: Function name -> (fewest, most) arguments.
FUNCTIONS = {"SUM": (1, 255), "AVERAGE": (1, 255), "MIN": (1, 255), "MAX": (1, 255), "COUNT": (1, 255),
             "ABS": (1, 1), "ROUND": (1, 2), "CONCATENATE": (1, 255), "IF": (2, 3), "LEN": (1, 1),
             "UPPER": (1, 1), "LOWER": (1, 1), "TRIM": (1, 1), "TODAY": (0, 0)}


def _truth(value: Any) -> bool:
    if isinstance(value, str):
        if value.upper() in ("TRUE", "FALSE"):
            return value.upper() == "TRUE"
        if value == "":
            return False
        raise _fail("VALUE", f"Function IF parameter 1 expects boolean values. But '{value}' is a text and "
                             "cannot be coerced to a boolean.")
    return bool(value)


def evaluate(text: str, lookup: Callable[[int, int], Any]) -> Any:
    """The result of formula ``text`` (with its ``=``): a float, ``DateSerial``, str, bool or
    ``ErrorValue``. ``lookup(row, col)`` (0-based) gives another cell's value, "" when empty
    (it raises ``RecursionError`` for a cycle, which becomes ``#REF!``)."""
    try:
        result = _Evaluator(lookup).value(_Parser(text[1:]).parse())
    except _Fail as failed:
        return failed.error
    except RecursionError:
        return ErrorValue("REF", "Circular dependency detected. To resolve with iterative calculation, see "
                                 "File > Settings.")
    if isinstance(result, float) and not isinstance(result, DateSerial) and result.is_integer():
        return int(result) if abs(result) < 2 ** 53 else result
    return "" if result is None else result


def cell_index(ref: str) -> tuple[int, int]:
    """``B3`` -> (2, 1)."""
    letters, digits = re.match(r"([A-Z]+)(\d+)", ref).groups()
    col = 0
    for char in letters:
        col = col * 26 + ord(char) - 64
    return int(digits) - 1, col - 1


def cells_of(ref: str) -> list[tuple[int, int]]:
    """Every cell of ``A1`` or ``A1:B3``, row by row."""
    first, _, last = ref.partition(":")
    (top, left), (bottom, right) = cell_index(first), cell_index(last or first)
    top, bottom = min(top, bottom), max(top, bottom)
    left, right = min(left, right), max(left, right)
    return [(r, c) for r in range(top, bottom + 1) for c in range(left, right + 1)]


def shift_rows(text: str, start: int, delta: int) -> str:
    """Formula ``text`` after ``delta`` rows were inserted (> 0) at 0-based row ``start``, or
    ``-delta`` rows deleted from ``start``: references below move; a reference to a deleted
    row becomes ``#REF!``, as in Google Sheets. Text inside quotes is left alone."""
    parts = re.split(r'("(?:[^"]|"")*")', text)

    def moved(match: re.Match) -> str:
        dollar_col, letters, dollar_row, digits = match.groups()
        row = int(digits) - 1
        if delta < 0 and start <= row < start - delta:
            return "#REF!"
        if row >= start:
            row += delta
        return f"{dollar_col}{letters}{dollar_row}{row + 1}"

    return "".join(part if i % 2 else _CELL.sub(moved, part) for i, part in enumerate(parts))
