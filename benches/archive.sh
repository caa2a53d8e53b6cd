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

# make_ffmpeg_archive DIR CHUNKS COPIES: one recording of CHUNKS chunks,
# each COPIES 20-minute encodes joined by `ffmpeg -f concat -c copy`, so the
# chunks' sample tables have the shape of a file that ffmpeg muxed (H.264
# with B-frames, so `ctts`; AAC; ffmpeg's interleaving, about one sample per
# MP4 chunk) rather than the regular tables of examples/synth.rs. Memory
# depends on the sample count and the tables' shape, not on the picture, so
# the picture is small (320x180 at 16 fps) and the encode takes about a
# minute. The later chunks are copies of the first (ffmpeg would make the
# same bytes again).
make_ffmpeg_archive() {
  local dir=$1 chunks=$2 copies=$3
  [ -f "$dir/.complete" ] && return
  command -v ffmpeg >/dev/null || { echo "the ffmpeg-muxed case needs ffmpeg" >&2; return 2; }
  local src=$WORK/source-ffmpeg-20min.mp4
  if [ ! -f "$src" ]; then
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=320x180:rate=16" \
      -f lavfi -i "sine=frequency=440:sample_rate=16000" -t 1200 -map 0:v -map 1:a \
      -c:v libx264 -bf 2 -g 32 -pix_fmt yuv420p -c:a aac -ar 16000 -ac 1 -b:a 48k "$WORK/source-ffmpeg.tmp.mp4"
    mv "$WORK/source-ffmpeg.tmp.mp4" "$src"
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  local list=$dir/list.txt
  for ((i = 0; i < copies; i++)); do printf "file '%s'\n" "$(realpath "$src")"; done > "$list"
  local start=0 i doc ms stamp
  for ((i = 0; i < chunks; i++)); do
    doc=0-ffmpeg-$i
    if [ "$i" = 0 ]; then
      ffmpeg -nostdin -v error -y -f concat -safe 0 -i "$list" -c copy "$dir/$doc.mp4"
    else
      cp "$dir/0-ffmpeg-0.mp4" "$dir/$doc.mp4"
    fi
    ms=$("$BIN" probe --json "$dir/$doc.mp4" | sed -n 's/^  "durationMs": \([0-9.]*\).*/\1/p' | cut -d. -f1)
    stamp=$(date -u -d "@$((1717236000 + start / 1000))" +%Y-%m-%dT%H:%M:%S).$(printf %03d $((start % 1000)))Z
    cat > "$dir/$doc.json" <<EOJ
{"resourceId":"r","callId":"compare-ffmpeg-call","chunkDocumentId":"$doc","chunkIndex":$i,"chunkStartTime":"$stamp","chunkDuration":$ms,
 "recordingInfo":{"contentType":"mixed","channelType":"audioVideo","format":"mp4",
 "audioConfiguration":{"sampleRate":"16000","bitRate":48000,"channels":1},
 "videoConfiguration":{"longerSideLength":320,"shorterSideLength":180,"framerate":16,"bitRate":1000000}}}
EOJ
    start=$((start + ms))
  done
  rm -f "$list"
  touch "$dir/.complete"
}
