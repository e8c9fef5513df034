#!/usr/bin/env bash
# Index files written by one build are read by the others: SSE2, AVX2 and portable matchers.
# Usage: file_compat_test.sh DIR_WITH_BINARIES. AVX2 runs only on a CPU that has it.
set -u
bin=$1
impls=(sse2 portable)
if grep -qw avx2 /proc/cpuinfo; then impls+=(avx2); else echo "no AVX2 on this CPU: checking SSE2 and portable only"; fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0
for w in "${impls[@]}"; do
  "$bin/file_compat_$w" write "$dir/$w.idx" || fail=1
done
for w in "${impls[@]}"; do
  # The same operations give the same bytes, whatever the matcher.
  cmp -s "$dir/sse2.idx" "$dir/$w.idx" || { echo "FAIL: $w's file differs from sse2's"; fail=1; }
  for r in "${impls[@]}"; do
    "$bin/file_compat_$r" check "$dir/$w.idx" || { echo "FAIL: $r cannot read $w's file"; fail=1; }
  done
done
[ $fail = 0 ] && echo "file_compat: ok"
exit $fail
