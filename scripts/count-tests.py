#!/usr/bin/env python3
"""Adds up ctest JUnit reports (ctest --output-junit) and prints one closing line:
`N passed, N failed, N skipped`. Exit status 1 when a test failed, a report is missing or unreadable,
or the reports hold no test that ran.

    scripts/count-tests.py build/ctest-results.xml build-sanitize/ctest-results.xml ...
"""
import sys
import xml.etree.ElementTree as ET


def count(path):
    passed = failed = skipped = 0
    for case in ET.parse(path).getroot().iter("testcase"):
        status = case.get("status", "")
        if status == "fail" or case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif status in ("notrun", "disabled") or case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main(paths):
    totals = [0, 0, 0]
    broken = []
    for path in paths:
        try:
            for i, n in enumerate(count(path)):
                totals[i] += n
        except (OSError, ET.ParseError) as e:
            broken.append(f"{path}: {e}")
    for line in broken:
        print(f"count-tests: cannot read {line}", file=sys.stderr)
    passed, failed, skipped = totals
    failed += len(broken)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: count-tests.py REPORT.xml [REPORT.xml ...]")
    sys.exit(main(sys.argv[1:]))
