"""taplib.py — TAP output for the Python test scripts (imported by them, not run itself).

check(cond, name, detail) prints "ok N - name" or "not ok N - name" with the detail as
comments; skip(name, why) counts a skipped test; tests_run() and exit_status() close a script.
"""
import sys

_run = 0
_failed = 0


def check(cond, name, detail=""):
    global _run, _failed
    _run += 1
    print(("ok" if cond else "not ok") + f" {_run} - {name}")
    if not cond:
        _failed += 1
        for line in str(detail).splitlines()[:20]:
            print(f"#   {line}")
    sys.stdout.flush()
    return bool(cond)


def skip(name, why):
    global _run
    _run += 1
    print(f"ok {_run} - {name} # SKIP {why}")
    sys.stdout.flush()


def tests_run():
    return _run


def exit_status():
    return 1 if _failed else 0
