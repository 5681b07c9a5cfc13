#!/usr/bin/env bash
# Hand-off throughput on loopback, against the plain tools on the same data
# in the same run: `curl | tar -x`, plain `rsync` from a daemon, and strata's
# hand-off (archive, manifest and rsync datasets), for one large file, many
# small files, and four datasets fetched serially and in parallel.
#
#   bench/handoff.sh                  # 512 MiB large file, 10,000 small files, 4 x 128 MiB
#   LARGE_MIB=64 SMALL_FILES=1000 SET_MIB=32 bench/handoff.sh   # a quick run
#   BENCH_DIR=/var/tmp/hb bench/handoff.sh                       # work there (default: a mktemp dir)
#   DEST=/var/tmp/hb/dest bench/handoff.sh                         # write to disk (default: tmpfs)
#   BEFORE=8f69118 bench/handoff.sh   # also strata as of that commit, in the same rounds
#   RATE=1gbit bench/handoff.sh       # shape loopback like a network link (tc tbf on lo; root)
#   ONLY='^small: .*rsync' RUNS=9 bench/handoff.sh   # only the cases whose label matches
#
# On loopback the servers share this machine's cores with the client, so
# strata's SHA-256 of every byte competes with the transfer itself; RATE
# shapes all loopback traffic (for the whole run) to a link's speed, where
# the client's cores are no longer what limits a transfer.
#
# The destinations are on tmpfs (/dev/shm) by default, so the numbers
# compare the tools rather than this VM's disk, whose small-file creates
# vary by 10x from run to run (ext4 with discard after the previous run's
# deletions). With DEST on a disk, expect noise; RUNS=3 takes the best.
#
# Every strata run ends with syncfs on the destination before it writes its
# done marker (a power cut must not leave a "done" dataset unwritten), so
# the plain tools are timed twice: as they are, and followed by `sync -f`.
# Needs: go, curl, tar, zstd, rsync, sha256sum (make deps).
set -euo pipefail
cd "$(dirname "$0")/.."

LARGE_MIB=${LARGE_MIB:-512}
SMALL_FILES=${SMALL_FILES:-10000}
SET_MIB=${SET_MIB:-128}
RUNS=${RUNS:-1}
work=${BENCH_DIR:-$(mktemp -d /var/tmp/strata-bench.XXXXXX)}
mkdir -p "$work"
src="$work/srv" bin="$work/strata"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${BENCH_DIR:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${RATE:-}" ]; then
  tc qdisc replace dev lo root tbf rate "$RATE" burst 512kb latency 50ms
  trap 'tc qdisc del dev lo root 2>/dev/null; cleanup' EXIT
fi
for t in go curl tar zstd rsync sha256sum; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing (make deps)" >&2; exit 1; }
done
go build -o "$bin" ./cmd/strata
bin_before=""
if [ -n "${BEFORE:-}" ]; then
  # The older strata from `git archive` (the shared checkout is not touched).
  rm -rf "$work/before-src" && mkdir -p "$work/before-src"
  git archive "$BEFORE" | tar -x -C "$work/before-src"
  bin_before="$work/strata-before"
  (cd "$work/before-src" && go build -o "$bin_before" ./cmd/strata)
fi

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# ---- data ----------------------------------------------------------------
if [ ! -e "$src/.ready" ]; then
  echo "bench: making data in $src (large ${LARGE_MIB} MiB, ${SMALL_FILES} small files, 4 x ${SET_MIB} MiB)"
  rm -rf "$src" && mkdir -p "$src/large" "$src/small" "$src/arch"
  head -c "$((LARGE_MIB << 20))" /dev/urandom > "$src/large/film.mkv"
  # Small files: 4 KiB of random data each, 100 per directory.
  for ((d = 0; d * 100 < SMALL_FILES; d++)); do
    n=$(( SMALL_FILES - d * 100 < 100 ? SMALL_FILES - d * 100 : 100 ))
    mkdir -p "$src/small/d$d"
    head -c $((n * 4096)) /dev/urandom | (cd "$src/small/d$d" && split -b 4096 -a 3 -d - f)
  done
  for i in 1 2 3 4; do
    mkdir -p "$src/set$i"
    head -c "$((SET_MIB << 20))" /dev/urandom > "$src/set$i/data.bin"
  done
  for d in large small set1 set2 set3 set4; do
    (cd "$src/$d" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
    tar -C "$src/$d" --exclude=./SHA256SUMS -cf "$src/arch/$d.tar" .
  done
  zstd -q -3 -T0 "$src/arch/small.tar" -o "$src/arch/small.tar.zst"
  touch "$src/.ready"
fi
sum() { sha256sum "$1" | cut -d' ' -f1; }

# ---- servers -------------------------------------------------------------
hport=$(free_port)
"$bin" serve --listen "127.0.0.1:$hport" "$src" >/dev/null 2>&1 &
pids+=($!)
rport=$(free_port)
cat > "$work/rsyncd.conf" <<EOF
pid file = $work/rsyncd.pid
use chroot = no
[srv]
path = $src
read only = yes
EOF
rsync --daemon --no-detach --config="$work/rsyncd.conf" --address=127.0.0.1 --port="$rport" &
pids+=($!)
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$hport/large/SHA256SUMS" >/dev/null 2>&1 && rsync "rsync://127.0.0.1:$rport/" >/dev/null 2>&1 && break
  sleep 0.1
done
H="http://127.0.0.1:$hport"
R="rsync://127.0.0.1:$rport/srv"

# ---- profiles ------------------------------------------------------------
header='version: 1
host: {name: bench}
disks:
  main:
    table: gpt
    partitions:
      - {name: root, size: rest}
filesystems:
  - {device: main/root, type: ext4, mount: {path: /}}
datasets:'
profile() { # NAME then dataset lines
  local f="$work/$1.yaml"; shift
  { echo "$header"; printf '  %s\n' "$@"; } > "$f"
  echo "$f"
}

if [ -z "${DEST:-}" ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
  DEST=/dev/shm/strata-bench-dest.$$
fi
dest=${DEST:-$work/dest}
trap 'cleanup; rm -rf "$dest"; [ -z "${RATE:-}" ] || tc qdisc del dev lo root 2>/dev/null' EXIT
now() { date +%s.%N; }
handoff() { "$bin" handoff --quiet --root "$dest" --server "$H/" "$@"; }
handoff_before() { "$bin_before" handoff --quiet --root "$dest" --server "$H/" "$@"; }
curltar() { mkdir -p "$dest/$2" && curl -fsS "$H/arch/$1" | tar -x -C "$dest/$2"; }
curltarz() { mkdir -p "$dest/$2" && curl -fsS "$H/arch/$1" | zstd -d -q | tar -x -C "$dest/$2"; }
four_curl() { for i in 1 2 3 4; do curltar "set$i.tar" "d/set$i"; done; }
four_curl_par() { for i in 1 2 3 4; do curltar "set$i.tar" "d/set$i" & done; wait; }
four_rsync() { for i in 1 2 3 4; do mkdir -p "$dest/d/set$i" && rsync -rlpt "$R/set$i/" "$dest/d/set$i/"; done; }
four_rsync_par() { for i in 1 2 3 4; do (mkdir -p "$dest/d/set$i" && rsync -rlpt "$R/set$i/" "$dest/d/set$i/") & done; wait; }
export dest H R bin bin_before
export -f handoff handoff_before curltar curltarz four_curl four_curl_par four_rsync four_rsync_par

# The plain per-file equivalent of a manifest dataset: curl, 4 at a time.
awk -v h="$H" -v d="$dest" '{ n = $2; sub(/^\.\//, "", n); printf "url = \"%s/small/%s\"\noutput = \"%s/d/small/%s\"\n", h, n, d, n }' \
  "$src/small/SHA256SUMS" > "$work/small-urls.cfg"

P_la=$(profile large-archive "large: {source: arch/large.tar, sha256: $(sum "$src/arch/large.tar"), path: /d/large}")
P_lm=$(profile large-manifest "large: {source: large/, path: /d/large}")
P_lr=$(profile large-rsync "large: {source: $R/large, path: /d/large}")
P_sa=$(profile small-archive "small: {source: arch/small.tar.zst, sha256: $(sum "$src/arch/small.tar.zst"), path: /d/small}")
P_sm=$(profile small-manifest "small: {source: small/, path: /d/small}")
P_sr=$(profile small-rsync "small: {source: $R/small, path: /d/small}")
sets_a=() sets_m=() sets_r=()
for i in 1 2 3 4; do
  sets_a+=("set$i: {source: arch/set$i.tar, sha256: $(sum "$src/arch/set$i.tar"), path: /d/set$i}")
  sets_m+=("set$i: {source: set$i/, path: /d/set$i}")
  sets_r+=("set$i: {source: $R/set$i, path: /d/set$i}")
done
P_4a=$(profile sets-archive "${sets_a[@]}")
P_4m=$(profile sets-manifest "${sets_m[@]}")
P_4r=$(profile sets-rsync "${sets_r[@]}")

# Cases: label, then the command (bash). Rounds run every case once, so
# noise from other load falls on all of them alike; the best round counts.
labels=() cmds=()
declare -A base_of also_of # also_of: a second baseline, shown under the first
case_() { labels+=("$1"); cmds+=("$2"); }
# scase LABEL BASELINE ARGS: a strata case, compared with the BASELINE case
# in the table, and the same with the BEFORE strata when there is one.
scase() {
  case_ "$1" "handoff $3"; base_of[$1]=$2
  if [ -n "$bin_before" ]; then case_ "$1 @$BEFORE" "handoff_before $3"; base_of[$1 @$BEFORE]=$2; fi
}
ondisk=$([ "$(stat -f -c %T "$(dirname "$dest")")" = tmpfs ] && echo no || echo yes)
case_ "large: curl | tar -x"          "curltar large.tar d/large"
[ "$ondisk" = no ] || case_ "large: curl | tar -x; sync" "curltar large.tar d/large && sync -f \"\$dest\""
case_ "large: rsync"                  "rsync -rlpt \"\$R/large/\" \"\$dest/\""
[ "$ondisk" = no ] || case_ "large: rsync; sync" "rsync -rlpt \"\$R/large/\" \"\$dest/\" && sync -f \"\$dest\""
# The same guarantee as strata's (every byte against the manifest) with the
# plain tools: rsync, then sha256sum -c.
case_ "large: rsync; sha256sum -c"    "rsync -rlpt \"\$R/large/\" \"\$dest/\" && (cd \"\$dest\" && sha256sum --quiet -c SHA256SUMS)"
scase "large: strata archive"  "large: curl | tar -x" "$P_la"
scase "large: strata manifest" "large: curl | tar -x" "$P_lm"
scase "large: strata rsync"    "large: rsync"         "$P_lr"
also_of["large: strata rsync"]="large: rsync; sha256sum -c"
case_ "small: curl | zstd -d | tar -x" "curltarz small.tar.zst d/small"
[ "$ondisk" = no ] || case_ "small: curl | zstd | tar; sync" "curltarz small.tar.zst d/small && sync -f \"\$dest\""
case_ "small: curl each file (-Z 4)"  "curl -fsS --no-progress-meter --create-dirs --parallel --parallel-max 4 -K $work/small-urls.cfg"
case_ "small: rsync"                  "rsync -rlpt \"\$R/small/\" \"\$dest/\""
[ "$ondisk" = no ] || case_ "small: rsync; sync" "rsync -rlpt \"\$R/small/\" \"\$dest/\" && sync -f \"\$dest\""
case_ "small: rsync; sha256sum -c"    "rsync -rlpt \"\$R/small/\" \"\$dest/\" && (cd \"\$dest\" && sha256sum --quiet -c SHA256SUMS)"
scase "small: strata archive"  "small: curl | zstd -d | tar -x" "$P_sa"
scase "small: strata manifest" "small: curl each file (-Z 4)"   "$P_sm"
scase "small: strata rsync"    "small: rsync"                   "$P_sr"
also_of["small: strata rsync"]="small: rsync; sha256sum -c"
case_ "4 sets: curl | tar serial"     "four_curl"
case_ "4 sets: curl | tar parallel"   "four_curl_par"
case_ "4 sets: rsync serial"          "four_rsync"
case_ "4 sets: rsync parallel"        "four_rsync_par"
scase "4 sets: strata archive -j1"  "4 sets: curl | tar serial"   "--jobs 1 $P_4a"
scase "4 sets: strata archive -j4"  "4 sets: curl | tar parallel" "--jobs 4 $P_4a"
scase "4 sets: strata manifest -j1" "4 sets: curl | tar serial"   "--jobs 1 $P_4m"
scase "4 sets: strata manifest -j4" "4 sets: curl | tar parallel" "--jobs 4 $P_4m"
scase "4 sets: strata rsync -j1"    "4 sets: rsync serial"        "--jobs 1 $P_4r"
scase "4 sets: strata rsync -j4"    "4 sets: rsync parallel"      "--jobs 4 $P_4r"

# ONLY: run just the cases whose label matches this (extended) regular
# expression, e.g. ONLY='^small: (rsync|strata rsync)'.
if [ -n "${ONLY:-}" ]; then
  kl=() kc=()
  for i in "${!labels[@]}"; do
    [[ ${labels[$i]} =~ $ONLY ]] || continue
    kl+=("${labels[$i]}") kc+=("${cmds[$i]}")
  done
  labels=("${kl[@]}") cmds=("${kc[@]}")
  [ ${#labels[@]} -gt 0 ] || { echo "bench: no case matches ONLY=$ONLY" >&2; exit 2; }
fi

# children's user+sys seconds so far, from the shell's `times`
# (`times` must run in this shell, not in a $(...) subshell: hence the file)
cpu() { times > "$work/times"; }
declare -A all cpubest
for ((round = 1; round <= RUNS; round++)); do
  echo "bench: round $round of $RUNS" >&2
  for i in "${!labels[@]}"; do
    rm -rf "$dest" && mkdir -p "$dest" && sync
    cpu; c0=$(tail -1 "$work/times" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
    a=$(now)
    bash -c "${cmds[$i]}" >/dev/null || { echo "bench: ${labels[$i]} failed" >&2; exit 1; }
    b=$(now)
    cpu; c1=$(tail -1 "$work/times" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
    t=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b - a }')
    c=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
    l=${labels[$i]}
    all[$l]="${all[$l]:-} $t"
    if [ -z "${cpubest[$l]:-}" ] || awk -v t="$c" -v b="${cpubest[$l]}" 'BEGIN { exit !(t < b) }'; then cpubest[$l]=$c; fi
    printf '  %-34s %6ss  cpu %6ss\n' "$l" "$t" "$c" >&2
  done
done
# best and median of the rounds
stat_() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { printf "%s %s", v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# ---- table ---------------------------------------------------------------
ssz=$(du -sm --apparent-size "$src/small" | cut -f1)
echo
echo "hand-off on loopback${RATE:+ shaped to $RATE}: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), destination on $(stat -f -c %T "$(dirname "$dest")"), best of $RUNS"
echo "large: one ${LARGE_MIB} MiB file; small: ${SMALL_FILES} files, ${ssz} MiB; 4 sets: 4 datasets of ${SET_MIB} MiB"
echo
printf '| %-42s | %8s | %8s | %11s | %9s | %-38s |\n' "run" "best" "median" "throughput" "CPU" "time (CPU) vs the plain tool"
printf '|%s|%s|%s|%s|%s|%s|\n' "--------------------------------------------" "----------" "----------" "-------------" "-----------" "----------------------------------------"
for l in "${labels[@]}"; do
  case $l in
    large*) n=$LARGE_MIB ;;
    small*) n=$ssz ;;
    *) n=$((4 * SET_MIB)) ;;
  esac
  read -r b m <<<"$(stat_ "${all[$l]}")"
  vs=""
  if [ -n "${base_of[$l]:-}" ] && [ -n "${all[${base_of[$l]}]:-}" ]; then
    bl=${base_of[$l]}
    read -r bb _ <<<"$(stat_ "${all[$bl]}")"
    vs=$(awk -v a="$b" -v b="$bb" -v c="${cpubest[$l]}" -v d="${cpubest[$bl]}" -v n="${bl#*: }" \
      'BEGIN { printf "%.2fx (%.2fx) %s", (b > 0 ? a / b : 0), (d > 0 ? c / d : 0), n }')
  fi
  printf '| %-42s | %6s s | %6s s | %5s MiB/s | %7s s | %-38s |\n' "$l" "$b" "$m" "$(awk -v n="$n" -v t="$b" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }')" "${cpubest[$l]}" "$vs"
  if [ -n "${also_of[$l]:-}" ] && [ -n "${all[${also_of[$l]}]:-}" ]; then
    al=${also_of[$l]}
    read -r ab _ <<<"$(stat_ "${all[$al]}")"
    vs=$(awk -v a="$b" -v b="$ab" -v c="${cpubest[$l]}" -v d="${cpubest[$al]}" -v n="${al#*: }" \
      'BEGIN { printf "%.2fx (%.2fx) %s", (b > 0 ? a / b : 0), (d > 0 ? c / d : 0), n }')
    printf '| %-42s | %8s | %8s | %11s | %9s | %-38s |\n' "" "" "" "" "" "$vs"
  fi
done
echo
echo "throughput is of the best time; CPU is the client side's user+sys (the servers' is not counted), lowest of the rounds."
echo "vs the plain tool: strata's best time and lowest CPU over the plain tool's, same rounds (below 1.00x: strata is faster)."
echo "strata verifies every byte (sha256) and runs syncfs on the destination before it marks a dataset done."
