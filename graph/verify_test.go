package graph

import (
	"strings"
	"testing"
)

// stateGraph is a minimal valid stateful graph: one state written with x added to it.
func stateGraph(stateType Type, write func(b *Builder, cur, x *Value) *Value) (*Module, *Func) {
	m := &Module{}
	f := NewFunc("main")
	m.Funcs = append(m.Funcs, f)
	b := NewBuilder(m, f)
	x := f.AddArg("x", stateType)
	h := f.AddState(StateRec, stateType)
	tok := b.Op(OpCreateToken)
	cur, tok := b.ReadState(h, tok)
	nv := write(b, cur, x)
	f.AddResult(StateRec, b.WriteState(h, nv, tok))
	f.AddResult("y", b.Add(cur, x))
	if b.Err() != nil {
		panic(b.Err())
	}
	return m, f
}

func expectRule(t *testing.T, err error, rule, fragment string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no violation, want rule %s", rule)
	}
	if !HasRule(err, rule) {
		t.Fatalf("violations %v lack rule %s", err, rule)
	}
	if !strings.Contains(err.Error(), fragment) {
		t.Errorf("error %q does not mention %q", err, fragment)
	}
}

func TestVerifyValidStateGraph(t *testing.T) {
	m, _ := stateGraph(Tensor(F32, 2, 3), func(b *Builder, cur, x *Value) *Value { return b.Add(cur, x) })
	if err := Verify(m, VerifyOptions{Device: GPU}); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRules(t *testing.T) {
	f32 := Tensor(F32, 2, 3)
	cases := []struct {
		name     string
		build    func() *Module
		opt      VerifyOptions
		rule     string
		fragment string
	}{
		{"loop op", func() *Module {
			m, f := stateGraph(f32, func(b *Builder, cur, x *Value) *Value { return b.Add(cur, x) })
			f.Append(NewOp(OpWhile, []*Value{f.Args[0].Value}, []Type{f32}, nil))
			return m
		}, VerifyOptions{Device: GPU}, RuleNoLoops, "coreai.while"},
		{"declared type disagrees", func() *Module {
			m, f := stateGraph(f32, func(b *Builder, cur, x *Value) *Value { return b.Add(cur, x) })
			x := f.Args[0].Value
			f.Append(NewOp(OpAdd, []*Value{x, x}, []Type{Tensor(F16, 2, 3)}, nil))
			return m
		}, VerifyOptions{Device: GPU}, RuleTypes, "declared tensor<2x3xf16>, infers tensor<2x3xf32>"},
		{"use before definition", func() *Module {
			m, f := stateGraph(f32, func(b *Builder, cur, x *Value) *Value { return b.Add(cur, x) })
			ghost := &Value{Type: f32}
			f.Append(NewOp(OpExp, []*Value{ghost}, []Type{f32}, nil))
			return m
		}, VerifyOptions{Device: GPU}, RuleTypes, "not defined before use"},
		{"state written with another shape", func() *Module {
			m, f := stateGraph(f32, func(b *Builder, cur, x *Value) *Value { return b.Add(cur, x) })
			// Rewire the write to a value of a different shape (the builder would refuse it).
			var w *Op
			for _, op := range f.Body {
				if op.Name == OpWriteHandle {
					w = op
				}
			}
			b := NewBuilder(m, f)
			w.Operands[1] = b.Reshape(f.Args[0].Value, 3, 2)
			return m
		}, VerifyOptions{Device: GPU}, RuleStates, "holds tensor<2x3xf32> but is written with tensor<3x2xf32>"},
		{"state without its token", func() *Module {
			m, f := stateGraph(f32, func(b *Builder, cur, x *Value) *Value { return b.Add(cur, x) })
			f.Results = f.Results[1:]
			return m
		}, VerifyOptions{Device: GPU}, RuleStates, "no result token"},
		{"mutation names another output", func() *Module {
			m, f := stateGraph(f32, func(b *Builder, cur, x *Value) *Value { return b.Add(cur, x) })
			f.Args[1].Mutation = "other"
			return m
		}, VerifyOptions{Device: GPU}, RuleStates, `buffer_mutation is "other"`},
		{"fp16 recurrence on the GPU", func() *Module {
			m, _ := stateGraph(Tensor(F16, 2, 3), func(b *Builder, cur, x *Value) *Value { return b.Add(cur, x) })
			return m
		}, VerifyOptions{Device: GPU}, RuleRecurrenceType, "recState"},
		{"fp32 recurrence on the ANE", func() *Module {
			m, _ := stateGraph(f32, func(b *Builder, cur, x *Value) *Value { return b.Add(cur, x) })
			return m
		}, VerifyOptions{Device: ANE}, RuleRecurrenceType, "wrong on the ANE"},
		{"write index from an input value", func() *Module {
			m := &Module{}
			f := NewFunc("main")
			m.Funcs = append(m.Funcs, f)
			b := NewBuilder(m, f)
			pos := f.AddArg(InPositionIDs, Tensor(SI32, 1, 1))
			h := f.AddState(StateKey, Tensor(F16, 1, 8, 4))
			tok := b.Op(OpCreateToken)
			cache, tok := b.ReadState(h, tok)
			p := b.Reshape(pos, 1) // the VALUE of position_ids
			begin := b.Concat(0, b.I32s(0), p, b.I32s(0))
			end := b.Concat(0, b.I32s(1), b.Add(p, b.I32s(1)), b.I32s(4))
			upd := b.Splat(F16, 1, 1, 1, 4)
			cache = b.Op(OpSliceUpdate, cache, upd, begin, end, b.I32s(1, 1, 1))
			f.AddResult(StateKey, b.WriteState(h, cache, tok))
			if b.Err() != nil {
				panic(b.Err())
			}
			return m
		}, VerifyOptions{Device: GPU}, RuleShapeIndex, `begin depends on the value of "position_ids"`},
		{"per-channel int8 on the GPU", func() *Module {
			return blockwiseGraph(64, 1)
		}, VerifyOptions{Device: GPU}, RulePerChannelGPU, "per-channel int8 gives garbage logits"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectRule(t, Verify(c.build(), c.opt), c.rule, c.fragment)
		})
	}
}

// blockwiseGraph is a linear layer on int8 weights [8, in] with scale blocks [8, scaleCols].
func blockwiseGraph(in, scaleCols int64) *Module {
	m := &Module{}
	f := NewFunc("main")
	m.Funcs = append(m.Funcs, f)
	b := NewBuilder(m, f)
	x := f.AddArg("x", Tensor(F16, 1, in))
	data, _ := m.AddResource(&Resource{Key: "w", Size: 8 * in, Data: make([]byte, 8*in)})
	scale, _ := m.AddResource(&Resource{Key: "s", Size: 8 * scaleCols * 2, Data: make([]byte, 8*scaleCols*2)})
	w := b.Op(OpBlockwise, b.Resource(Tensor(SI8, 8, in), data), b.Resource(Tensor(F16, 8, scaleCols), scale),
		b.SplatInt(SI8, 0, 8, scaleCols), b.Splat(F16, 0, 8, scaleCols))
	f.AddResult("y", b.Matmul(x, b.Transpose(w, 1, 0)))
	if b.Err() != nil {
		panic(b.Err())
	}
	return m
}

func TestVerifyPerChannelOverrideAndBlocks(t *testing.T) {
	if err := Verify(blockwiseGraph(64, 1), VerifyOptions{Device: GPU, AllowPerChannelGPU: true}); err != nil {
		t.Errorf("override: %v", err)
	}
	if err := Verify(blockwiseGraph(64, 2), VerifyOptions{Device: GPU}); err != nil {
		t.Errorf("block-32: %v", err)
	}
	if err := Verify(blockwiseGraph(64, 1), VerifyOptions{Device: ANE}); err != nil {
		t.Errorf("per-channel on the ANE: %v", err)
	}
}
