#!/usr/bin/env bash
# make test's pytest runs: "$@" is the command. When pytest itself is killed by a signal (a crash in
# native code; one that Python's faulthandler could not report leaves nothing in the log), the native
# backtrace of each of its threads is read from the core file with gdb, so the log says where it crashed.
set -uo pipefail
ulimit -c unlimited 2>/dev/null || true
start=$(mktemp)
"$@"
rc=$?
if [ "$rc" -gt 128 ]; then
    echo "$* was killed by signal $((rc - 128))" >&2
    # the kernel writes "core" in the crashed process's directory: the repository, or a test's tmp_path
    core=$(find . "${TMPDIR:-/tmp}" -maxdepth 4 -name core -type f -newer "$start" 2>/dev/null | head -n 1)
    if [ -n "$core" ] && command -v gdb >/dev/null; then
        gdb -batch -ex "info threads" -ex "thread apply all bt 30" "$1" "$core" 2>&1 | tail -n 600 >&2
    fi
    [ -n "$core" ] && rm -f "$core"
fi
rm -f "$start"
exit "$rc"
