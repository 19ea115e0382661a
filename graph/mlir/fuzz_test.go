package mlir

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"testing"

	"qconv/graph"
)

// FuzzReadBytecode: any input gives a module or an error, never a panic; a module that reads
// and writes back reads again to an equal module.
func FuzzReadBytecode(f *testing.F) {
	f.Add(writeBytecode(f, smallModule(f)))
	f.Add(writeBytecode(f, &graph.Module{}))
	f.Add(writeBytecode(f, bf16Module(f))) // bf16 types, dense bf16 constants and resources
	m := testModule(f)
	m.Resources = m.Resources[:0] // keep the seed small: drop the blobs and their constants
	for _, g := range m.Funcs {
		body := g.Body[:0]
		for _, op := range g.Body {
			if _, ok := op.Attrs["value"].(graph.ResourceAttr); !ok {
				body = append(body, op)
			}
		}
		g.Body = body
	}
	if data, err := writeBytecodeErr(m); err == nil {
		f.Add(data)
	}
	if _, err := os.Stat(mlirOptPath); err == nil { // mlir-opt's encodings as a seed too
		dir := f.TempDir()
		path, _ := writeFile(f, dir, "s.mlirb", func(b *bytes.Buffer) error { return WriteBytecode(b, smallModule(f), "seed") })
		if out, err := exec.Command(mlirOptPath, "--allow-unregistered-dialect", "--emit-bytecode", path).Output(); err == nil {
			f.Add(out)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadBytecode(data)
		if err != nil {
			return
		}
		WriteText(io.Discard, m)
		var out bytes.Buffer
		if err := WriteBytecode(&out, m, "fuzz"); err != nil {
			return
		}
		again, err := ReadBytecode(out.Bytes())
		if err != nil {
			t.Fatalf("rewritten module does not read: %v", err)
		}
		if err := graph.EqualModules(m, again); err != nil {
			t.Fatalf("rewritten module differs: %v", err)
		}
	})
}

func writeBytecodeErr(m *graph.Module) ([]byte, error) {
	var b bytes.Buffer
	err := WriteBytecode(&b, m, "seed")
	return b.Bytes(), err
}
