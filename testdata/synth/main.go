// Command synth writes a deterministic random-weight Qwen3.5 checkpoint with the published
// dimensions of a dense Qwen3.5 model (--size 0.8b, 2b, 4b, 9b, 27b; tied or untied as
// published), in the official multimodal layout (nested config, model.language_model.* names,
// a few model.visual.* and mtp.* tensors a text export must skip) or the text-only one (flat
// config, model.* names), sharded with an index, so benchmarks and scale checks can run where
// the real weights cannot be downloaded. --scale, --layers and --vocab write a scaled-down
// variant of a size (same head counts, tying and layout).
//
//	go run ./testdata/synth -o /tmp/qwen35-synth
//	go run ./testdata/synth --size 9b -o /work/scratch/qwen35-9b
//	go run ./testdata/synth --size 27b --layout qwen3_5_text --scale 32 --layers 4 --vocab 512 -o /tmp/27b-small
//
// The weights are uniform noise of plausible scale: outputs are meaningless, only sizes, layouts
// and speeds are real. Every tensor's values depend only on its name and -seed, so the output is
// byte-identical across runs and shard sizes. Never commit its output. The dimensions and their
// sources are in testdata/FIXTURES.md; the generator is internal/synth.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"qconv/internal/synth"
)

func main() {
	out := flag.String("o", "", "output directory (created; must not already hold a checkpoint)")
	size := flag.String("size", "0.8b", "published dimensions: "+strings.Join(synth.SizeNames, ", "))
	layout := flag.String("layout", synth.Multimodal, "save layout: qwen3_5 (multimodal, as published) or qwen3_5_text (flat model.*)")
	shardBytes := flag.Int64("shard-bytes", 1e9, "start a new shard once a shard holds this many bytes (0: one model.safetensors)")
	seed := flag.Uint64("seed", 1, "random seed")
	untied := flag.Bool("untied", false, "write an untied lm_head even where the published model ties it")
	tied := flag.Bool("tied", false, "tie the head even where the published model unties it")
	scale := flag.Int("scale", 1, "divide every width (hidden, intermediate, head dims) by this")
	layers := flag.Int("layers", 0, "decoder layers (0: as published)")
	vocab := flag.Int("vocab", 0, "vocabulary size (0: as published)")
	flag.Parse()
	d, ok := synth.Sizes[*size]
	if *out == "" || flag.NArg() != 0 || !ok || *scale < 1 || (*tied && *untied) {
		fmt.Fprintln(os.Stderr, "usage: synth -o DIR [--size "+strings.Join(synth.SizeNames, "|")+"] [--layout qwen3_5|qwen3_5_text] [--untied|--tied] [--scale N --layers N --vocab N] [-shard-bytes N] [-seed N]")
		os.Exit(2)
	}
	if *scale != 1 || *layers != 0 || *vocab != 0 {
		l, v := d.Layers, d.Vocab
		if *layers != 0 {
			l = *layers
		}
		if *vocab != 0 {
			v = *vocab
		}
		d = d.Scaled(*scale, l, v)
	}
	if *untied {
		d.Tied = false
	}
	if *tied {
		d.Tied = true
	}
	start := time.Now()
	if err := synth.Write(*out, synth.Options{Dims: d, Layout: *layout, ShardBytes: *shardBytes, Seed: *seed}); err != nil {
		fmt.Fprintln(os.Stderr, "synth:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "synth: wrote %s (%s, %s, %.2f GB) in %.1fs\n", *out, *size, *layout,
		float64(synth.Bytes(synth.Options{Dims: d, Layout: *layout}))/1e9, time.Since(start).Seconds())
}
