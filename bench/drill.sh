#!/usr/bin/env bash
# Times each phase of a drill of the laptop example (live boot, layout, base
# system, packages and bootloader, hand-off, reboot, checks) and compares it
# with the recorded baseline, so regressions show. Run from the repository
# root after `make deps test-image`. TCG numbers depend on the host's load:
# the load average is printed with them.
#   CASE=name       drill case of qemu-tests/drill_test.go (default laptop-larger)
#   SAVE=1          record this run as the new baseline (bench/baselines/drill-CASE.json)
set -euo pipefail
case=${CASE:-laptop-larger}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
baseline=bench/baselines/drill-$case.json

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
STRATA_DRILLS=$case STRATA_DRILL_DIR=$out go test -count=1 -timeout 90m -run "TestDrill/^$case\$" ./qemu-tests/ >"$out/test.log" 2>&1 ||
	{ tail -40 "$out/test.log" >&2; echo "bench: the drill failed; log above" >&2; exit 1; }
report=$(ls "$out"/drill-"$case"-*/report.json 2>/dev/null | head -1)
[ -s "$report" ] || { echo "bench: no report under $out" >&2; exit 1; }
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# Phases: the live restore broken down by stage, then the drill's own phases.
phases() {
	python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
stage = {"live:boot": "live boot", "system:image": "base system", "system:configure": "base system",
         "system:packages": "packages and bootloader", "system:initramfs": "packages and bootloader",
         "system:bootloader": "packages and bootloader", "handoff": "hand-off", "close": "close"}
order, sums = [], {}
for s in r.get("steps", []):
    k = stage.get(s["name"], "layout")
    if k not in sums:
        order.append(k)
        sums[k] = 0.0
    sums[k] += s["seconds"]
waited = 0.0
for p in r["phases"]:
    w = p.get("waited_seconds", 0.0)  # waiting for a VM slot is not the drill's time
    waited += w
    if p["name"] in ("capture from the live image", "boot restored disks", "checks"):
        order.append(p["name"])
        sums[p["name"]] = p["seconds"] - w
order.append("whole drill")
sums["whole drill"] = r["seconds"] - waited
for k in order:
    print(f"{k}\t{sums[k]:.0f}")
PY
}
phases "$report" >"$out/now.tsv"
if [ -s "$baseline" ]; then phases "$baseline" >"$out/base.tsv"; else : >"$out/base.tsv"; fi
printf '%-26s %8s %10s %8s\n' phase "now (s)" "baseline" change
while IFS=$'\t' read -r name secs; do
	base=$(awk -F'\t' -v n="$name" '$1 == n {print $2}' "$out/base.tsv")
	if [ -n "$base" ] && [ "$base" -gt 0 ]; then
		change=$(awk -v a="$secs" -v b="$base" 'BEGIN { printf "%+.0f%%", (a - b) * 100 / b }')
	else
		base=-; change=-
	fi
	printf '%-26s %8s %10s %8s\n' "$name" "$secs" "$base" "$change"
done <"$out/now.tsv"
if [ "${SAVE:-}" = 1 ]; then
	cp "$report" "$baseline"
	echo "baseline saved: $baseline"
fi
