#!/usr/bin/env bash
# Side by side: stitching a 1-hour, 3-chunk recording with recstitch against
# copying the same bytes with cp, and against `ffmpeg -f concat -c copy`
# (when ffmpeg is present).
#
# Usage: benches/compare.sh [ROUNDS]      (default 5 rounds after a warm-up)
#
# The source chunk is a 20 s encode at the service's nominal rates (1 Mbit/s
# H.264 1920x1080 at 8 fps, AAC 16 kHz) made with ffmpeg; without ffmpeg the
# committed fixture chunk is used. It is repeated to 3 chunks of 20 minutes
# by `examples/synth.rs` (samples copied, tables rewritten).
#
# Commands run in turn within each round (cp, recstitch, ffmpeg, ...) so that
# they see the same cache and machine state. Reported: the median of each
# figure over the rounds, from /usr/bin/time: wall time, CPU time (user +
# system), peak resident memory, and the ratios to cp. recstitch syncs its
# outputs to disk (fsync) before renaming them; cp and ffmpeg do not, so a
# "cp + sync" row shows the price of that durability.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
WORK=${COMPARE_DIR:-target/compare}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "compare.sh needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }

cargo build --release --quiet --bin recstitch --example synth
BIN=target/release/recstitch
SYNTH=target/release/examples/synth

mkdir -p "$WORK"
ARCHIVE=$WORK/archive
if [ ! -f "$ARCHIVE/.complete" ]; then
  rm -rf "$ARCHIVE"; mkdir -p "$ARCHIVE"
  SRC=$WORK/source.mp4
  if command -v ffmpeg >/dev/null; then
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=8" \
      -f lavfi -i "aevalsrc=0.4*sin(2*PI*(300*t+40*t*t)):s=16000" -t 20 -map 0:v -map 1:a \
      -c:v libx264 -preset veryfast -bf 2 -g 16 -b:v 1M -maxrate 1M -bufsize 2M -pix_fmt yuv420p \
      -c:a aac -ar 16000 -ac 1 -b:a 48k "$SRC"
  else
    cp fixtures/cases/good/3c57992b-07bf-4387-a8bc-a13561e8650a/0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4 "$SRC"
  fi
  start=0
  for i in 0 1 2; do
    doc=0-compare-$i
    "$SYNTH" "$SRC" 1200 "$ARCHIVE/$doc.mp4" >/dev/null
    ms=$("$BIN" probe --json "$ARCHIVE/$doc.mp4" | sed -n 's/^  "durationMs": \([0-9.]*\).*/\1/p' | cut -d. -f1)
    stamp=$(date -u -d "@$((1717236000 + start / 1000))" +%Y-%m-%dT%H:%M:%S).$(printf %03d $((start % 1000)))Z
    cat > "$ARCHIVE/$doc.json" <<EOF
{"resourceId":"r","callId":"compare-call","chunkDocumentId":"$doc","chunkIndex":$i,"chunkStartTime":"$stamp","chunkDuration":$ms,
 "recordingInfo":{"contentType":"mixed","channelType":"audioVideo","format":"mp4",
 "audioConfiguration":{"sampleRate":"16000","bitRate":128000,"channels":1},
 "videoConfiguration":{"longerSideLength":1920,"shorterSideLength":1080,"framerate":8,"bitRate":1000000}}}
EOF
    start=$((start + ms))
  done
  touch "$ARCHIVE/.complete"
fi
CHUNKS=("$ARCHIVE"/0-compare-0.mp4 "$ARCHIVE"/0-compare-1.mp4 "$ARCHIVE"/0-compare-2.mp4)
printf "file '%s'\n" "${CHUNKS[@]/#/$PWD/}" > "$WORK/list.txt"
BYTES=$(cat "${CHUNKS[@]}" | wc -c)

OUT=$WORK/out
declare -A CMD
CMD[cp]="cp ${CHUNKS[*]} $OUT/"
CMD[cp+sync]="cp ${CHUNKS[*]} $OUT/ && sync -f $OUT"
CMD[recstitch]="$BIN run $ARCHIVE --out $OUT --force --progress none"
NAMES=(cp cp+sync recstitch)
if command -v ffmpeg >/dev/null; then
  CMD[ffmpeg-concat]="ffmpeg -nostdin -v error -y -f concat -safe 0 -i $WORK/list.txt -c copy $OUT/concat.mp4"
  NAMES+=(ffmpeg-concat)
fi

measure() { # name round -> appends "wall cpu rss" to $WORK/times-name
  rm -rf "$OUT"; mkdir -p "$OUT"; sync
  $TIME -f "%e %U %S %M" -o "$WORK/one" sh -c "${CMD[$1]}" >/dev/null
  read -r wall user sys rss < "$WORK/one"
  echo "$wall $(echo "$user + $sys" | bc -l) $rss" >> "$WORK/times-$1"
}

for n in "${NAMES[@]}"; do rm -f "$WORK/times-$n"; done
for n in "${NAMES[@]}"; do measure "$n"; rm -f "$WORK/times-$n"; done   # warm-up
for ((r = 0; r < ROUNDS; r++)); do
  for n in "${NAMES[@]}"; do measure "$n"; done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
col() { awk -v c="$2" '{print $c}' "$WORK/times-$1" | median; }
CP_WALL=$(col cp 1); CP_CPU=$(col cp 2)
echo "1-hour recording, 3 chunks, $((BYTES / 1048576)) MiB; median of $ROUNDS rounds on $(nproc) cores"
echo
echo "| command | wall s | wall / cp | CPU s | CPU / cp | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for n in "${NAMES[@]}"; do
  w=$(col "$n" 1); c=$(col "$n" 2); m=$(col "$n" 3)
  printf "| %s | %.3f | %.2f | %.3f | %.2f | %.1f |\n" "$n" "$w" "$(echo "$w / $CP_WALL" | bc -l)" \
    "$c" "$(echo "$c / ($CP_CPU + 0.001)" | bc -l)" "$(echo "$m / 1024" | bc -l)"
done
