package graph

// The dtype rules that depend on the device and the compute dtype live here, once: the export
// recipe (what metadata records), the lowering options export builds from it, and the verifier
// (what the bytes must hold) all call these two functions, so they cannot disagree.
//
// The device forms (compute f16): the GPU graphs keep the gated-delta recurrence and the RMSNorm
// statistics in fp32; the ANE runs fp16 throughout, recurrence included, because the fp32-SSM
// form is wrong on the ANE (docs/constraints.md, constraint 7). The fp32 validation form
// (compute f32) is fp32 everywhere on every device: it exists to be compared bit for bit with
// the fp32 goldens, and a recurrence rounded to fp16 would defeat that.
//
// The bf16 form (compute bf16, the macos-stock target: Apple's own Qwen3.5 contract) stores the
// gated-delta state in bf16, as Apple's exporter creates recurrentStates in the trace dtype, and
// runs the update itself in fp32 inside the gated_delta_update composite, as the composite's
// declaration does (cast in, loop in fp32, cast out). Constraint 7's fp32 rule is about the
// update's arithmetic on the GPU, which the bf16 form keeps; what it stores between calls is
// Apple's contract (docs/apple-qwen35-contract.md, section 6, has the gate figures behind it).
// bf16 RMSNorm statistics run in fp32 as on every GPU graph.

// RecurrenceDType is the dtype of the gated-delta state (recState, rec_state, recurrentStates)
// and of the values the recurrence exchanges with the rest of the graph.
func RecurrenceDType(d Device, compute DType) DType {
	switch {
	case compute == F32:
		return F32
	case compute == BF16:
		return BF16
	case d == ANE:
		return F16
	}
	return F32
}

// RecurrenceMathDType is the dtype the gated-delta update's arithmetic runs in for a state of
// dtype state (RecurrenceDType): the state's own, except that a bf16 state is updated in fp32.
func RecurrenceMathDType(state DType) DType {
	if state == BF16 {
		return F32
	}
	return state
}

// NormDType is the dtype RMSNorm statistics are computed in.
func NormDType(d Device, compute DType) DType {
	if compute == F32 || d != ANE {
		return F32
	}
	return F16
}
