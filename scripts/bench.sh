#!/usr/bin/env bash
# bench.sh measures qconv's scale and speed on a synthetic checkpoint with the real Qwen3.5-0.8B
# dimensions (random bf16 weights, official sharded multimodal layout, ~1.5 GB) and prints one
# table of figures, each next to a baseline measured in the same run: the machine is shared and
# noisy, so the ratios are the result, not the absolute numbers.
#
#   scripts/bench.sh [-k] [-w WORKDIR] [SYNTH_DIR]
#
#   SYNTH_DIR  reuse the checkpoint there if it holds one, else write it there (default:
#              WORKDIR/synth); a checkpoint this script did not write is never deleted
#   -w DIR     scratch directory for the binary, bundles and logs (default: a fresh /tmp/qconv-bench.*)
#   -k         keep what the run created (checkpoint, bundles, logs) instead of deleting it
#   -F         the family-scale run instead: the 9B-size synthetic checkpoint exported with
#              --no-gate --target gpu-pipelined (wall time and peak anonymous RSS against a
#              streaming read of the same shards and the largest tensor's output), and a gated
#              2B-size export against its --no-gate twin (the gate's cost). SYNTH_DIR then holds
#              (or receives) 9b/ and 2b/. Needs ~30 GB of disk (17 GB checkpoint + 9 GB bundle)
#              and ~30 minutes on 2 cores; run it through flock /tmp/qconv-heavy.lock on a
#              shared machine.
#
# Needs go, /usr/bin/time (GNU, for -v), jq, pgrep, column. About 15-20 minutes on 2 cores, ~7 GB of
# disk at its peak (checkpoint, bundles and the bytecode benchmark's file), ~8 GB of RAM.
#
# Gated runs use a view of the checkpoint without its tokenizer files (symlinks to config and
# shards), so the gate uses the built-in id prompts (lengths 1, 7, 33, 70 and the 512-id repeated
# block): the synthetic tokenizer.json is a toy that the BPE loader rejects, and id prompts keep the
# figure comparable across runs. Random weights give the reference no confident position, so the
# gate would refuse the prompts (exit 2); gated runs pass --gate-min-confident 0 to measure its cost
# anyway, and the verdict (usually exit 3, nothing published) is printed, not judged.
set -euo pipefail

keep=0
work=""
family=0
while getopts "kw:Fh" opt; do
	case $opt in
	k) keep=1 ;;
	F) family=1 ;;
	w) work=$OPTARG ;;
	*)
		sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || { echo "bench.sh: at most one SYNTH_DIR argument" >&2; exit 2; }

for tool in go /usr/bin/time jq pgrep column; do
	command -v "$tool" >/dev/null || { echo "bench.sh: $tool not found" >&2; exit 2; }
done

root=$(cd "$(dirname "$0")/.." && pwd)
made_work=0
if [ -z "$work" ]; then
	work=$(mktemp -d /tmp/qconv-bench.XXXXXX)
	made_work=1
else
	mkdir -p "$work"
	work=$(cd "$work" && pwd)
fi
synth=${1:-$work/synth}
made_synth=0
made_family=""
logs=$work/logs
mkdir -p "$logs"
results=$work/results.tsv
: >"$results"
running=""

cleanup() {
	local rc=$?
	if [ -n "$running" ]; then
		# /usr/bin/time does not pass signals on: stop the measured command first.
		kill $(pgrep -P "$running") "$running" 2>/dev/null || true
		wait "$running" 2>/dev/null || true
	fi
	if [ "$keep" = 1 ]; then
		echo "kept: $work$([ "$made_synth" = 1 ] && [ "${synth#"$work"/}" = "$synth" ] && echo " and $synth")" >&2
		return $rc
	fi
	if [ "$made_synth" = 1 ]; then
		rm -rf "$synth"
	fi
	for d in $made_family; do rm -rf "$d"; done
	if [ "$made_work" = 1 ]; then
		rm -rf "$work"
	else
		# A given work directory is the caller's: remove only what this run put there.
		rm -rf "$logs" "$results" "$work/qconv" "$work/view" "$work/out" "$work"/*.test "$work/dd.bin"
	fi
	return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s  [%s]\n' "$*" "$(uptime | sed 's/.*load average/load average/')" >&2; }

# row FIGURE VALUE BASELINE RATIO MEANING: one line of the summary table.
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; }

# div A B [DIGITS]: A/B, or "-" when either is missing or B is zero.
div() {
	awk -v a="${1:-}" -v b="${2:-}" -v d="${3:-2}" 'BEGIN {
		if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) { print "-"; exit }
		printf "%.*f\n", d, a / b }'
}

# measure NAME DIR CMD...: runs CMD in DIR under /usr/bin/time -v (stdout, stderr and the report
# go to $logs/NAME.{out,err,time}) while sampling the process's RssAnon and RssFile every 0.1 s.
# Sets M_RC, M_WALL (s), M_RSS (peak RSS, MiB), M_ANON and M_FILE (sampled peaks, MiB).
measure() {
	local name=$1 dir=$2
	shift 2
	(cd "$dir" && exec /usr/bin/time -v -o "$logs/$name.time" "$@" >"$logs/$name.out" 2>"$logs/$name.err") &
	running=$!
	local anon=0 file=0 child="" a f
	while kill -0 "$running" 2>/dev/null; do
		[ -n "$child" ] || child=$(pgrep -P "$running" | head -n1 || true)
		if [ -n "$child" ] && read -r a f < <(awk '/^RssAnon:/ {a = $2} /^RssFile:/ {f = $2} END {if (a != "") print a, f}' "/proc/$child/status" 2>/dev/null); then
			[ "$a" -gt "$anon" ] && anon=$a
			[ "$f" -gt "$file" ] && file=$f
		fi
		sleep 0.1
	done
	set +e
	wait "$running"
	M_RC=$?
	set -e
	running=""
	M_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$logs/$name.time")
	M_RSS=$(awk '/Maximum resident set size/ {printf "%.0f", $NF / 1024}' "$logs/$name.time")
	M_ANON=$((anon / 1024))
	M_FILE=$((file / 1024))
	printf '   %-22s exit %s  wall %6ss  peak RSS %6s MiB  (sampled anon %s MiB, file %s MiB)\n' "$name" "$M_RC" "$M_WALL" "$M_RSS" "$M_ANON" "$M_FILE" >&2
}

# must NAME: fail unless the last measure exited 0.
must() {
	[ "$M_RC" = 0 ] || { echo "bench.sh: $1 failed (exit $M_RC):" >&2; tail -n 20 "$logs/$1.err" "$logs/$1.out" >&2; exit 1; }
}

# metric FILE BENCHMARK UNIT: the value reported with UNIT on BENCHMARK's result line.
metric() {
	awk -v n="$2" -v u="$3" '$1 == n { for (i = 3; i <= NF; i++) if ($i == u) { print $(i - 1); exit } }' "$1"
}

# memline FILE BENCHMARK: the "memory:" line a benchmark logged, condensed.
memline() {
	awk -v n="--- BENCH: $2" '$0 == n {f = 1; next} f && /memory:/ {sub(/.*memory: /, ""); print; exit}' "$1" |
		sed 's/VmHWM: /peak /; s/RssAnon: /anon /; s/RssFile: /file /'
}

gib() { awk -v b="$1" 'BEGIN {printf "%.3f GB", b / 1e9}'; }

start_time=$(date +%s)
cd "$root"
echo "qconv bench: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $(go version | cut -d' ' -f3), $(nproc) cores, work $work" >&2
echo "load at start: $(uptime)" >&2

# --- family scale (-F) ----------------------------------------------------------------------------
# synth_size SIZE DIR: write the SIZE synthetic checkpoint into DIR unless it holds one.
synth_size() {
	if [ -f "$2/config.json" ]; then
		echo "   reusing $2" >&2
		return
	fi
	made_family="$made_family $2"
	measure "synth-$1" "$root" "$work/synth-gen" --size "$1" -o "$2"
	must "synth-$1"
}
if [ "$family" = 1 ]; then
	go build -o "$work/synth-gen" ./testdata/synth
	go build -o "$work/qconv" ./cmd/qconv
	qconv=$work/qconv
	mkdir -p "$synth" "$work/out"
	say "9B-size synthetic checkpoint"
	synth_size 9b "$synth/9b"
	ck9=$(cat "$synth/9b"/*.safetensors | wc -c)
	say "baseline: a streaming read of the 9B shards"
	# dd, not cat: cat may hand /dev/null the file without reading it (copy_file_range).
	measure read-9b "$root" bash -c "for f in '$synth/9b'/*.safetensors; do dd if=\"\$f\" of=/dev/null bs=4M status=none; done"
	must read-9b
	read_wall=$M_WALL read_anon=$M_ANON
	say "export 9B --no-gate --target gpu-pipelined"
	measure export-9b "$root" "$qconv" export "$synth/9b" --target gpu-pipelined --no-gate -o "$work/out/9b" --json
	must export-9b
	j=$logs/export-9b.out
	b9=$(jq -r '.bundles[0].path' "$j")
	big=$(jq '[.qconv.tensors[].bytes] | max' "$b9/metadata.json")
	bigname=$(jq -r '.qconv.tensors | max_by(.bytes) | .name' "$b9/metadata.json")
	row "9B export --no-gate wall" "${M_WALL} s" "${read_wall} s (read the shards)" "$(div "$M_WALL" "$read_wall")" "whole export over a streaming read of its $(gib "$ck9") input; phases: $(jq -c '.bundles[0].phase_seconds' "$j")"
	row "9B export peak anon RSS" "$M_ANON MiB" "$((big / 1048576)) MiB (largest tensor output: $bigname)" "$(div "$M_ANON" "$((big / 1048576))")" "goal <= 1 + a small constant; file-backed pages (mapped shards) $M_FILE MiB; streaming read anon $read_anon MiB"
	row "9B bundle" "$(gib "$(jq '.bundles[0].bytes' "$j")")" "$(gib "$ck9") checkpoint" "$(div "$(jq '.bundles[0].bytes' "$j")" "$ck9")" "main.mlirb of int8 block-32 + the untied fp16 head"
	rm -rf "$work/out/9b"
	say "2B-size synthetic checkpoint: gated export vs --no-gate"
	synth_size 2b "$synth/2b"
	view=$work/view2b
	mkdir -p "$view"
	for f in "$synth/2b"/config.json "$synth/2b"/generation_config.json "$synth/2b"/*.safetensors "$synth/2b"/model.safetensors.index.json; do
		if [ -e "$f" ]; then ln -sf "$f" "$view/"; fi
	done
	measure export-2b-nogate "$root" "$qconv" export "$view" --target gpu-pipelined --no-gate -o "$work/out/2b-nogate" --json
	must export-2b-nogate
	ng_wall=$M_WALL
	measure export-2b-gated "$root" "$qconv" export "$view" --target gpu-pipelined -o "$work/out/2b-gated" --json
	[ "$M_RC" = 0 ] || [ "$M_RC" = 3 ] || must export-2b-gated
	row "2B export gated wall" "${M_WALL} s (exit $M_RC: random weights)" "${ng_wall} s (--no-gate)" "$(div "$M_WALL" "$ng_wall")" "the gate costs $(awk -v a="$M_WALL" -v b="$ng_wall" 'BEGIN {print a - b}') s; peak anon $M_ANON MiB; phases $(jq -c '.bundles[0].phase_seconds' "$logs/export-2b-gated.out")"
	rm -rf "$work/out"
	say "done in $(($(date +%s) - start_time)) s"
	echo "load at end: $(uptime)"
	{
		printf 'figure\tvalue\tbaseline\tratio\tmeaning\n'
		cat "$results"
	} | column -t -s $'\t'
	exit 0
fi

# --- the synthetic checkpoint and the binary -----------------------------------------------------
say "synthetic checkpoint"
if [ -f "$synth/config.json" ] && [ -f "$synth/model.safetensors.index.json" ]; then
	echo "   reusing $synth" >&2
else
	[ ! -e "$synth" ] || [ -z "$(ls -A "$synth")" ] || { echo "bench.sh: $synth exists and holds no checkpoint" >&2; exit 2; }
	made_synth=1
	go build -o "$work/synth-gen" ./testdata/synth
	measure synth "$root" "$work/synth-gen" -o "$synth"
	must synth
	rm -f "$work/synth-gen"
fi
export QCONV_SYNTH=$synth # for the Go benchmarks
ck_bytes=$(cat "$synth"/*.safetensors | wc -c)
view=$work/view
mkdir -p "$view"
for f in "$synth"/config.json "$synth"/generation_config.json "$synth"/*.safetensors "$synth"/model.safetensors.index.json; do
	if [ -e "$f" ]; then ln -sf "$f" "$view/"; fi
done

say "build"
go build -o "$work/qconv" ./cmd/qconv
for pkg in oracle quant export; do
	go test -c -o "$work/$pkg.test" "./$pkg"
done
go test -c -o "$work/mlir.test" ./graph/mlir # the bytecode writer and reader (BenchmarkBigModel)
go test -c -o "$work/kernels.test" ./internal/kernels
qconv=$work/qconv

# --- info ----------------------------------------------------------------------------------------
say "qconv info (5 runs each, alternating with the baseline: qconv targets, the same binary reading no checkpoint)"
info_walls=() base_walls=() info_rss=0 base_rss=0
for i in 1 2 3 4 5; do
	for which in info targets; do
		t0=$(date +%s%N)
		if [ $which = info ]; then
			/usr/bin/time -f '%M' -o "$logs/info.rss" "$qconv" info "$synth" >/dev/null 2>"$logs/info.err"
		else
			/usr/bin/time -f '%M' -o "$logs/info.rss" "$qconv" targets >/dev/null 2>&1
		fi
		t1=$(date +%s%N)
		ms=$(((t1 - t0) / 1000000))
		kb=$(tail -n1 "$logs/info.rss")
		if [ $which = info ]; then
			info_walls+=("$ms")
			[ "$kb" -gt "$info_rss" ] && info_rss=$kb
		else
			base_walls+=("$ms")
			[ "$kb" -gt "$base_rss" ] && base_rss=$kb
		fi
	done
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
info_ms=$(median "${info_walls[@]}")
base_ms=$(median "${base_walls[@]}")
echo "   info wall ms: ${info_walls[*]}; targets: ${base_walls[*]}; peak RSS info $((info_rss / 1024)) MiB, targets $((base_rss / 1024)) MiB" >&2
row "info wall (median of 5)" "${info_ms} ms" "${base_ms} ms (qconv targets)" "$(div "$info_ms" "$base_ms")" "opening + validating the checkpoint costs this much over process start"
row "info peak RSS" "$((info_rss / 1024)) MiB" "$(gib "$ck_bytes") checkpoint" "$(div "$((info_rss * 1024))" "$ck_bytes" 4)" "share of the mmapped checkpoint touched (RSS counts mapped pages read): tensor data is not read"

# --- oracle --------------------------------------------------------------------------------------
say "oracle: decode vs a streaming read of the same weight bytes, prefill (64 tokens)"
measure oracle-decode oracle "$work/oracle.test" -test.run '^$' -test.bench 'DecodeVsStream$' -test.cpu 1,2 -test.benchtime 60x
o=$logs/oracle-decode.out
grep -q '^BenchmarkDecodeVsStream' "$o" || { echo "bench.sh: oracle benchmark failed" >&2; tail "$o" "$logs/oracle-decode.err" >&2; exit 1; }
decode_rss=$M_RSS
for c in 1 2; do
	n=BenchmarkDecodeVsStream
	[ $c = 2 ] && n=$n-2
	row "oracle decode tok/s, $c core(s)" "$(metric "$o" $n decode-tok/s)" "$(metric "$o" $n bound-tok/s) (stream same bytes)" "$(metric "$o" $n frac-of-bound) (median $(metric "$o" $n median-frac))" "fraction of the memory-bandwidth bound reached"
done
row "oracle decode: 2 cores / 1 core" "$(metric "$o" BenchmarkDecodeVsStream-2 decode-tok/s)" "$(metric "$o" BenchmarkDecodeVsStream decode-tok/s)" "$(div "$(metric "$o" BenchmarkDecodeVsStream-2 decode-tok/s)" "$(metric "$o" BenchmarkDecodeVsStream decode-tok/s)")" "core scaling (the stream bound's own: $(div "$(metric "$o" BenchmarkDecodeVsStream-2 bound-tok/s)" "$(metric "$o" BenchmarkDecodeVsStream bound-tok/s)"))"
measure oracle-prefill oracle "$work/oracle.test" -test.run '^$' -test.bench 'Prefill$' -test.cpu 1,2 -test.benchtime 3x
p=$logs/oracle-prefill.out
grep -q '^BenchmarkPrefill' "$p" || { echo "bench.sh: oracle prefill benchmark failed" >&2; tail "$p" >&2; exit 1; }
for c in 1 2; do
	n=BenchmarkPrefill
	dn=BenchmarkDecodeVsStream
	[ $c = 2 ] && n=$n-2 && dn=$dn-2
	row "oracle prefill tok/s, $c core(s)" "$(metric "$p" $n tok/s)" "$(metric "$o" $dn decode-tok/s) (decode)" "$(div "$(metric "$p" $n tok/s)" "$(metric "$o" $dn decode-tok/s)")" "prefill speed-up over token-by-token decode"
done
row "oracle peak RSS (decode run)" "$decode_rss MiB" "$(gib "$ck_bytes") checkpoint" "$(div "$((decode_rss * 1048576))" "$ck_bytes")" "mapped checkpoint + reference scratch; last log: $(memline "$p" BenchmarkPrefill-2)"

# --- LUT8 kernel ---------------------------------------------------------------------------------
say "LUT8 dequant-matvec (the ios-gpu/ios-ane weights) vs a streaming read of the same bytes"
measure lut8 internal/kernels "$work/kernels.test" -test.run '^$' -test.bench 'LUT8$' -test.cpu 1,2 -test.benchtime 20x
l=$logs/lut8.out
if grep -q '^BenchmarkLUT8/' "$l"; then
	for c in 1 2; do
		sfx=""
		[ $c = 2 ] && sfx=-2
		n=BenchmarkLUT8/248320x1024
		row "LUT8 head product, $c core(s)" "$(metric "$l" "$n/lut8$sfx" x-read) of read" "$(metric "$l" "$n/lut8-avx2$sfx" x-read) (AVX2 kernel)" "$(div "$(metric "$l" "$n/lut8$sfx" x-read)" "$(metric "$l" "$n/lut8-avx2$sfx" x-read)")" "fraction of the streaming read reached (goal >= 0.6); int8 block-32: $(metric "$l" "$n/q8b32$sfx" x-read)"
	done
else
	echo "   LUT8 benchmark skipped (no AVX-512 VBMI): $(tail -n 3 "$l" | tr '\n' ' ')" >&2
fi

# --- quantization --------------------------------------------------------------------------------
say "int8 block-32 quantization of the whole checkpoint (Go benchmark, alternating with a read of the same bytes)"
measure quant quant "$work/quant.test" -test.run '^$' -test.bench 'QuantizeCheckpoint' -test.cpu 1,2 -test.benchtime 3x
q=$logs/quant.out
grep -q '^BenchmarkQuantizeCheckpoint' "$q" || { echo "bench.sh: quant benchmark failed" >&2; tail "$q" >&2; exit 1; }
for set in body body+head body+head/reuse; do
	for c in 1 2; do
		n=BenchmarkQuantizeCheckpoint/$set
		[ $c = 2 ] && n=$n-2
		row "quantize $set, $c core(s)" "$(metric "$q" "$n" quant-s/op) s ($(metric "$q" "$n" quant-GB/s) GB/s of $(metric "$q" "$n" input-GB) GB bf16)" "$(metric "$q" "$n" read-GB/s) GB/s (read same bytes)" "$(metric "$q" "$n" frac-of-read)" "quantizer speed as a fraction of merely reading its input; $(memline "$q" "$n")"
	done
done

say "export --target gpu-pipelined --no-gate (quantizes while writing), and its I/O floor"
mkdir -p "$work/out"
measure export-nogate "$root" "$qconv" export "$view" --target gpu-pipelined --no-gate -o "$work/out/nogate" --json
must export-nogate
j=$logs/export-nogate.out
int8_bytes=$(jq '.bundles[0].bytes' "$j")
qw=$(jq '.bundles[0].phase_seconds.quantize_write * 100 | round / 100' "$j")
rb=$(jq '.bundles[0].phase_seconds.read_back * 1000 | round / 1000' "$j")
nogate_wall=$M_WALL nogate_rss=$M_RSS nogate_anon=$M_ANON nogate_file=$M_FILE
bundle=$(jq -r '.bundles[0].path' "$j")
# The floor: the same number of bytes read from the mapped checkpoint's page cache and written
# to the same file system with fsync, as the export does, without quantizing or encoding.
measure io-floor "$root" bash -c "cat '$synth'/*.safetensors | head -c $int8_bytes | dd of='$work/dd.bin' bs=4M iflag=fullblock conv=fsync status=none"
must io-floor
io_wall=$M_WALL
rm -f "$work/dd.bin"
row "export gpu-pipelined --no-gate wall" "${nogate_wall} s" "${io_wall} s (copy same bytes + fsync)" "$(div "$nogate_wall" "$io_wall")" "whole export (open, lower, quantize, write, read back) over the I/O floor"
row "  phase quantize_write" "${qw} s" "${io_wall} s (copy same bytes + fsync)" "$(div "$qw" "$io_wall")" "quantize + encode + hash + write $(gib "$int8_bytes")"
row "  phase read_back" "${rb} s" "${qw} s (quantize_write)" "$(div "$rb" "$qw" 4)" "mapping + parsing the written bytecode is negligible"
row "  peak RSS" "$nogate_rss MiB (anon $nogate_anon, file $nogate_file)" "$(gib "$ck_bytes") checkpoint" "$(div "$((nogate_rss * 1048576))" "$ck_bytes")" "file = mapped checkpoint pages; anon = heap, one tensor's output at a time"

# --- interpreter vs oracle -----------------------------------------------------------------------
say "interpreter decode (graph.Session on export.Build) vs the oracle, alternating steps"
measure interp export "$work/export.test" -test.run '^$' -test.bench 'InterpDecodeVsOracle/gpu-pipelined$' -test.cpu 1,2 -test.benchtime 40x
x=$logs/interp.out
grep -q '^BenchmarkInterpDecodeVsOracle' "$x" || { echo "bench.sh: interpreter benchmark failed" >&2; tail "$x" >&2; exit 1; }
for c in 1 2; do
	n=BenchmarkInterpDecodeVsOracle/gpu-pipelined
	[ $c = 2 ] && n=$n-2
	row "interp decode tok/s gpu-pipelined int8, $c core(s)" "$(metric "$x" "$n" interp-tok/s)" "$(metric "$x" "$n" oracle-tok/s) (oracle)" "$(div "$(metric "$x" "$n" interp-tok/s)" "$(metric "$x" "$n" oracle-tok/s)") (median pair $(div 1 "$(metric "$x" "$n" median-ratio)"))" "candidate speed relative to the reference (below 1: slower); $(memline "$x" "$n")"
done
measure interp-other export "$work/export.test" -test.run '^$' -test.bench 'InterpDecodeVsOracle/ios-|CompanionPrefill' -test.cpu 2 -test.benchtime 6x
y=$logs/interp-other.out
for t in ios-gpu ios-ane; do
	n=BenchmarkInterpDecodeVsOracle/$t-2
	row "interp decode tok/s $t (int8-lut), 2 cores" "$(metric "$y" "$n" interp-tok/s)" "$(metric "$y" "$n" oracle-tok/s) (oracle)" "$(div "$(metric "$y" "$n" interp-tok/s)" "$(metric "$y" "$n" oracle-tok/s)")" "candidate speed relative to the reference: explains the per-target gate times below"
done
measure host-window export "$work/export.test" -test.run '^$' -test.bench 'HostWindow' -test.cpu 2 -test.benchtime 64x
w=$logs/host-window.out
for p in 16 512; do
	n=BenchmarkHostWindow/pos$p-2
	row "ios-gpu decode tok/s at position $p+, 2 cores" "$(metric "$w" "$n" window-tok/s) (cache window)" "$(metric "$w" "$n" all-slots-tok/s) (all 2048 slots)" "$(div "$(metric "$w" "$n" window-tok/s)" "$(metric "$w" "$n" all-slots-tok/s)") (median pair $(div 1 "$(metric "$w" "$n" median-ratio)"))" "speed-up of the host-cache session on a growing window over feeding all 2048 slots every step (same logits bit for bit; docs/performance.md)"
done
n=BenchmarkCompanionPrefill-2
row "ios-gpu prompt: 16-token companion block" "$(metric "$y" $n companion-tok/s) tok/s" "$(metric "$y" $n decode-tok/s) tok/s (16 decode steps, fresh sessions)" "$(div "$(metric "$y" $n companion-tok/s)" "$(metric "$y" $n decode-tok/s)")" "the companion check's prompt path against decoding the same tokens"

# --- gate ----------------------------------------------------------------------------------------
say "gate: qconv verify on the gpu-pipelined bundle (default id prompts)"
measure verify "$root" "$qconv" verify "$bundle" --reference "$view" --json --gate-min-confident 0
[ "$M_RC" = 0 ] || [ "$M_RC" = 3 ] || must verify
v=$logs/verify.out
verify_wall=$M_WALL
# The candidate's steps: each prompt token, the free rollout (tokens - 1), teacher forcing.
cand_steps=$(jq '.report.options.Tokens as $t | [.report.prompts[] | (.prompt.ids | length) + $t - 1 + (.ref_gen_ids | length)] | add' "$v")
prompt_lens=$(jq -c '[.report.prompts[].prompt.ids | length]' "$v")
echo "   gate prompt lengths: $prompt_lens" >&2
[ "$(jq 'max' <<<"$prompt_lens")" -ge 512 ] || echo "bench.sh: warning: no gate prompt of >= 512 tokens ($prompt_lens): the goal figures are not the issue's" >&2
interp2=$(metric "$x" BenchmarkInterpDecodeVsOracle/gpu-pipelined-2 interp-tok/s)
ideal=$(div "$cand_steps" "$interp2" 1)
row "gate (verify) wall, gpu-pipelined" "${verify_wall} s (passed=$(jq .passed "$v"), exit $M_RC)" "${ideal} s ($cand_steps candidate steps at the 2-core interp rate)" "$(div "$verify_wall" "$ideal")" "prompt lengths $prompt_lens; above 1 = time beyond the candidate's decode steps (reference, setup)"
row "  gate peak RSS" "$M_RSS MiB (anon $M_ANON, file $M_FILE)" "$(gib "$ck_bytes") checkpoint + $(gib "$int8_bytes") bundle" "$(div "$((M_RSS * 1048576))" "$((ck_bytes + int8_bytes))")" "both are mapped and read in full by the gate"
rm -rf "$work/out/nogate"

# --- bytecode ------------------------------------------------------------------------------------
say "bytecode write/read of a 1.22 GB int8-shaped module (graph/mlir BenchmarkBigModel)"
sync # start from clean page cache: file writes slow down once dirty pages pile up
measure bytecode graph/mlir "$work/mlir.test" -test.run '^$' -test.bench 'BigModel' -test.cpu 2 -test.benchtime 2x
g=$logs/bytecode.out
grep -q '^BenchmarkBigModel' "$g" || { echo "bench.sh: bytecode benchmark failed" >&2; tail "$g" >&2; exit 1; }
bm() { metric "$g" "BenchmarkBigModel/$1-2" MB/s; }
row "bytecode write MB/s (to file)" "$(bm write)" "$(bm raw-write) (raw write same bytes)" "$(div "$(bm write)" "$(bm raw-write)")" "writer vs the page-cache limit (order-dependent: write runs first, with the dirty pages of its own earlier iterations); peak RSS $(metric "$g" BenchmarkBigModel/write-2 peakRSS-MiB) MiB"
row "bytecode write MB/s (discard)" "$(bm write-discard)" "$(bm fill-only) (lazy fills alone)" "$(div "$(bm write-discard)" "$(bm fill-only)")" "writer CPU cost beyond producing the blobs"
row "bytecode read MB/s (mapped)" "$(bm read)" "$(bm touch) (touch every page)" "$(div "$(bm read)" "$(bm touch)")" "read aliases the mapping: above 1 = cheaper than touching the bytes"
row "bytecode read+touch MB/s" "$(bm read+touch)" "$(bm touch) (touch every page)" "$(div "$(bm read+touch)" "$(bm touch)")" "reader overhead when the data is used"

# --- export --target all -------------------------------------------------------------------------
# The issue's goal figures (docs/performance.md): each gated run against the same command with
# --no-gate in this run, so the ratio is the gate's cost whatever the machine's load.
goal_4gb_mib=$((4000000000 / 1048576)) # 4 GB = 3814 MiB
# goal VALUE LIMIT: "met" or "NOT met" (VALUE <= LIMIT), "-" when VALUE is missing.
goal() { awk -v v="${1:-}" -v l="$2" 'BEGIN { if (v == "" || v == "-") print "-"; else if (v + 0 <= l + 0) print "met"; else print "NOT met" }'; }
say "export --target all --no-gate (the baseline of the gated run)"
measure export-all-nogate "$root" "$qconv" export "$view" --target all --no-gate -o "$work/out/all-nogate" --json
must export-all-nogate
allng_wall=$M_WALL allng_rss=$M_RSS allng_anon=$M_ANON allng_file=$M_FILE
rm -rf "$work/out/all-nogate"
say "export --target all (gated, default id prompts incl. the 512-id one, --gate-min-confident 0)"
measure export-all "$root" "$qconv" export "$view" --target all -o "$work/out/all" --json --gate-min-confident 0
[ "$M_RC" = 0 ] || [ "$M_RC" = 3 ] || must export-all
a=$logs/export-all.out
all_wall=$M_WALL all_rss=$M_RSS all_anon=$M_ANON all_file=$M_FILE
phase_sum=$(jq '[.bundles[].phase_seconds // {} | to_entries[].value] | add | round' "$a")
gate_sum=$(jq '[.bundles[].phase_seconds.gate // 0] | add | round' "$a")
row "export --target all wall" "${all_wall} s (passed=$(jq .passed "$a"), exit $M_RC)" "${allng_wall} s (--target all --no-gate)" "$(div "$all_wall" "$allng_wall")" "goal <= 120 s on 2 cores: $(goal "$all_wall" 120); gates ${gate_sum} s; phases sum to ${phase_sum} s; the rest is open, lowering, hashing, the reference build"
row "  peak RSS" "$all_rss MiB (anon $all_anon, file $all_file)" "$allng_rss MiB (--no-gate; anon $allng_anon, file $allng_file)" "$(div "$all_rss" "$allng_rss")" "goal <= 4 GB ($goal_4gb_mib MiB): $(goal "$all_rss" "$goal_4gb_mib"); $(div "$((all_rss * 1048576))" "$ck_bytes") x the $(gib "$ck_bytes") checkpoint; file-backed = the checkpoint and the bundle being gated (docs/performance.md)"
while IFS=$'\t' read -r name phase secs; do
	row "  $name $phase" "$secs s" "$all_wall s (whole run)" "$(div "$secs" "$all_wall")" "share of the run"
done < <(jq -r '.bundles[] | .name as $n | (.phase_seconds // {}) | to_entries[] | [$n, .key, (.value * 10 | round / 10 | tostring)] | @tsv' "$a")
jq -r '.bundles[] | "   \(.target) \(.name): \(.bytes) bytes, gate passed=\(.gate.passed) \(.gate.first_failure // "")"' "$a" >&2

say "export --head-sym --target gpu-pipelined --no-gate (the published ship configuration)"
measure export-headsym "$root" "$qconv" export "$view" --head-sym --target gpu-pipelined --no-gate -o "$work/out/headsym" --json
must export-headsym
h=$logs/export-headsym.out
headsym_bytes=$(jq '.bundles[0].bytes' "$h")
hqw=$(jq '.bundles[0].phase_seconds.quantize_write * 100 | round / 100' "$h")
headsym_nogate_wall=$M_WALL
row "  head-sym quantize_write" "$hqw s (peak RSS $M_RSS MiB, anon $M_ANON)" "$qw s (tied fp16 head)" "$(div "$hqw" "$qw")" "int8 head (254M weights quantized) instead of an fp16 copy of the embedding"

say "export --head-sym --target gpu-pipelined, gated (default id prompts, --gate-min-confident 0)"
measure export-headsym-gated "$root" "$qconv" export "$view" --head-sym --target gpu-pipelined -o "$work/out/headsym-gated" --json --gate-min-confident 0
[ "$M_RC" = 0 ] || [ "$M_RC" = 3 ] || must export-headsym-gated
hg=$logs/export-headsym-gated.out
headsym_wall=$M_WALL
row "export --head-sym gpu-pipelined gated wall" "${M_WALL} s (exit $M_RC; gate $(jq '.bundles[0].phase_seconds.gate // 0 | round' "$hg") s)" "${headsym_nogate_wall} s (same, --no-gate)" "$(div "$M_WALL" "$headsym_nogate_wall")" "goal <= 45 s on 2 cores: $(goal "$M_WALL" 45); the gate's share is the difference"
row "  peak RSS" "$M_RSS MiB (anon $M_ANON, file $M_FILE)" "$(gib "$ck_bytes") checkpoint" "$(div "$((M_RSS * 1048576))" "$ck_bytes")" "one bundle gated: the checkpoint and that bundle are mapped"
lut_bytes=$(jq '[.bundles[] | select(.target == "ios-ane") | .bytes][0]' "$a")
row "bundle int8 linear (gpu-pipelined)" "$(gib "$int8_bytes")" "1.0 GB published" "$(div "$int8_bytes" 1e9)" "main.mlirb bytes"
row "bundle int8 + int8 head (--head-sym)" "$(gib "$headsym_bytes")" "1.3 GB published" "$(div "$headsym_bytes" 1.3e9)" "main.mlirb bytes"
row "bundle int8 LUT (ios-ane)" "$(gib "$lut_bytes")" "1.0 GB published" "$(div "$lut_bytes" 1e9)" "main.mlirb bytes"
rm -rf "$work/out"

# --- summary -------------------------------------------------------------------------------------
say "done in $(($(date +%s) - start_time)) s"
echo "load at end: $(uptime)"
echo
{
	printf 'figure\tvalue\tbaseline\tratio\tmeaning\n'
	cat "$results"
} | column -t -s $'\t'
echo
# The issue's three goal figures, each with its same-run baseline (also rows above).
echo "goals (2 cores, $(nproc) here; baselines from this run):"
printf '  %-44s %10s   baseline %10s   ratio %5s   goal %-8s %s\n' \
	"export --target all wall" "${all_wall} s" "${allng_wall} s" "$(div "$all_wall" "$allng_wall")" "<= 120 s" "$(goal "$all_wall" 120)" \
	"export --target all peak RSS" "${all_rss} MiB" "${allng_rss} MiB" "$(div "$all_rss" "$allng_rss")" "<= 4 GB" "$(goal "$all_rss" "$goal_4gb_mib")" \
	"export --head-sym --target gpu-pipelined wall" "${headsym_wall} s" "${headsym_nogate_wall} s" "$(div "$headsym_wall" "$headsym_nogate_wall")" "<= 45 s" "$(goal "$headsym_wall" 45)"
