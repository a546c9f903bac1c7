#!/usr/bin/env python3
"""Prints the IDs of a conformance report's cases with the given outcomes, one line, sorted.
Usage: report-cases.py conformance-report.yaml OUTCOME... (passed, failed, skipped, notApplicable,
notRun, notSelected). Reads the report file, never the harness's human-readable output."""
import sys

try:
    import yaml
except ImportError:
    sys.exit("ci/report-cases.py needs PyYAML (python3 -m pip install pyyaml)")

report = yaml.safe_load(open(sys.argv[1]))
wanted = set(sys.argv[2:])
ids = sorted(case["id"] for feature in report["features"] for case in feature["cases"]
             if case["result"] in wanted)
print(" ".join(ids))
