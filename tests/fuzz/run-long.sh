#!/bin/bash
# run-long.sh [-r RUNS] [-j JOBS] [HARNESS...] - run the libFuzzer
# harnesses long: RUNS inputs each (default 10000000), over a growing
# corpus in $FUZZ_WORK (default /var/tmp/thinfs-fuzz) seeded from
# tests/fuzz/corpus. Prints, per harness, the inputs executed, the corpus
# size and the findings (crash/leak/timeout/oom files, kept in
# $FUZZ_WORK/NAME-findings). A finding is to be fixed and its input added
# to tests/fuzz/corpus/NAME as a regression. Exit 1 if any harness found
# something.
#   BUILD=DIR  where the harnesses are built (default: the build tree of
#              this checkout's `make check`, ./tests/fuzz)
# Runs under nice -n 10: the machine is shared.
set -u
here=$(cd "$(dirname "$0")" && pwd)
runs=10000000 jobs=1
while getopts r:j: o; do
	case $o in
	r) runs=$OPTARG ;;
	j) jobs=$OPTARG ;;
	*) echo "usage: $0 [-r RUNS] [-j JOBS] [HARNESS...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
bin=${BUILD:-.}/tests/fuzz
work=${FUZZ_WORK:-/var/tmp/thinfs-fuzz}
[ $# -gt 0 ] || set -- options ctl metadata name
mkdir -p "$work"
found=0
printf '%-10s %12s %8s %8s  %s\n' harness executions corpus findings seconds
for h in "$@"; do
	[ -x "$bin/fuzz-$h" ] || { echo "$bin/fuzz-$h: not built (make check with clang and libFuzzer)" >&2; exit 2; }
	mkdir -p "$work/$h" "$work/$h-findings"
	par=; [ "$jobs" -gt 1 ] && par="-jobs=$jobs -workers=$jobs"
	start=$(date +%s)
	nice -n 10 "$bin/fuzz-$h" -runs="$runs" $par -timeout=10 -error_exitcode=1 \
		-rss_limit_mb=2048 -artifact_prefix="$work/$h-findings/" -print_final_stats=1 \
		"$work/$h" "$here/corpus/$h" >"$work/$h.log" 2>&1
	st=$?
	secs=$(( $(date +%s) - start ))
	# With -jobs the stats are in fuzz-N.log files; sum every final count.
	execs=$(cat "$work/$h.log" fuzz-*.log 2>/dev/null |
		sed -n 's/^stat::number_of_executed_units: *//p' | awk '{s += $1} END {print s + 0}')
	rm -f fuzz-*.log
	findings=$(find "$work/$h-findings" -type f | wc -l)
	corpus=$(find "$work/$h" -type f | wc -l)
	printf '%-10s %12s %8s %8s  %s\n' "$h" "$execs" "$corpus" "$findings" "$secs"
	if [ "$findings" -gt 0 ] || [ $st -ne 0 ]; then
		found=1
		grep -E 'ERROR:|SUMMARY:|runtime error' "$work/$h.log" | head -5 | sed 's/^/    /'
		find "$work/$h-findings" -type f | sed 's/^/    input: /'
	fi
done
exit $found
