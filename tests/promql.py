"""Just enough of PromQL to list what an expression reads: its metric selectors (name and
label matchers) and the labels it groups or matches on. Syntax itself is promtool's job
(tests/test_dashboards.py); this tokenizer only has to be right on valid expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Aggregation operators: an identifier followed by ``by``/``without`` or ``(``.
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
#: Keywords whose parenthesised list names labels.
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = LABEL_LISTS | {"and", "or", "unless", "bool", "offset", "atan2"}

_TOKEN = re.compile(r"""
      (?P<space>\s+)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<range>\[[^\]]*\])
    | (?P<number>(?:0x[0-9a-fA-F]+|[0-9][0-9a-zA-Z.]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<punct>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){},@])
""", re.VERBOSE)


@dataclass
class Selector:
    """``metric{label op "value", ...}``."""

    metric: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Reads:
    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)


def tokens(expr: str) -> list[tuple[str, str]]:
    """(kind, text) of every token but white space; ValueError on anything else."""
    found, at = [], 0
    while at < len(expr):
        match = _TOKEN.match(expr, at)
        if match is None:
            raise ValueError(f"cannot read {expr[at:at + 20]!r} in {expr!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            found.append((kind, match.group()))
        at = match.end()
    return found


def reads(expr: str) -> Reads:
    """The selectors and grouping labels of ``expr``."""
    result, toks, i = Reads(), tokens(expr), 0
    while i < len(toks):
        kind, text = toks[i]
        following = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "ident" and text in LABEL_LISTS and following == "(":
            i, labels = _label_list(toks, i + 1)
            result.grouping |= labels
            continue
        if kind == "ident" and (text in KEYWORDS or text in AGGREGATIONS
                                or following == "("):
            i += 1  # a keyword, an aggregation or a function name
            continue
        if kind == "ident" or (kind == "punct" and text == "{"):
            selector = Selector(text if kind == "ident" else "")
            i += 1 if kind == "ident" else 0
            if i < len(toks) and toks[i][1] == "{":
                i, selector.matchers = _matchers(toks, i)
            if not selector.metric:  # {__name__="..."}
                selector.metric = next(v for k, _op, v in selector.matchers if k == "__name__")
            result.selectors.append(selector)
            continue
        i += 1
    return result


def _label_list(toks: list[tuple[str, str]], i: int) -> tuple[int, set[str]]:
    labels, i = set(), i + 1  # past "("
    while toks[i][1] != ")":
        if toks[i][0] == "ident":
            labels.add(toks[i][1])
        i += 1
    return i + 1, labels


def _matchers(toks: list[tuple[str, str]], i: int) -> tuple[int, list[tuple[str, str, str]]]:
    found, i = [], i + 1  # past "{"
    while toks[i][1] != "}":
        if toks[i][0] in ("ident", "string") and toks[i + 1][0] == "punct":
            label, op, value = toks[i][1].strip("\"'`"), toks[i + 1][1], toks[i + 2][1]
            found.append((label, op, _unquote(value)))
            i += 3
        else:
            i += 1  # a comma
    return i + 1, found


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return body if literal[0] == "`" else re.sub(r"\\(.)", r"\1", body)
