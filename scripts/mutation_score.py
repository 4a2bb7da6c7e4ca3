"""Summarise mutmut's results (its .mutmut-cache) for `make mutation`: killed, survived, score per module."""

from __future__ import annotations

import sqlite3
import sys
from collections import Counter, defaultdict
from pathlib import Path

KILLED = {"ok_killed", "ok_suspicious", "bad_timeout"}  # a timeout also means the tests noticed the mutant


def main(cache: Path) -> int:
    rows = sqlite3.connect(cache).execute(
        "SELECT sourcefile.filename, mutant.status FROM mutant "
        "JOIN line ON mutant.line = line.id JOIN sourcefile ON line.sourcefile = sourcefile.id"
    )
    per_file: dict[str, Counter] = defaultdict(Counter)
    for filename, status in rows:
        per_file[filename][status] += 1
    total = Counter()
    for filename, counts in sorted(per_file.items()):
        killed, tested = sum(counts[s] for s in KILLED), sum(v for s, v in counts.items() if s != "untested")
        total.update(counts)
        print(f"{filename:55} {killed:4} of {tested:4} killed ({killed / max(tested, 1):.0%})")
    killed, tested = sum(total[s] for s in KILLED), sum(v for s, v in total.items() if s != "untested")
    print(f"{'all':55} {killed:4} of {tested:4} killed ({killed / max(tested, 1):.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".mutmut-cache")))
