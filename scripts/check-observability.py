#!/usr/bin/env python3
"""Checks the Grafana dashboard and the Prometheus alert rules against PromQL and the exporter.

- deploy/grafana/*.json: must parse; every panel target `expr` (rows and nested panels
  included) and every template variable query (`label_values(SELECTOR, label)` and plain
  PromQL) is collected; Grafana variables are replaced by placeholders first
  (`$__rate_interval` -> 5m, `$hostname` -> `.*` inside a string, ...), and a variable the
  dashboard does not define is an error.
- deploy/prometheus/*.yaml: PrometheusRule objects (or plain rule files); every rule `expr`.
- Every expression is parsed with promql-parser (the Rust PromQL parser's Python binding).
- Every metric a selector names that starts with `linkwise_` must be a sample name of the
  exporter catalogue (crates/exporter/src/catalogue.rs: gauge NAME, counter NAME_total,
  info NAME_info), and each label a selector matches on must be one that family carries.

Exit 0 when all is well, 1 with one line per problem otherwise, 2 when an input is missing.
Needs: python3 -m pip install promql-parser==0.11.0 pyyaml
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    import promql_parser
    import yaml
except ImportError as e:  # pragma: no cover - a setup problem, said plainly
    sys.exit(f"check-observability: {e}; run: python3 -m pip install promql-parser==0.11.0 pyyaml")

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = REPO / "crates/exporter/src/catalogue.rs"
DASHBOARDS = sorted((REPO / "deploy/grafana").glob("*.json"))
RULES = sorted((REPO / "deploy/prometheus").glob("*.y*ml"))

# Labels Prometheus adds to every scraped series (target labels) or that a query may use.
TARGET_LABELS = {"__name__", "instance", "job"}

# Grafana's global variables, by what they stand for.
DURATION_VARS = {"__rate_interval", "__interval", "__range", "__range_s", "__range_ms", "__interval_ms"}
GLOBAL_VARS = DURATION_VARS | {"__from", "__to", "__dashboard", "__org", "__user", "timeFilter", "__name"}


# === catalogue ===


@dataclass
class Family:
    name: str
    kind: str
    labels: set[str]
    attributed: bool

    @property
    def sample(self) -> str:
        return {"Gauge": self.name, "Counter": self.name + "_total", "Info": self.name + "_info"}[self.kind]


def load_catalogue(path: Path) -> dict[str, Family]:
    """Sample name -> family, from the `Family { ... }` literals in catalogue.rs."""
    text = path.read_text()
    consts = {
        m.group(1): re.findall(r'"([^"]+)"', m.group(2))
        for m in re.finditer(r"pub const (\w+): &\[&str\] = &\[(.*?)\];", text, re.S)
    }
    attribution = set(consts.get("ATTRIBUTION_LABELS", []))
    families: dict[str, Family] = {}
    for block in re.findall(r"\bFamily \{(.*?)\n\s*\}", text, re.S):
        name = re.search(r'name: "([^"]+)"', block)
        kind = re.search(r"kind: Kind::(\w+)", block)
        if not name or not kind:
            continue
        labels_m = re.search(r"labels: (?:labels!\[(.*?)\]|(\w+))", block, re.S)
        labels: set[str] = set()
        if labels_m and labels_m.group(1) is not None:
            labels = set(re.findall(r'"([^"]+)"', labels_m.group(1)))
        elif labels_m:
            labels = set(consts.get(labels_m.group(2), []))
        attributed = re.search(r"attributed: true", block) is not None
        fam = Family(name.group(1), kind.group(1), labels | (attribution if attributed else set()), attributed)
        if fam.kind not in ("Gauge", "Counter", "Info"):
            raise SystemExit(f"{path}: family {fam.name}: unknown kind {fam.kind}")
        families[fam.sample] = fam
    if not families:
        raise SystemExit(f"{path}: no `name: \"...\"` / `kind: Kind::...` families found")
    return families


# === expressions ===


@dataclass
class Expr:
    file: Path
    where: str  # panel title or alert name
    text: str  # as written
    query: str = ""  # what is parsed (placeholders substituted)
    problems: list[str] = field(default_factory=list)


VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


def substitute(text: str, defined: set[str]) -> tuple[str, list[str]]:
    """Replaces Grafana variables with placeholders PromQL accepts: durations for the
    interval variables, `.*` inside string literals (regex matchers), 1 elsewhere."""
    problems: list[str] = []

    def repl(m: re.Match, in_string: bool) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in DURATION_VARS:
            return "5m" if not name.endswith(("_s", "_ms")) else "300"
        if name in GLOBAL_VARS:
            return "0"
        if name not in defined:
            problems.append(f"uses ${name}, which the dashboard does not define")
        return ".*" if in_string else "1"

    out, last = [], 0
    for s in STRING_RE.finditer(text):
        out.append(VAR_RE.sub(lambda m: repl(m, False), text[last : s.start()]))
        out.append(VAR_RE.sub(lambda m: repl(m, True), s.group(0)))
        last = s.end()
    out.append(VAR_RE.sub(lambda m: repl(m, False), text[last:]))
    return "".join(out), problems


def selectors(ast) -> list:
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(ast, visit)
    return found


def check(expr: Expr, families: dict[str, Family], seen: set[str]) -> int:
    """Parses the query and checks its metric names and matcher labels; returns the number of
    `linkwise_` metric names checked."""
    try:
        ast = promql_parser.parse(expr.query)
    except Exception as e:  # promql-parser raises ValueError; anything else is a failure too
        expr.problems.append(f"PromQL does not parse: {e}")
        return 0
    checked = 0
    for sel in selectors(ast):
        matchers = list(sel.matchers.matchers) if sel.matchers else []
        name = sel.name
        if name is None:
            eq = [m for m in matchers if m.name == "__name__" and str(m.op).endswith("Equal")]
            name = eq[0].value if eq else None
        if not name or not name.startswith("linkwise_"):
            continue
        checked += 1
        seen.add(name)
        fam = families.get(name)
        if fam is None:
            hint = [s for s in families if s.startswith(name) or name.startswith(s)]
            expr.problems.append(
                f"metric {name} is not in the exporter catalogue"
                + (f" (did you mean {', '.join(sorted(hint))}?)" if hint else "")
            )
            continue
        for m in matchers:
            if m.name not in fam.labels and m.name not in TARGET_LABELS:
                expr.problems.append(
                    f"{name} has no label {m.name!r} (it has: {', '.join(sorted(fam.labels))})"
                )
    return checked


# === inputs ===


def rel(path: Path) -> Path:
    """The path relative to the repository when it is inside it (shorter messages)."""
    try:
        return path.relative_to(REPO)
    except ValueError:
        return path


def panels(node, title="") -> list[tuple[str, dict]]:
    """Every panel, depth first, rows' nested panels included, with a readable title."""
    out = []
    for p in node.get("panels", []) or []:
        t = p.get("title") or f"panel id {p.get('id')}"
        out.append((f"{title} / {t}" if title else t, p))
        out.extend(panels(p, t))
    return out


def dashboard_exprs(path: Path, errors: list[str]) -> list[Expr]:
    try:
        dash = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        errors.append(f"{rel(path)}: not valid JSON: {e}")
        return []
    fname = rel(path)
    if dash.get("schemaVersion", 0) < 39:
        errors.append(f"{fname}: schemaVersion {dash.get('schemaVersion')} (want 39 or later)")
    variables = dash.get("templating", {}).get("list", [])
    defined = {v.get("name") for v in variables}
    if "datasource" not in defined:
        errors.append(f"{fname}: no `datasource` template variable")
    exprs: list[Expr] = []
    for v in variables:
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        if v.get("type") != "query" or not q:
            continue
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q, re.S)
        text = m.group(1) if m else q
        if not m and re.match(r"\s*(label_names|metrics|query_result)\(", q):
            m2 = re.fullmatch(r"\s*\w+\((.*)\)\s*", q, re.S)
            text = m2.group(1) if m2 else q
        if text.strip():
            exprs.append(Expr(fname, f"variable ${v.get('name')}", text))
    ids = set()
    for title, p in panels(dash):
        pid = p.get("id")
        if pid in ids:
            errors.append(f"{fname}: panel {title!r}: duplicate id {pid}")
        ids.add(pid)
        for t in p.get("targets", []) or []:
            if "expr" in t:
                exprs.append(Expr(fname, f"panel {title!r} ({t.get('refId', '?')})", t["expr"]))
            ds = (t.get("datasource") or p.get("datasource") or {}).get("uid")
            if ds not in (None, "${datasource}", "$datasource"):
                errors.append(f"{fname}: panel {title!r}: datasource uid {ds!r}, not ${{datasource}}")
    for e in exprs:
        e.query, problems = substitute(e.text, defined)
        e.problems.extend(problems)
    if not exprs:
        errors.append(f"{fname}: no PromQL expressions found")
    return exprs


def rule_exprs(path: Path, errors: list[str]) -> list[Expr]:
    fname = rel(path)
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as e:
        errors.append(f"{fname}: not valid YAML: {e}")
        return []
    exprs: list[Expr] = []
    for doc in docs:
        if doc.get("kind") == "PrometheusRule":
            if doc.get("apiVersion") != "monitoring.coreos.com/v1":
                errors.append(f"{fname}: PrometheusRule apiVersion {doc.get('apiVersion')!r}")
            groups = (doc.get("spec") or {}).get("groups") or []
        else:
            groups = doc.get("groups") or []
        if not groups:
            errors.append(f"{fname}: no rule groups")
        names = set()
        for g in groups:
            for r in g.get("rules") or []:
                name = r.get("alert") or r.get("record") or "?"
                where = f"{'alert' if 'alert' in r else 'record'} {name} (group {g.get('name')})"
                if "alert" in r:
                    if name in names:
                        errors.append(f"{fname}: {where}: duplicate alert name")
                    names.add(name)
                    if not (r.get("labels") or {}).get("severity"):
                        errors.append(f"{fname}: {where}: no severity label")
                    ann = r.get("annotations") or {}
                    for key in ("summary", "description"):
                        if not ann.get(key):
                            errors.append(f"{fname}: {where}: no {key} annotation")
                    if "for" in r:
                        try:
                            promql_parser.parse_duration(str(r["for"]))
                        except Exception as e:
                            errors.append(f"{fname}: {where}: for {r['for']!r}: {e}")
                if not isinstance(r.get("expr"), str) or not r["expr"].strip():
                    errors.append(f"{fname}: {where}: no expr")
                    continue
                exprs.append(Expr(fname, where, r["expr"], r["expr"]))
    return exprs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dashboard", type=Path, action="append", help="dashboard JSON (default: deploy/grafana/*.json)")
    ap.add_argument("--rules", type=Path, action="append", help="rule YAML (default: deploy/prometheus/*.yaml)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every expression as parsed")
    args = ap.parse_args()
    dashboards = [p.resolve() for p in args.dashboard] if args.dashboard else DASHBOARDS
    rules = [p.resolve() for p in args.rules] if args.rules else RULES
    for p in [CATALOGUE, *dashboards, *rules]:
        if not p.is_file():
            print(f"check-observability: {p} not found", file=sys.stderr)
            return 2
    if not dashboards or not rules:
        print("check-observability: no dashboard or no rule file found", file=sys.stderr)
        return 2

    families = load_catalogue(CATALOGUE)
    errors: list[str] = []
    exprs: list[Expr] = []
    for p in dashboards:
        exprs.extend(dashboard_exprs(p, errors))
    for p in rules:
        exprs.extend(rule_exprs(p, errors))

    checked = 0
    seen: set[str] = set()
    for e in exprs:
        checked += check(e, families, seen)
    parsed = sum(1 for e in exprs if not any(p.startswith("PromQL does not parse") for p in e.problems))
    for e in exprs:
        if args.verbose:
            print(f"{e.file}: {e.where}: {e.query}")
        for problem in e.problems:
            one_line = " ".join(e.text.split())
            errors.append(f"{e.file}: {e.where}: {problem}\n    expr: {one_line}")

    for err in errors:
        print(f"FAIL {err}")
    print(
        f"check-observability: {parsed} of {len(exprs)} PromQL expressions parsed from {len(dashboards)} dashboard(s) and "
        f"{len(rules)} rule file(s); {checked} metric names checked ({len(seen)} distinct) against "
        f"{len(families)} catalogue families; {len(errors)} problem(s)"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
