"""pytest's `-k` and `-m` expressions: parse once, match against an item's names or marks.

Grammar (as pytest's `_pytest.mark.expression`):

    expr:     and_expr ('or' and_expr)*
    and_expr: not_expr ('and' not_expr)*
    not_expr: 'not' not_expr | '(' expr ')' | ident ['(' kwargs ')']
    ident:    (\\w|:|+|-|.|[|]|\\\\|/)+

For `-k` an identifier matches when it is a case-insensitive substring of any
keyword of the item (its name, its parents' names, its marks); for `-m` it
matches a mark name exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

Matcher = Callable[[str], bool]
Predicate = Callable[[Matcher], bool]

_TOKEN = re.compile(r"\s*(?:(?P<paren>[()])|(?P<ident>(?:\w|:|\+|-|\.|\[|\]|\\|/)+)|(?P<other>\S))")


class ExpressionError(ValueError):
    """A `-k`/`-m` expression pytest would reject."""


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            break
        if m.group("other"):
            other = m.group("other")
            if other in ("=", ",", '"', "'"):
                tokens.append(other)
            else:
                raise ExpressionError(f"unexpected character {other!r} in expression {text!r}")
        else:
            tokens.append(m.group("paren") or m.group("ident"))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ExpressionError(f"unexpected end of expression {self.text!r}")
        self.pos += 1
        return tok

    def parse(self) -> Predicate:
        if self.peek() is None:
            return lambda match: True
        pred = self.expr()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()!r} in expression {self.text!r}")
        return pred

    def expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek() == "or":
            self.take()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda match: any(p(match) for p in parts)

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.peek() == "and":
            self.take()
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda match: all(p(match) for p in parts)

    def not_expr(self) -> Predicate:
        tok = self.take()
        if tok == "not":
            inner = self.not_expr()
            return lambda match: not inner(match)
        if tok == "(":
            inner = self.expr()
            if self.take() != ")":
                raise ExpressionError(f"expected ')' in expression {self.text!r}")
            return inner
        if tok in (")", "and", "or"):
            raise ExpressionError(f"unexpected {tok!r} in expression {self.text!r}")
        if tok in ("True", "False", "None"):
            raise ExpressionError(f"{tok} is not allowed as an identifier in {self.text!r}")
        if self.peek() == "(":  # -m "mark(key=value)": kwargs matching is done by the engine
            depth = 0
            while True:
                t = self.take()
                depth += t == "("
                depth -= t == ")"
                if depth == 0:
                    break
        ident = tok
        return lambda match: match(ident)


def compile_expression(text: str) -> Predicate:
    """Parse `text`; raise ExpressionError with pytest-like wording if it is malformed."""
    return _Parser(text).parse()


def keyword_matcher(names: Iterable[str]) -> Matcher:
    lowered = [n.lower() for n in names]
    return lambda sub: any(sub.lower() in name for name in lowered)


def mark_matcher(marks: Iterable[str]) -> Matcher:
    present = set(marks)
    return lambda name: name in present
