package bundle

import "testing"

func TestSourceIdentity(t *testing.T) {
	a := []FileDigestJSON{{"config.json", 10, "c1"}, {"model.safetensors", 99, "m1"}}
	b := []FileDigestJSON{a[1], a[0]}
	if SourceIdentity(a) != SourceIdentity(b) {
		t.Error("identity depends on file order")
	}
	c := []FileDigestJSON{a[0], {"model.safetensors", 99, "m2"}}
	d := []FileDigestJSON{{"config.json", 10, "c1"}, {"model-2.safetensors", 99, "m1"}}
	for _, x := range [][]FileDigestJSON{c, d, a[:1]} {
		if SourceIdentity(x) == SourceIdentity(a) {
			t.Errorf("identity unchanged for %v", x)
		}
	}
}
