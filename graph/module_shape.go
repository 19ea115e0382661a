package graph

// Dynamic reports whether @main of m has an argument or state with a dynamic dimension (the
// pipelined contract); such graphs are the ones F16Accumulate stresses.
func (m *Module) Dynamic() bool {
	f := m.Func("main")
	if f == nil {
		return false
	}
	for _, a := range f.Args {
		if !a.Value.Type.Static() {
			return true
		}
	}
	return false
}

// HasF16Matmul reports whether @main of m multiplies fp16 matrices.
func (m *Module) HasF16Matmul() bool {
	f := m.Func("main")
	if f == nil {
		return false
	}
	for _, op := range f.Body {
		if op.Name == OpMatmul && op.Results[0].Type.DType == F16 {
			return true
		}
	}
	return false
}
