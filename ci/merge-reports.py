#!/usr/bin/env python3
"""Merge the reports of several runs (CI jobs, shards, kernels) into one of each kind.

Usage: merge-reports.py RUNS_DIR OUT_DIR

Every junit.xml under RUNS_DIR is merged with junitparser, every kcidb.json with
kcidb-io's own merge (and validated against its schema), so the merged files are what
those tools themselves make of ours.
"""
import json
import pathlib
import sys

import junitparser
import kcidb_io


def main(runs: pathlib.Path, out: pathlib.Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    junits = sorted(runs.rglob("junit.xml"))
    kcidbs = sorted(runs.rglob("kcidb.json"))
    if not junits and not kcidbs:
        print(f"no junit.xml or kcidb.json under {runs}", file=sys.stderr)
        return 1
    merged = junitparser.JUnitXml()
    for path in junits:
        merged += junitparser.JUnitXml.fromfile(str(path))
    merged.write(str(out / "junit.xml"))
    schema = kcidb_io.schema.LATEST
    data = schema.merge(schema.new(), [json.loads(p.read_text()) for p in kcidbs])
    schema.validate(data)
    (out / "kcidb.json").write_text(json.dumps(data, indent=2))
    print(
        f"merged {len(junits)} JUnit reports ({merged.tests} tests, {merged.failures} "
        f"failures, {merged.errors} errors, {merged.skipped} skipped) and {len(kcidbs)} "
        f"KCIDB reports ({len(data.get('tests', []))} tests) into {out}"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])))
