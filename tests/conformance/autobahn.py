#!/usr/bin/env python3
"""Runs the Autobahn TestSuite case files against a WebSocket server with kosoku.

kosoku (PyPI, pinned in scripts/deps.sh) drives Autobahn's own case files from a
Python 3 runner; the original `autobahntestsuite` package is Python 2 only.

Usage: autobahn.py URL OUT_JSON [--report DIR] [--include CASE]... [--exclude CASE]...

Writes OUT_JSON: a list of {id, behavior, behavior_close, passed, expects_message,
remote_close_code, description} in case order, where `expects_message` says whether
any outcome the case accepts has the server send a data message (an echo). With
--report, also writes Autobahn's HTML/JSON reports into DIR. Exits 0 whether or not
cases failed: the caller judges the results; exits 2 on a usage or runner error.
"""

import argparse
import asyncio
import json
import sys

from kosoku import FailureError, run_fuzzingclient


def expects_message(expected):
    """Whether any accepted event sequence contains a message from the server."""
    if not isinstance(expected, dict):
        return False
    for sequences in expected.values():
        for event in sequences or []:
            if isinstance(event, (list, tuple)) and event and event[0] == "message":
                return True
    return False


async def run(args):
    try:
        results = await run_fuzzingclient(
            args.url, args.include or None, args.exclude or None, concurrency=args.parallelism
        )
    except FailureError as failure:
        results = failure.results
    if args.report:
        from kosoku._report import write_reports

        write_reports(results, args.report)
    return [
        {
            "id": r.case_id,
            "behavior": r.behavior.value,
            "behavior_close": r.behavior_close.value,
            "passed": r.passed,
            "expects_message": expects_message(r.expected),
            "remote_close_code": r.remote_close_code,
            "description": r.description,
        }
        for r in results
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--report")
    parser.add_argument("--include", action="append")
    parser.add_argument("--exclude", action="append")
    parser.add_argument("--parallelism", type=int, default=2)
    args = parser.parse_args()
    try:
        summary = asyncio.run(run(args))
    except Exception as err:  # the runner itself failed: not a case result
        print(f"autobahn.py: {err}", file=sys.stderr)
        return 2
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(summary, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
