package lower

import "github.com/x448/float16"

// f16round rounds v to the nearest fp16 value (interp's tests have the same helper).
func f16round(v float64) float64 { return float64(float16.Fromfloat32(float32(v)).Float32()) }
