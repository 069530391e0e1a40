"""Shared helpers for the Python tests: run the kseg command, make scratch dirs, report cases."""
import os
import subprocess
import sys
import tempfile

KSEG = os.environ.get("KSEG", "kseg")

# What the sanitizer builds print when they find something. UBSan's "runtime error:" does not
# change the exit status unless halt_on_error is set, so stderr itself is checked.
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def run_kseg(*args, check=True):
    """Runs kseg with args; returns the CompletedProcess (text mode). A sanitizer report on
    stderr fails the calling test whatever the exit status and check."""
    result = subprocess.run([KSEG, *map(str, args)], capture_output=True, text=True)
    for report in SANITIZER_REPORTS:
        if report in result.stderr:
            raise AssertionError(f"kseg {' '.join(map(str, args))}: sanitizer report "
                                 f"'{report}' on stderr:\n{result.stderr.strip()}")
    if check and result.returncode != 0:
        raise AssertionError(f"kseg {' '.join(map(str, args))} failed ({result.returncode}): "
                             f"{result.stderr.strip()}")
    return result


class Cases:
    """Counts passed and failed cases and prints the 'N passed, N failed' closing line."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, function, *args):
        try:
            function(*args)
        except Exception as error:  # a failing case must not stop the others
            self.failed += 1
            print(f"FAIL {name}: {error}")
        else:
            self.passed += 1
            print(f"ok   {name}")

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


def scratch_dir():
    return tempfile.TemporaryDirectory(prefix="kseg-test-")


def run_cases(namespace):
    """Runs every case_NAME(tmp) function of a test module (pass globals()), each in a fresh
    scratch directory and in name order, then prints the summary and exits 1 if any failed."""
    cases = Cases()
    for name, function in sorted(namespace.items()):
        if name.startswith("case_"):
            with scratch_dir() as tmp:
                cases.run(name[5:], function, tmp)
    cases.finish()


def snapshot(directory):
    """Every path under directory (hidden ones too: a temporary file is '.NAME.tmp.XXXX')."""
    found = set()
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(root, name), directory))
    return found


def expect_failure(tmp, args, fragments, code=1, watch=(), kept=()):
    """Runs kseg ARGS and checks the refusal: exit status, one stderr line starting with
    'kseg COMMAND: ' and holding every fragment, nothing new under tmp (or the extra watched
    directories) but the paths in kept. Returns the line."""
    directories = [tmp, *watch]
    before = [snapshot(d) for d in directories]
    result = run_kseg(*args, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, \
        f"exit {result.returncode}, expected {code}: {result.stderr.strip()}"
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    prefix = f"kseg {args[0]}: "
    assert lines[0].startswith(prefix), f"'{prefix}' does not start: {lines[0]}"
    if os.environ.get("KSEG_TEST_VERBOSE"):
        print("     |", lines[0])
    for fragment in fragments:
        assert str(fragment) in lines[0], f"'{fragment}' not in: {lines[0]}"
    for directory, old in zip(directories, before):
        created = sorted(snapshot(directory) - old - set(kept))
        assert not created, f"left behind in {directory}: {created}"
    return lines[0]
