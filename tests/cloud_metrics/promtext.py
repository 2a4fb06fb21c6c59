"""A strict parser for Prometheus text format 0.0.4: anything it accepts, Prometheus accepts.

Stricter than Prometheus where ours should be: every family has HELP and TYPE before its
samples, families are not interleaved, no series repeats, counters are not negative and end
in ``_total``, histograms are cumulative and end at ``+Inf`` equal to ``_count``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
SAMPLE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)(?: (?P<ts>-?\d+))?"
)
LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
Labels = tuple[tuple[str, str], ...]


class ExpositionError(AssertionError):
    """The text is not valid exposition format (line number and reason in the message)."""


@dataclass
class Family:
    """One metric family: its type, help and samples ((name, labels) -> value)."""

    name: str
    type: str = ""
    help: str | None = None
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def value(self, **labels: str) -> float:
        """The sample of this family's own name with exactly ``labels``."""
        return self.samples[(self.name, tuple(sorted(labels.items())))]

    def values(self) -> dict[Labels, float]:
        """Samples of this family's own name by label set."""
        return {labels: v for (name, labels), v in self.samples.items() if name == self.name}


def parse_value(text: str, where: str) -> float:
    """A sample value: a Go float, NaN or +/-Inf."""
    if text in {"NaN", "+Inf", "-Inf"}:
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        raise ExpositionError(f"{where}: bad value {text!r}")
    return float(text)


def parse_labels(text: str | None, where: str) -> Labels:
    """``a="1",b="2"`` as sorted pairs; escapes undone; duplicates and junk refused."""
    if not text:
        return ()
    pairs, pos = [], 0
    while pos < len(text):
        match = LABEL_PAIR.match(text, pos)
        if match is None:
            raise ExpositionError(f"{where}: bad labels {text!r}")
        name = match[1]
        if name.startswith("__"):
            raise ExpositionError(f"{where}: reserved label name {name}")
        value = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], match[2])
        pairs.append((name, value))
        pos = match.end()
        if pos < len(text):
            if text[pos] != ",":
                raise ExpositionError(f"{where}: expected ',' in labels")
            pos += 1
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise ExpositionError(f"{where}: repeated label name")
    return tuple(sorted(pairs))


def family_of(sample: str, families: dict[str, Family]) -> Family | None:
    """The declared family a sample name belongs to (histogram/summary suffixes included)."""
    if sample in families:
        return families[sample]
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample.removesuffix(suffix)
        if base != sample and base in families and suffix in SUFFIXES.get(families[base].type, ()):
            return families[base]
    return None


def parse(text: str) -> dict[str, Family]:
    """Parse and check a whole exposition; raise ExpositionError at the first problem."""
    if not text.endswith("\n"):
        raise ExpositionError("the exposition must end with a newline")
    families: dict[str, Family] = {}
    closed: set[str] = set()
    current: str | None = None
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number}"
        if line.startswith("#"):
            current = _comment(line, where, families, closed, current)
            continue
        match = SAMPLE.fullmatch(line)
        if match is None:
            raise ExpositionError(f"{where}: not a sample: {line!r}")
        family = family_of(match["name"], families)
        if family is None or not family.type:
            raise ExpositionError(f"{where}: sample before its TYPE: {match['name']}")
        if family.name != current:
            raise ExpositionError(f"{where}: {family.name} interleaved with another family")
        key = (match["name"], parse_labels(match["labels"], where))
        if key in family.samples:
            raise ExpositionError(f"{where}: repeated series {key}")
        family.samples[key] = parse_value(match["value"], where)
    for family in families.values():
        _check_family(family)
    return families


def _comment(
    line: str, where: str, families: dict[str, Family], closed: set[str], current: str | None
) -> str | None:
    parts = line.split(" ", 3)
    if len(parts) < 3 or parts[1] not in {"HELP", "TYPE"}:
        return current  # a plain comment
    keyword, name = parts[1], parts[2]
    if not METRIC_NAME.fullmatch(name):
        raise ExpositionError(f"{where}: bad metric name {name!r}")
    if name != current:
        if current is not None:
            closed.add(current)
        if name in closed:
            raise ExpositionError(f"{where}: {name} declared again after other families")
    family = families.setdefault(name, Family(name))
    rest = parts[3] if len(parts) == 4 else ""
    if keyword == "HELP":
        if family.help is not None:
            raise ExpositionError(f"{where}: second HELP for {name}")
        if re.search(r"\\[^\\n]", rest):
            raise ExpositionError(f"{where}: bad escape in HELP")
        family.help = rest
    else:
        if family.type or family.samples:
            raise ExpositionError(f"{where}: TYPE for {name} after its samples or twice")
        if rest not in TYPES:
            raise ExpositionError(f"{where}: unknown type {rest!r}")
        family.type = rest
    return name


def _check_family(family: Family) -> None:
    if family.help is None:
        raise ExpositionError(f"{family.name}: no HELP")
    if family.type == "counter":
        if not family.name.endswith("_total"):
            raise ExpositionError(f"{family.name}: a counter's name should end in _total")
        if any(v < 0 or math.isnan(v) for v in family.samples.values()):
            raise ExpositionError(f"{family.name}: a counter is negative or NaN")
    if family.type == "histogram":
        _check_histogram(family)


def _check_histogram(family: Family) -> None:
    name = family.name
    buckets = sorted(
        (parse_value(dict(labels)["le"], name), value)
        for (sample, labels), value in family.samples.items()
        if sample == name + "_bucket"
    )
    if not buckets or buckets[-1][0] != math.inf:
        raise ExpositionError(f"{name}: no +Inf bucket")
    counts = [count for _, count in buckets]
    if counts != sorted(counts):
        raise ExpositionError(f"{name}: buckets are not cumulative")
    if family.samples.get((name + "_count", ())) != counts[-1]:
        raise ExpositionError(f"{name}: _count differs from the +Inf bucket")
    if (name + "_sum", ()) not in family.samples:
        raise ExpositionError(f"{name}: no _sum")
