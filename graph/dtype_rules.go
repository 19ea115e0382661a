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

// RecurrenceDType is the dtype of the gated-delta state (recState, rec_state) and its update.
func RecurrenceDType(d Device, compute DType) DType {
	if compute == F32 || d != ANE {
		return F32
	}
	return F16
}

// NormDType is the dtype RMSNorm statistics are computed in.
func NormDType(d Device, compute DType) DType {
	if compute == F32 || d != ANE {
		return F32
	}
	return F16
}
