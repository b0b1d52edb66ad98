"""TOML 1.0.0 conformance of libkarapace's parser, through tests/toml-decoder.

Two corpora run through the same checks:

* the public toml-test suite as Debian ships it (golang-github-burntsushi-toml-dev), or
  any toml-test checkout named by KARAPACE_TOML_TEST_SUITE;
* our own cases in tests/toml/{valid,invalid}, for what the suite does not cover. An
  invalid case may have a NAME.err file next to it holding "LINE:COL: message" — the
  error must start with exactly that.

A valid case passes when the decoder's tagged JSON equals the expected JSON, compared as
toml-test compares it: floats by value (every NaN equal), date-times by what they denote.
An invalid case passes when the decoder exits 1 and reports "<stdin>:LINE:COL: message".
Cases written for a later TOML version are listed in NEWER_VERSION with the reason; they
must be refused, since the parser implements 1.0.0 exactly.
"""

import datetime
import json
import math
import os
import re
import subprocess
from pathlib import Path

import pytest

DECODER = os.environ.get("KARAPACE_TOML_DECODER")
SUITE = Path(
    os.environ.get(
        "KARAPACE_TOML_TEST_SUITE",
        "/usr/share/gocode/src/github.com/BurntSushi/toml/internal/toml-test/tests",
    )
)
OWN = Path(__file__).resolve().parents[1] / "toml"

# Suite cases that are valid only in a later TOML version. Our parser must refuse them.
NEWER_VERSION = {
    "valid/string/escape-esc": "the \\e escape was added in TOML 1.1.0",
    "valid/datetime/no-seconds": "optional seconds were added in TOML 1.1.0",
    "valid/inline-table/newline": "newlines in inline tables were added in TOML 1.1.0",
    "valid/inline-table/newline-comment": "newlines in inline tables were added in TOML 1.1.0",
    "valid/string/hex-escape": "the \\xHH escape was added in TOML 1.1.0",
    "valid/key/empty-05": "newlines in inline tables were added in TOML 1.1.0",
}

# Valid TOML 1.0.0 that this parser refuses on purpose (docs/toml.md, "Deviations").
DEVIATIONS = {
    "valid/key/quoted-unicode": "keys containing U+0000 are refused (keys are C strings)",
}

ERROR_RE = re.compile(r"^<stdin>:(\d+):(\d+): (.+)$")

if DECODER is None:
    pytest.skip(
        "KARAPACE_TOML_DECODER is not set (path of the built tests/toml-decoder)",
        allow_module_level=True,
    )


def decode(data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DECODER], input=data, capture_output=True, timeout=60, check=False
    )


# ---- comparing tagged JSON -------------------------------------------------------------

DT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?)?$"
)
TIME_RE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


def nanoseconds(frac):
    # Precision past nanoseconds is truncated, as TOML requires.
    return int((frac or "").ljust(9, "0")[:9])


def datetime_key(kind, text):
    """What a date-time denotes: an instant for offset date-times, fields otherwise."""
    if kind == "time-local":
        m = TIME_RE.match(text)
        assert m, f"not a local time: {text!r}"
        return (int(m[1]), int(m[2]), int(m[3]), nanoseconds(m[4]))
    m = DT_RE.match(text)
    assert m, f"not a date-time: {text!r}"
    date = (int(m[1]), int(m[2]), int(m[3]))
    if kind == "date-local":
        assert m[4] is None, f"date-local with a time: {text!r}"
        return date
    assert m[4] is not None, f"{kind} without a time: {text!r}"
    clock = (int(m[4]), int(m[5]), int(m[6]), nanoseconds(m[7]))
    if kind == "datetime-local":
        assert m[8] is None, f"datetime-local with an offset: {text!r}"
        return date + clock
    assert m[8] is not None, f"datetime without an offset: {text!r}"
    offset = 0
    if m[8] not in ("Z", "z"):
        sign = -1 if m[8][0] == "-" else 1
        offset = sign * (int(m[8][1:3]) * 60 + int(m[8][4:6]))
    days = datetime.date(*date).toordinal()
    seconds = days * 86400 + clock[0] * 3600 + clock[1] * 60 + clock[2] - offset * 60
    return (seconds, clock[3])


def is_leaf(v):
    return isinstance(v, dict) and set(v) == {"type", "value"} and isinstance(v["type"], str)


def same_float(want, have):
    w, h = float(want), float(have)
    if math.isnan(w) or math.isnan(h):
        return math.isnan(w) and math.isnan(h)
    return w == h


def compare(want, have, path="(root)"):
    """Raise AssertionError at the first difference."""
    if is_leaf(want):
        assert is_leaf(have), f"{path}: expected a {want['type']} value, got {have!r}"
        kind = want["type"]
        assert have["type"] == kind, f"{path}: expected type {kind}, got {have['type']}"
        w, h = want["value"], have["value"]
        if kind == "array":  # older suites tag arrays too
            compare(w, h, path)
        elif kind == "float":
            assert same_float(w, h), f"{path}: expected float {w}, got {h}"
        elif kind in ("datetime", "datetime-local", "date-local", "time-local"):
            assert datetime_key(kind, w) == datetime_key(kind, h), (
                f"{path}: expected {kind} {w}, got {h}"
            )
        elif kind == "integer":
            assert int(w) == int(h), f"{path}: expected integer {w}, got {h}"
        else:
            assert w == h, f"{path}: expected {kind} {w!r}, got {h!r}"
    elif isinstance(want, dict):
        assert isinstance(have, dict) and not is_leaf(have), f"{path}: expected a table, got {have!r}"
        assert set(want) == set(have), (
            f"{path}: keys differ: missing {sorted(set(want) - set(have))}, "
            f"unexpected {sorted(set(have) - set(want))}"
        )
        for k in want:
            compare(want[k], have[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(have, list), f"{path}: expected an array, got {have!r}"
        assert len(want) == len(have), f"{path}: expected {len(want)} elements, got {len(have)}"
        for i, (w, h) in enumerate(zip(want, have)):
            compare(w, h, f"{path}[{i}]")
    else:
        raise AssertionError(f"{path}: malformed expected value {want!r}")


# ---- the checks ------------------------------------------------------------------------


def check_valid(toml: bytes, expected: bytes):
    r = decode(toml)
    assert r.returncode == 0, f"refused valid TOML: {r.stderr.decode(errors='replace')}"
    compare(json.loads(expected), json.loads(r.stdout))


def check_invalid(toml: bytes, expected_error=None):
    r = decode(toml)
    err = r.stderr.decode(errors="replace").strip()
    assert r.returncode == 1, (
        f"exit {r.returncode} for invalid TOML (stdout {r.stdout[:200]!r}, stderr {err!r})"
    )
    assert r.stdout == b"", "output written for invalid TOML"
    m = ERROR_RE.match(err)
    assert m, f"error is not '<stdin>:LINE:COL: message': {err!r}"
    assert int(m[1]) >= 1 and int(m[2]) >= 1, err
    if expected_error is not None:
        assert err.startswith("<stdin>:" + expected_error), (
            f"expected '<stdin>:{expected_error}...', got {err!r}"
        )


# ---- collecting cases --------------------------------------------------------------------


def suite_cases():
    """(id, kind, data, expected) for every case of the suite, .multi files expanded."""
    cases = []
    if not SUITE.is_dir():
        return cases
    # A toml-test checkout lists its TOML 1.0.0 cases; the rest are for later versions.
    listing = SUITE / "files-toml-1.0.0"
    listed = set(listing.read_text().split()) if listing.exists() else None
    for path in sorted(SUITE.rglob("*")):
        rel = path.relative_to(SUITE).as_posix()
        if listed is not None and rel not in listed:
            continue
        if path.suffix == ".toml":
            name = rel[: -len(".toml")]
            if name.startswith("valid/"):
                expected = path.with_suffix(".json")
                cases.append((name, "valid", path, expected))
            elif name.startswith("invalid/"):
                cases.append((name, "invalid", path, None))
        elif path.suffix == ".multi" and rel.startswith("invalid/"):
            # One invalid document per line; "\xHH" stands for the raw byte.
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                data = re.sub(
                    r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m[1], 16)), line
                ).encode("latin-1")
                key = line.split("=")[0].strip()
                cases.append((f"{rel}:{key}", "invalid", data, None))
    return cases


SUITE_CASES = suite_cases()


if not SUITE_CASES:

    def test_suite_present():
        pytest.skip(
            f"toml-test suite not found at {SUITE}: "
            "apt-get install golang-github-burntsushi-toml-dev (or set KARAPACE_TOML_TEST_SUITE)"
        )


@pytest.mark.parametrize(
    "name,kind,source,expected", SUITE_CASES, ids=[c[0] for c in SUITE_CASES]
)
def test_suite(name, kind, source, expected):
    data = source.read_bytes() if isinstance(source, Path) else source
    if name in NEWER_VERSION:
        check_invalid(data)
    elif name in DEVIATIONS:
        check_invalid(data)
    elif kind == "valid":
        check_valid(data, expected.read_bytes())
    else:
        check_invalid(data)


def own_cases():
    cases = []
    for path in sorted((OWN / "valid").glob("*.toml")):
        cases.append(("valid/" + path.stem, "valid", path))
    for path in sorted((OWN / "invalid").glob("*.toml")):
        cases.append(("invalid/" + path.stem, "invalid", path))
    return cases


OWN_CASES = own_cases()


def test_own_corpus_present():
    assert len(OWN_CASES) > 20, f"our TOML corpus is missing from {OWN}"


@pytest.mark.parametrize("name,kind,path", OWN_CASES, ids=[c[0] for c in OWN_CASES])
def test_own(name, kind, path):
    if kind == "valid":
        check_valid(path.read_bytes(), path.with_suffix(".json").read_bytes())
    else:
        err = path.with_suffix(".err")
        expected = err.read_text(encoding="utf-8").rstrip("\n") if err.exists() else None
        check_invalid(path.read_bytes(), expected)
