#!/usr/bin/env bash
# Side by side: stitching a recording with recstitch against copying the
# same bytes with cp and against `ffmpeg -f concat -c copy`, each with and
# without a `sync` of its output (recstitch always syncs before it renames).
#
# Usage: benches/compare.sh [ROUNDS] [CASE...]
#   ROUNDS  rounds after a warm-up (default 5)
#   CASE    1h  a 1-hour recording, 3 chunks of 20 minutes (about 400 MiB)
#           20h a 20-hour recording, 6 chunks of 3 h 20 min (about 8.5 GB;
#               needs about 26 GB free under target/)
#           20h-ffmpeg  a 20-hour recording whose chunks ffmpeg muxed
#               (2.3 million samples, about 2.2 GB; needs ffmpeg and about
#               7 GB free under target/)
#           default: 1h and 20h
#
# The source chunk of 1h and 20h is a 20 s encode at the service's nominal
# rates (1 Mbit/s H.264 1920x1080 at 8 fps, AAC 16 kHz) made with ffmpeg;
# without ffmpeg the committed fixture chunk is used. It is repeated to long
# chunks by `examples/synth.rs` (samples copied, tables rewritten), whose
# sample tables are as regular as tables get. The chunks of 20h-ffmpeg are
# `ffmpeg -f concat -c copy` of ten 20-minute encodes (320x180 at 16 fps
# with B-frames, AAC 16 kHz), with ffmpeg's own interleaving and `ctts`:
# memory depends on the tables' shape, not on the picture. All of it goes
# into target/compare, never committed.
#
# Commands run in turn within each round (cp, recstitch, ffmpeg, ...) so that
# they see the same cache and machine state. Reported: the median of each
# figure over the rounds, from /usr/bin/time: wall time, CPU time (user +
# system), peak resident memory; then recstitch's ratios to ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
shift || true
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=(1h 20h)
WORK=${COMPARE_DIR:-target/compare}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "compare.sh needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
command -v bc >/dev/null || { echo "compare.sh needs bc (apt-get install bc)" >&2; exit 2; }

cargo build --release --quiet --features bench-support --bin recstitch --example synth
BIN=target/release/recstitch
SYNTH=target/release/examples/synth
mkdir -p "$WORK"

# shellcheck source=benches/archive.sh
. benches/archive.sh

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# run_case NAME LABEL MAKER ARGS...: MAKER DIR ARGS... makes the archive.
run_case() {
  local name=$1 label=$2 maker=$3
  shift 3
  local archive=$WORK/archive-$name out=$WORK/out
  "$maker" "$archive" "$@"
  local chunks=("$archive"/0-*.mp4)
  printf "file '%s'\n" "${chunks[@]/#/$PWD/}" > "$WORK/list.txt"
  local bytes
  bytes=$(cat "${chunks[@]}" | wc -c)
  declare -A CMD
  CMD[cp]="cp ${chunks[*]} $out/"
  CMD[cp+sync]="cp ${chunks[*]} $out/ && sync -f $out"
  CMD[recstitch]="$BIN run $archive --out $out --force --progress none"
  local names=(cp cp+sync recstitch)
  if command -v ffmpeg >/dev/null; then
    CMD[ffmpeg]="ffmpeg -nostdin -v error -y -f concat -safe 0 -i $WORK/list.txt -c copy $out/concat.mp4"
    CMD[ffmpeg+sync]="${CMD[ffmpeg]} && sync -f $out"
    names+=(ffmpeg ffmpeg+sync)
  fi
  measure() { # name -> appends "wall cpu rss" to $WORK/times-name
    rm -rf "$out"; mkdir -p "$out"; sync
    $TIME -f "%e %U %S %M" -o "$WORK/one" sh -c "${CMD[$1]}" >/dev/null
    read -r wall user sys rss < "$WORK/one"
    echo "$wall $(echo "$user + $sys" | bc -l) $rss" >> "$WORK/times-$1"
  }
  col() { awk -v c="$2" '{print $c}' "$WORK/times-$1" | median; }
  local n r
  for n in "${names[@]}"; do measure "$n"; rm -f "$WORK/times-$n"; done   # warm-up
  for ((r = 0; r < ROUNDS; r++)); do
    for n in "${names[@]}"; do measure "$n"; done
  done
  rm -rf "$out"
  echo "$label, ${#chunks[@]} chunks, $((bytes / 1048576)) MiB; median of $ROUNDS rounds on $(nproc) cores"
  echo
  echo "| command | wall s | CPU s | peak RSS MiB |"
  echo "|---|---|---|---|"
  for n in "${names[@]}"; do
    printf "| %s | %.2f | %.2f | %.1f |\n" "$n" "$(col "$n" 1)" "$(col "$n" 2)" "$(echo "$(col "$n" 3) / 1024" | bc -l)"
  done
  if command -v ffmpeg >/dev/null; then
    local w c m
    w=$(col recstitch 1); c=$(col recstitch 2); m=$(col recstitch 3)
    echo
    echo "| recstitch / | wall | CPU | peak RSS |"
    echo "|---|---|---|---|"
    for n in ffmpeg ffmpeg+sync; do
      printf "| %s | %.2f | %.2f | %.2f |\n" "$n" "$(echo "$w / $(col "$n" 1)" | bc -l)" \
        "$(echo "$c / $(col "$n" 2)" | bc -l)" "$(echo "$m / $(col "$n" 3)" | bc -l)"
    done
  fi
  echo
  # Each round's figures stay in $WORK/times-<case>-<command> ("wall cpu rss_kib").
  for n in "${names[@]}"; do mv "$WORK/times-$n" "$WORK/times-$name-$n"; done
}

for c in "${CASES[@]}"; do
  case $c in
    1h) run_case 1h "1-hour recording" make_archive 3 1200 ;;
    20h) run_case 20h "20-hour recording" make_archive 6 12000 ;;
    20h-ffmpeg) run_case 20h-ffmpeg "20-hour recording, chunks muxed by ffmpeg" make_ffmpeg_archive 6 10 ;;
    *) echo "compare.sh: unknown case $c (1h, 20h or 20h-ffmpeg)" >&2; exit 2 ;;
  esac
done
