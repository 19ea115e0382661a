package quant

// Nibble packing over the row-major flattened index k: byte k/2, low nibble for
// even k, high nibble for odd k.

// PackInt4 stores q (values in [-8, 7]) as two's-complement nibbles at flattened
// indices k, k+1, ... of dst, leaving the other nibbles of shared bytes intact.
func PackInt4(dst []byte, k int, q []int8) {
	packNibbles(dst, k, q)
}

// UnpackInt4 reads len(q) sign-extended nibbles starting at flattened index k.
func UnpackInt4(q []int8, src []byte, k int) {
	for i := range q {
		j := k + i
		n := src[j>>1] >> (4 * (j & 1)) & 0x0f
		q[i] = int8(n<<4) >> 4
	}
}

// PackUint4 stores idx (values in [0, 15]) as unsigned nibbles at flattened
// indices k, k+1, ... of dst, leaving the other nibbles of shared bytes intact.
func PackUint4(dst []byte, k int, idx []uint8) {
	packNibbles(dst, k, idx)
}

// UnpackUint4 reads len(idx) unsigned nibbles starting at flattened index k.
func UnpackUint4(idx []uint8, src []byte, k int) {
	for i := range idx {
		j := k + i
		idx[i] = src[j>>1] >> (4 * (j & 1)) & 0x0f
	}
}

func packNibbles[T int8 | uint8](dst []byte, k int, v []T) {
	i, n := 0, len(v)
	if k&1 == 1 && n > 0 { // first value shares its byte with k-1
		dst[k>>1] = dst[k>>1]&0x0f | byte(v[0])<<4
		i, k = 1, k+1
	}
	b := k >> 1
	for ; i+1 < n; i += 2 {
		dst[b] = byte(v[i])&0x0f | byte(v[i+1])<<4
		b++
	}
	if i < n { // last value shares its byte with the next index
		dst[b] = dst[b]&0xf0 | byte(v[i])&0x0f
	}
}
