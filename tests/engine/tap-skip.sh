#!/bin/bash
# tap-skip.sh PROGRAM [ARG]... -- run one C TAP test program for `make check`
# (LOG_COMPILER of the tests without an extension).
#
# A program that cannot run here prints "1..0 # SKIP reason" and exits 77,
# automake's SKIP code (tests/unit/tap.h, tap_skip_all). automake's
# tap-driver.sh counts that plan as SKIP but reports any non-zero exit as an
# ERROR besides, so this passes exit 77 on as 0 when, and only when, the
# program printed such a plan. Every other status (1 for a failed test, a
# signal, a sanitizer's exit code, 77 without a SKIP plan) goes through
# unchanged, and so does the program's output.
set -u
[ $# -ge 1 ] || { echo "usage: $0 PROGRAM [ARG]..." >&2; exit 2; }
"$@" | awk '{ print; fflush() } /^1\.\.0[ \t]*#[ \t]*[Ss][Kk][Ii][Pp]/ { skip = 1 } END { exit !skip }'
st=("${PIPESTATUS[@]}")
if [ "${st[0]}" -eq 77 ] && [ "${st[1]}" -eq 0 ]; then
	exit 0
fi
exit "${st[0]}"
