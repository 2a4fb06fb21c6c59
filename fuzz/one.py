"""Run one target under atheris: ``python -m fuzz.one NAME [libFuzzer flags] [corpus dirs]``.

Given a crash file instead of a corpus directory, it replays that input once.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]  # atheris ships no type information

# Coverage feedback comes from our own code (and the targets' glue); libraries stay
# uninstrumented so that each execution stays cheap.
INSTRUMENTED = ["cloud_sync", "gateway", "fuzz"]


def main(argv: list[str]) -> None:
    """Instrument our packages, then hand the target's ``check`` to libFuzzer."""
    if len(argv) < 2:
        raise SystemExit("usage: python -m fuzz.one TARGET [libFuzzer flags] [corpus dirs]")
    name, flags = argv[1], argv[2:]
    with atheris.instrument_imports(include=INSTRUMENTED):
        from fuzz.targets import TARGETS  # noqa: PLC0415 - imported under instrumentation

    if name not in TARGETS:
        raise SystemExit(f"unknown target {name!r}; known: {', '.join(sorted(TARGETS))}")
    atheris.Setup([argv[0], *flags], TARGETS[name].check)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
