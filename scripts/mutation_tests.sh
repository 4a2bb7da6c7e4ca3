#!/bin/sh
# One mutant's test run for `make mutation`: PYTHON, then the test files. mutmut 2.5 counts only exit code 1
# as "killed", so a mutant that breaks an import (pytest exits 2 or 3) would pass as a survivor: any failure
# is reported as 1. No bytecode: a same-size mutant written within the same second could run stale code.
python=$1
shift
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=shared:training:local "$python" -B -m pytest -x -q -p no:cacheprovider \
  -p no:randomly "$@" || exit 1
