package recipe

import (
	"strings"
	"testing"

	"qconv/hf"
)

// An int head that a checkpoint's hidden size cannot take is refused naming what chose it: the
// flag the user typed, or the target's default recipe (macos-stock quantizes its head by default,
// so a user who typed no head flag must not be told to omit one).
func TestIntHeadMisfitNamesItsSource(t *testing.T) {
	cfg := &hf.Config{VocabSize: 512, HiddenSize: 80}
	for _, c := range []struct {
		target string
		f      Flags
		want   string // in the message
		wantOK bool
	}{
		{"macos-stock", Flags{}, "the target's default head (int8 block32)", false},
		{"macos-stock", Flags{Head: "tied"}, "", true},
		{"gpu-pipelined", Flags{HeadSym: true}, "flag --head-sym:", false},
		{"gpu-pipelined", Flags{Head: "int8"}, "flag --head:", false},
		{"gpu-pipelined", Flags{Weights: "int8hu"}, "flag --weights int8hu:", false},
		{"gpu-pipelined", Flags{Head: "int8", HeadGranularity: "block32"}, "flag --head-granularity:", false},
		{"gpu-pipelined", Flags{Head: "int8", HeadGranularity: "block16"}, "", true},
		{"gpu-pipelined", Flags{Head: "int8", HeadGranularity: "block8"}, "", true},
		{"gpu-pipelined", Flags{}, "", true},
	} {
		tg, err := TargetByName(c.target)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.f.Apply(tg)
		if err != nil {
			t.Fatalf("%s %+v: %v", c.target, c.f, err)
		}
		err = r.ForCheckpoint(cfg)
		if c.wantOK {
			if err != nil {
				t.Errorf("%s %+v: %v", c.target, c.f, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: got %v, want it to contain %q", c.target, c.f, err, c.want)
		}
	}
}
