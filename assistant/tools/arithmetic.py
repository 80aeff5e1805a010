"""The `calculate` tool: arithmetic the LM hands over, worked out without eval.

The expression is rewritten from speech ("9 times 8", "15% of 80", "2 to the power of 10") into Python's
arithmetic syntax, parsed with `ast`, and walked over a whitelist: numbers, + - * / // % **, unary signs,
parentheses and a few named functions. Anything else (names, attributes, strings, other calls) is refused,
and sizes are bounded before they are computed, so "9**9**9" is an error rather than a hung process.
"""

from __future__ import annotations

import ast
import math
import operator
import re

from assistant.tools.numbers import say, tidy

MAX_EXPRESSION_CHARS = 200  # far more than a spoken sum; also bounds the parser's nesting
MAX_LOG10 = 100  # no value may exceed 10**100 (a googol), checked before a power is computed
MAX_ARGS = 20  # arguments to min() / max()
MAX_ROUND_DIGITS = 15

# Speech and typography to Python, in order: longer phrases first so "divided by" is not half-read.
_WORDS = [
    (r"[×·]", "*"),
    (r"÷", "/"),
    (r"[−–]", "-"),
    (r"π", "pi"),
    (r"\^", "**"),
    (r"\b(?:to the power of|raised to(?: the power of)?|to the)\b", "**"),
    (r"\bsquared\b", "**2"),
    (r"\bcubed\b", "**3"),
    (r"\b(?:the )?square root of\b", "sqrt "),
    (r"\b(?:divided by|over)\b", "/"),
    (r"\b(?:multiplied by|times)\b", "*"),
    (r"(?<=[\d)\s])x(?=[\s\d(])", "*"),
    (r"\bplus\b", "+"),
    (r"\bminus\b", "-"),
    (r"\bmod(?:ulo)?\b", "%"),
    (r"(\d+(?:\.\d+)?)\s*(?:%|percent)\s+of\b", r"percent(\1)*"),
    (r"(\d+(?:\.\d+)?)\s*(?:%|percent)(?=\s*(?:$|[)+\-*/,]))", r"percent(\1)"),
    (r"\bsqrt\s+(\d+(?:\.\d+)?)", r"sqrt(\1)"),
]
_FILLER = re.compile(r"^\s*(?:what(?:'s| is)|calculate|compute|how much is)\s+|[\s?=]+$")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # "1,000" as speech recognisers write it


def calculate(expression: str) -> dict:
    """The tool: {"expression", "result", "text"}; ValueError for anything that is not plain arithmetic."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    tree = parse(expression)
    result = tidy(_evaluate(tree.body))
    return {
        "expression": expression.strip(),
        "result": result,
        "text": f"{spoken(tree.body)} is {say(result)}",
    }


def parse(expression: str) -> ast.Expression:
    """The expression, rewritten from words, as a Python expression tree (not yet checked)."""
    text = _FILLER.sub("", expression.lower().strip())
    if not re.search(r"[a-z]\s*\(", text):  # a comma in "max(1,000)" separates arguments
        text = _THOUSANDS.sub("", text)
    for pattern, replacement in _WORDS:
        text = re.sub(pattern, replacement, text)
    if not text.strip():
        raise ValueError("there is no expression to calculate")
    try:
        return ast.parse(text.strip(), mode="eval")
    except (SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"I could not read {expression.strip()!r} as arithmetic") from None


# --- evaluation ---------------------------------------------------------------------------------------

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _checked(node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _binary(node.op, _evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        if node.keywords:
            raise ValueError(f"{node.func.id}() takes no named arguments")
        if not 1 <= len(node.args) <= MAX_ARGS:
            raise ValueError(f"{node.func.id}() needs between 1 and {MAX_ARGS} numbers")
        return _checked(_FUNCTIONS[node.func.id](*[_evaluate(a) for a in node.args]))
    raise ValueError(f"{_describe(node)} is not arithmetic I can do")


def _binary(op: ast.operator, a: int | float, b: int | float) -> int | float:
    if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)) and b == 0:
        raise ValueError("cannot divide by zero")
    if isinstance(op, ast.Pow):
        if a == 0 and b < 0:
            raise ValueError("cannot divide by zero (zero to a negative power)")
        if a < 0 and not float(b).is_integer():
            raise ValueError("a negative number to a fractional power is not a real number")
        if abs(a) not in (0, 1) and b * math.log10(abs(a)) > MAX_LOG10:
            raise ValueError(f"the result is too large (over 10 to the power of {MAX_LOG10})")
        if isinstance(a, int) and isinstance(b, float) and b.is_integer():
            b = int(b)  # 2 ** 10.0 stays exact
    return _checked(_BINARY[type(op)](a, b))


def _checked(x: int | float) -> int | float:
    if isinstance(x, complex):
        raise ValueError("the result is not a real number")
    if isinstance(x, float) and math.isnan(x):
        raise ValueError("the result is not a number")
    if isinstance(x, float) and math.isinf(x) or abs(x) > 10**MAX_LOG10:
        raise ValueError(f"the result is too large (over 10 to the power of {MAX_LOG10})")
    return x


def _sqrt(x: float) -> float:
    if x < 0:
        raise ValueError("cannot take the square root of a negative number")
    return math.sqrt(x)


def _round(x: float, digits: int = 0) -> int | float:
    if not float(digits).is_integer() or abs(digits) > MAX_ROUND_DIGITS:
        raise ValueError(f"round() takes a whole number of digits up to {MAX_ROUND_DIGITS}")
    return round(x, int(digits)) if digits else round(x)


def _one(name, fn):
    """`fn` of exactly one number, so sqrt(1, 2) says what is wrong instead of raising TypeError."""

    def call(*args):
        if len(args) != 1:
            raise ValueError(f"{name}() takes one number")
        return fn(args[0])

    return call


def _two_at_most(*args):
    if len(args) > 2:
        raise ValueError("round() takes a number and, optionally, how many digits")
    return _round(*args)


_FUNCTIONS = {
    "sqrt": _one("sqrt", _sqrt),
    "abs": _one("abs", abs),
    "round": _two_at_most,
    "min": min,
    "max": max,
    "percent": _one("percent", lambda x: x / 100),
}


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        return f"the function {name!r}" if name else "that function call"
    if isinstance(node, ast.Constant):
        return f"the value {node.value!r}"
    if isinstance(node, ast.Attribute):
        return "attribute access"
    return f"{type(node).__name__.lower()} syntax"


# --- the spoken form ----------------------------------------------------------------------------------

_SPOKEN_OP = {
    ast.Add: "plus",
    ast.Sub: "minus",
    ast.Mult: "times",
    ast.Div: "divided by",
    ast.FloorDiv: "divided by, rounded down,",
    ast.Mod: "modulo",
    ast.Pow: "to the power of",
}
_PRECEDENCE = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2, ast.FloorDiv: 2, ast.Mod: 2, ast.Pow: 4}
_SPOKEN_CALL = {
    "sqrt": "the square root of {}",
    "abs": "the absolute value of {}",
    "round": "{} rounded",
    "min": "the smallest of {}",
    "max": "the largest of {}",
    "percent": "{} percent",
}


def spoken(node: ast.AST) -> str:
    """The checked expression in words: "9 times 8", "15 percent of 80", "(2 plus 3) times 4"."""
    if isinstance(node, ast.Constant):
        return say(node.value)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.UnaryOp):
        inner = spoken(node.operand)
        if isinstance(node.op, ast.UAdd):
            return inner
        return f"-{inner}" if isinstance(node.operand, ast.Constant) else f"minus {inner}"
    if isinstance(node, ast.Call):
        args = [spoken(a) for a in node.args]
        if node.func.id == "round" and len(args) == 2:
            return f"{args[0]} rounded to {args[1]} decimal places"
        return _SPOKEN_CALL[node.func.id].format(" and ".join(args))
    return _spoken_binary(node)


def _spoken_binary(node: ast.BinOp) -> str:
    op = type(node.op)
    left, right = spoken(node.left), spoken(node.right)
    if _needs_parens(node.left, _PRECEDENCE[op], op is ast.Pow):
        left = f"({left})"
    # A tie on the right keeps its brackets except where order cannot matter: "2 to the power of (3
    # squared)" is right-associative in Python but ambiguous aloud.
    if _needs_parens(node.right, _PRECEDENCE[op], op not in (ast.Add, ast.Mult)):
        right = f"({right})"
    if op is ast.Mult and isinstance(node.left, ast.Call) and node.left.func.id == "percent":
        return f"{left} of {right}"
    if op is ast.Pow and isinstance(node.right, ast.Constant) and node.right.value in (2, 3):
        return f"{left} {'squared' if node.right.value == 2 else 'cubed'}"
    return f"{left} {_SPOKEN_OP[op]} {right}"


def _needs_parens(child: ast.AST, precedence: int, on_a_tie: bool) -> bool:
    if not isinstance(child, ast.BinOp):
        return False
    mine = _PRECEDENCE[type(child.op)]
    return mine < precedence or (mine == precedence and on_a_tie)
