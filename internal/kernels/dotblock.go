package kernels

import "fmt"

// DotRows sets dst[t][r0+i] = Dot(rows[i*cols:(i+1)*cols], xs[t]) for every row i of rows
// (len(rows)/cols of them) and every vector t, bit for bit what Dot returns. It exists for
// products that hold a few decoded weight rows in cache while many activations pass by them
// (the interpreter's batched feeding): on CPUs with AVX-512 and cols a multiple of 32, four
// rows meet two vectors per pass, reading each loaded row and vector chunk for several sums
// instead of one. It panics if a vector's length is not cols or a dst is too short.
func DotRows(dst [][]float32, r0 int, rows []float32, cols int, xs [][]float32) {
	if cols <= 0 || len(rows)%cols != 0 {
		panic(fmt.Sprintf("kernels: DotRows: %d row values do not make rows of %d", len(rows), cols))
	}
	if len(dst) != len(xs) {
		panic(fmt.Sprintf("kernels: DotRows: %d outputs for %d vectors", len(dst), len(xs)))
	}
	n := len(rows) / cols
	for t, x := range xs {
		if len(x) != cols {
			panic(fmt.Sprintf("kernels: DotRows: vector %d has %d values, rows have %d", t, len(x), cols))
		}
		if len(dst[t]) < r0+n {
			panic(fmt.Sprintf("kernels: DotRows: output %d has %d values, need %d", t, len(dst[t]), r0+n))
		}
	}
	i := 0
	if useDotBlock && cols%32 == 0 && len(xs) > 0 {
		var out [8]float32
		for ; i+4 <= n; i += 4 {
			w := &rows[i*cols]
			for t := 0; t < len(xs); t += 2 {
				t1 := min(t+1, len(xs)-1) // an odd vector out is paired with itself
				dot4x2AVX512(w, 4*cols, &xs[t][0], &xs[t1][0], cols, &out)
				d0, d1 := dst[t][r0+i:r0+i+4], dst[t1][r0+i:r0+i+4]
				copy(d0, out[:4])
				copy(d1, out[4:])
			}
		}
	}
	for ; i < n; i++ {
		row := rows[i*cols : (i+1)*cols]
		for t, x := range xs {
			dst[t][r0+i] = Dot(row, x)
		}
	}
}
