# Shared by compare.sh and objstore.sh (sourced, not run): the source chunk
# and the synthetic archives the benchmarks stitch. Expects BIN (recstitch),
# SYNTH (examples/synth) and WORK (a folder under target/) to be set.
#
# The source chunk is a 20 s encode at the service's nominal rates (1 Mbit/s
# H.264 1920x1080 at 8 fps, AAC 16 kHz) made with ffmpeg; without ffmpeg the
# committed fixture chunk is used. It is repeated to long chunks by
# `examples/synth.rs` (samples copied, tables rewritten), never committed.

SRC=$WORK/source.mp4
if [ ! -f "$SRC" ]; then
  if command -v ffmpeg >/dev/null; then
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=8" \
      -f lavfi -i "aevalsrc=0.4*sin(2*PI*(300*t+40*t*t)):s=16000" -t 20 -map 0:v -map 1:a \
      -c:v libx264 -preset veryfast -bf 2 -g 16 -b:v 1M -maxrate 1M -bufsize 2M -pix_fmt yuv420p \
      -c:a aac -ar 16000 -ac 1 -b:a 48k "$WORK/source.tmp.mp4"
    mv "$WORK/source.tmp.mp4" "$SRC"
  else
    cp fixtures/cases/good/3c57992b-07bf-4387-a8bc-a13561e8650a/0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4 "$SRC"
  fi
fi

# make_archive DIR CHUNKS SECONDS: one recording of CHUNKS chunks of SECONDS each.
make_archive() {
  local dir=$1 chunks=$2 seconds=$3
  [ -f "$dir/.complete" ] && return
  rm -rf "$dir"; mkdir -p "$dir"
  local start=0 i doc ms stamp
  for ((i = 0; i < chunks; i++)); do
    doc=0-compare-$i
    "$SYNTH" "$SRC" "$seconds" "$dir/$doc.mp4" >/dev/null
    ms=$("$BIN" probe --json "$dir/$doc.mp4" | sed -n 's/^  "durationMs": \([0-9.]*\).*/\1/p' | cut -d. -f1)
    stamp=$(date -u -d "@$((1717236000 + start / 1000))" +%Y-%m-%dT%H:%M:%S).$(printf %03d $((start % 1000)))Z
    cat > "$dir/$doc.json" <<EOF
{"resourceId":"r","callId":"compare-call","chunkDocumentId":"$doc","chunkIndex":$i,"chunkStartTime":"$stamp","chunkDuration":$ms,
 "recordingInfo":{"contentType":"mixed","channelType":"audioVideo","format":"mp4",
 "audioConfiguration":{"sampleRate":"16000","bitRate":128000,"channels":1},
 "videoConfiguration":{"longerSideLength":1920,"shorterSideLength":1080,"framerate":8,"bitRate":1000000}}}
EOF
    start=$((start + ms))
  done
  touch "$dir/.complete"
}

