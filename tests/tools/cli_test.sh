#!/usr/bin/env bash
# The `sisu` tool's usage contract: --version and --help exit 0; a usage error exits 2 with a
# one-line hint on stderr. Usage: cli_test.sh PATH_TO_SISU
set -u
sisu=$1
fail=0
check() {  # check WHAT EXPECTED_RC ACTUAL_RC
  if [ "$2" != "$3" ]; then echo "FAIL: $1: exit $3, expected $2"; fail=1; fi
}

out=$("$sisu" --version); check "--version" 0 $?
[[ "$out" =~ ^sisu\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "FAIL: --version printed '$out'"; fail=1; }

"$sisu" --help >/dev/null; check "--help" 0 $?

for args in "" "--bogus" "inspect" "frobnicate x"; do
  err=$("$sisu" $args 2>&1 >/dev/null); rc=$?
  check "'sisu $args'" 2 $rc
  lines=$(printf '%s\n' "$err" | grep -c .)
  [ "$lines" = 1 ] || { echo "FAIL: 'sisu $args' printed $lines lines on stderr: $err"; fail=1; }
  [[ "$err" == *"sisu --help"* ]] || { echo "FAIL: 'sisu $args' gave no hint: $err"; fail=1; }
done

[ $fail = 0 ] && echo "cli_test: ok"
exit $fail
