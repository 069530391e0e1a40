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
