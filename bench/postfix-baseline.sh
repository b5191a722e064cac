#!/usr/bin/env bash
# The same load against a local Postfix delivering to Maildir, for
# comparison on the same machine (see docs/benchmarks.md for the set-up:
# Debian's postfix with smtpd on 127.0.0.1:2727, home_mailbox = Maildir/,
# a Unix user `bench`).
#   bench/postfix-baseline.sh [messages=5000] [sessions=20] [size=4096]
set -euo pipefail
N=${1:-5000}; S=${2:-20}; L=${3:-4096}
MAILDIR=~bench/Maildir/new
mkdir -p "$MAILDIR"; chown -R bench: ~bench/Maildir
before=$(ls "$MAILDIR" | wc -l)
start=$(date +%s.%N)
smtp-source -s "$S" -l "$L" -m "$N" -f sender@localhost -t bench@localhost 127.0.0.1:2727
accepted=$(date +%s.%N)
while [ $(( $(ls "$MAILDIR" | wc -l) - before )) -lt "$N" ]; do sleep 0.05; done
delivered=$(date +%s.%N)
awk -v s="$start" -v a="$accepted" -v d="$delivered" -v n="$N" 'BEGIN {
  printf "messages: %d\naccept:   %.2f s  %.0f msgs/s\ndelivery: %.2f s  %.0f msgs/s end to end\n", n, a-s, n/(a-s), d-s, n/(d-s) }'
