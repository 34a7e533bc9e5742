#!/usr/bin/env python3
"""Run the toml-test cases of a list file through a decoder; print TAP.

usage: toml_compare.py DECODER TESTS_DIR LIST_FILE

Valid cases must exit 0 and print tagged JSON equal to the expected .json,
compared structurally: floats by value (nan equal to nan), datetimes by
value ('T' or ' ', 'z' or 'Z', trailing zeros of the fraction, Z and +00:00
all the same), everything else exactly.  Invalid cases must exit 1 with a
"LINE:COL: message" error; a signal or any other status is a failure.
"""
import json
import math
import os
import re
import subprocess
import sys

SCALARS = {"string", "integer", "float", "bool", "datetime",
           "datetime-local", "date-local", "time-local"}
DT = re.compile(r"^(?:(\d{4}-\d{2}-\d{2}))?(?:[Tt ]?(\d{2}:\d{2}:\d{2})"
                r"(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?)?$")


def is_scalar(x):
    return (isinstance(x, dict) and set(x) == {"type", "value"}
            and isinstance(x["type"], str) and x["type"] in SCALARS
            and isinstance(x["value"], str))


def norm_dt(s):
    m = DT.match(s)
    if m is None:
        return ("unparsable", s)
    date, time, frac, off = m.groups()
    frac = (frac or "").rstrip("0")
    if off is not None and off.upper() in ("Z", "+00:00", "-00:00"):
        off = "Z"
    return (date, time, frac, off)


def scalar_eq(t, a, b):
    if t == "float":
        try:
            fa, fb = float(a), float(b)
        except ValueError:
            return False
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return fa == fb
    if t == "integer":
        try:
            return int(a) == int(b)
        except ValueError:
            return False
    if t in ("datetime", "datetime-local", "date-local", "time-local"):
        return norm_dt(a) == norm_dt(b)
    return a == b


def compare(want, got, path):
    """None when equal, else a description of the first difference."""
    if is_scalar(want):
        if not is_scalar(got):
            return "%s: want %s, got %r" % (path, want["type"], got)
        if want["type"] != got["type"]:
            return "%s: want type %s, got %s" % (path, want["type"],
                                                 got["type"])
        if not scalar_eq(want["type"], want["value"], got["value"]):
            return "%s: want %r, got %r" % (path, want["value"],
                                            got["value"])
        return None
    if isinstance(want, dict):
        if not isinstance(got, dict) or is_scalar(got):
            return "%s: want a table, got %r" % (path, got)
        if set(want) != set(got):
            return "%s: keys differ: missing %s, extra %s" % (
                path, sorted(set(want) - set(got)),
                sorted(set(got) - set(want)))
        for k in want:
            d = compare(want[k], got[k], "%s.%s" % (path, k))
            if d:
                return d
        return None
    if isinstance(want, list):
        if not isinstance(got, list):
            return "%s: want an array, got %r" % (path, got)
        if len(want) != len(got):
            return "%s: want %d items, got %d" % (path, len(want), len(got))
        for i, (w, g) in enumerate(zip(want, got)):
            d = compare(w, g, "%s[%d]" % (path, i))
            if d:
                return d
        return None
    return "%s: unexpected expected-value %r" % (path, want)


def run(decoder, path):
    with open(path, "rb") as f:
        try:
            p = subprocess.run([decoder], stdin=f, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=20)
        except subprocess.TimeoutExpired:
            return None, b"", b"timed out"
    return p.returncode, p.stdout, p.stderr


def check_valid(decoder, base, case):
    rc, out, err = run(decoder, os.path.join(base, case + ".toml"))
    if rc != 0:
        return "exit %s: %s" % (rc, err.decode("utf-8", "replace").strip())
    try:
        got = json.loads(out.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        return "output is not JSON: %s" % e
    with open(os.path.join(base, case + ".json"), encoding="utf-8") as f:
        want = json.load(f)
    return compare(want, got, "$")


def check_invalid(decoder, base, case):
    rc, out, err = run(decoder, os.path.join(base, case + ".toml"))
    if rc == 0:
        return "accepted: %s" % out.decode("utf-8", "replace")[:200]
    if rc != 1:
        return "exit %s (want 1): %s" % (
            rc, err.decode("utf-8", "replace").strip()[:300])
    if not re.match(rb"^\d+:\d+: \S", err):
        return "no LINE:COL: message on stderr: %r" % err[:200]
    return None


def main():
    decoder, base, listfile = sys.argv[1:4]
    with open(listfile) as f:
        cases = [l.strip()[:-5] for l in f if l.strip().endswith(".toml")]
    print("1..%d" % len(cases))
    for n, case in enumerate(cases, 1):
        if case.startswith("valid/"):
            why = check_valid(decoder, base, case)
        else:
            why = check_invalid(decoder, base, case)
        if why is None:
            print("ok %d - %s" % (n, case))
        else:
            print("not ok %d - %s" % (n, case))
            for line in why.splitlines()[:10]:
                print("# " + line)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
