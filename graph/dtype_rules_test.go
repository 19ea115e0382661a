package graph

import "testing"

// The recurrence dtype rule has one owner: the verifier accepts exactly what RecurrenceDType
// says for every device and compute dtype, and refuses the other dtype.
func TestRecurrenceRuleOneOwner(t *testing.T) {
	cases := []struct {
		d       Device
		compute DType
		want    DType
	}{{GPU, F16, F32}, {GPU, F32, F32}, {ANE, F16, F16}, {ANE, F32, F32}, {GPU, BF16, BF16}}
	for _, c := range cases {
		if got := RecurrenceDType(c.d, c.compute); got != c.want {
			t.Errorf("RecurrenceDType(%s, %s) = %s, want %s", c.d, c.compute, got, c.want)
		}
		// The update's arithmetic: fp32 for a bf16 state, else the state's dtype.
		if got, want := RecurrenceMathDType(c.want), map[DType]DType{BF16: F32, F16: F16, F32: F32}[c.want]; got != want {
			t.Errorf("RecurrenceMathDType(%s) = %s, want %s", c.want, got, want)
		}
		for _, dt := range []DType{F16, F32, BF16} {
			f := &Func{Name: "main"}
			vs := recurrenceType(f, StateRec, Type{DType: dt}, VerifyOptions{Device: c.d, Compute: c.compute})
			if (len(vs) == 0) != (dt == c.want) {
				t.Errorf("%s compute %s: a %s recurrence gives %v", c.d, c.compute, dt, vs)
			}
		}
	}
}

// Rows of at most 32 weights with one scale each are one block of block-32, not per-channel.
func TestOneBlockRows(t *testing.T) {
	for cols, want := range map[int64]bool{8: true, 32: true, 33: false, 64: false, 4096: false} {
		if OneBlockRows(cols) != want {
			t.Errorf("OneBlockRows(%d) = %v", cols, !want)
		}
	}
}
