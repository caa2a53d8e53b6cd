#!/usr/bin/env bash
# A 1-hour recording (three 20-minute chunks, as benches/compare.sh makes
# them) stitched local -> local and blob -> blob against Azurite on this
# machine: wall time, throughput and peak RSS (GNU time), median of ROUNDS.
#
# Usage: benches/objstore.sh [ROUNDS]
# Needs: GNU time, python3, node/npm (Azurite is installed into
# target/azurite when missing), about 2 GB free under target/.
# Azurite runs on the same cores as recstitch: the blob figures include the
# emulator's own CPU use, they are not those of a real storage account.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
WORK=${OBJSTORE_BENCH_DIR:-target/objstore-bench}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs GNU time at /usr/bin/time" >&2; exit 2; }

cargo build --release --quiet --features bench-support --bin recstitch --example synth
BIN=$PWD/target/release/recstitch
SYNTH=$PWD/target/release/examples/synth
mkdir -p "$WORK"

# shellcheck source=benches/archive.sh
. benches/archive.sh
ARCHIVE=$WORK/archive-1h
make_archive "$ARCHIVE" 3 1200
BYTES=$(cat "$ARCHIVE"/*.mp4 | wc -c)

AZURITE=$(command -v azurite-blob || echo target/azurite/node_modules/.bin/azurite-blob)
if [ ! -x "$AZURITE" ] && ! command -v azurite-blob >/dev/null; then
  mkdir -p target/azurite
  npm install --no-audit --no-fund --prefix target/azurite azurite >/dev/null
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -rf "$WORK/azurite"; mkdir -p "$WORK/azurite"
"$AZURITE" --blobHost 127.0.0.1 --blobPort "$PORT" --location "$WORK/azurite" \
  --skipApiVersionCheck --loose --silent >/dev/null 2>&1 &
AZ_PID=$!
trap 'kill $AZ_PID 2>/dev/null; wait $AZ_PID 2>/dev/null; rm -rf "$WORK/azurite" "$WORK/out"' EXIT
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT))" 2>/dev/null && break; sleep 0.1; done
export AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$PORT

# Containers and the upload of the archive, signed with the emulator's well-known key.
python3 - "$PORT" "$ARCHIVE" <<'EOF'
import base64, email.utils, hashlib, hmac, http.client, os, sys
port, archive = int(sys.argv[1]), sys.argv[2]
A = "devstoreaccount1"
K = base64.b64decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
def put(path, query, body=b"", extra=None):
    date, v = email.utils.formatdate(usegmt=True), "2021-08-06"
    headers = {"x-ms-date": date, "x-ms-version": v, **(extra or {})}
    canon = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers))
    resource = f"/{A}/{A}/{path}" + "".join(f"\n{k}:{val}" for k, val in sorted(query.items()))
    length = str(len(body)) if body else ""
    sts = f"PUT\n\n\n{length}\n\n\n\n\n\n\n\n\n{canon}{resource}"
    sig = base64.b64encode(hmac.new(K, sts.encode(), hashlib.sha256).digest()).decode()
    headers["Authorization"] = f"SharedKey {A}:{sig}"
    headers["Content-Length"] = str(len(body))
    qs = "&".join(f"{k}={val}" for k, val in query.items())
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("PUT", f"/{A}/{path}" + (f"?{qs}" if qs else ""), body=body, headers=headers)
    r = c.getresponse(); r.read()
    assert r.status == 201, (path, r.status, r.reason)
put("recordings", {"restype": "container"})
put("stitched", {"restype": "container"})
for name in sorted(os.listdir(archive)):
    if not name.startswith("."):
        with open(os.path.join(archive, name), "rb") as f:
            put(f"recordings/archive/{name}", {}, f.read(), {"x-ms-blob-type": "BlockBlob"})
EOF

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
measure() { # label command...
  local label=$1; shift
  : > "$WORK/times-$label"
  for _ in $(seq "$ROUNDS"); do
    $TIME -f "%e %M" -o "$WORK/one" "$@" >/dev/null
    cat "$WORK/one" >> "$WORK/times-$label"
  done
  local wall rss
  wall=$(cut -d' ' -f1 "$WORK/times-$label" | median)
  rss=$(cut -d' ' -f2 "$WORK/times-$label" | median)
  printf "| %s | %.2f s | %.0f MiB/s | %.1f MiB |\n" "$label" "$wall" "$(echo "$BYTES / 1048576 / $wall" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
}

echo "1-hour recording: $BYTES bytes of input, $ROUNDS rounds, medians"
echo "| run | wall | input MiB/s | peak RSS |"
echo "|---|---|---|---|"
mkdir -p "$WORK/out"
measure "local -> local" "$BIN" run "$ARCHIVE" --out "$WORK/out" --force --progress none
measure "blob -> blob (Azurite)" "$BIN" run az://recordings/archive --out az://stitched/out --force --progress none
measure "local -> blob (Azurite)" "$BIN" run "$ARCHIVE" --out az://stitched/out2 --force --progress none
measure "blob -> local" "$BIN" run az://recordings/archive --out "$WORK/out" --force --progress none
"$BIN" run --json az://recordings/archive --out az://stitched/out --progress none | grep -q '"status": "skipped"'
echo "(a rerun without --force skips: checked)"
