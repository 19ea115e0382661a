package mlir

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"

	"qconv/graph"
)

// MLIR prints a float element the way llvm::APFloat::toString does, so reproducing mlir-opt's text
// byte for byte means reproducing that algorithm: the exact binary value is expanded to decimal,
// cut to a precision in two steps (a truncating integer division, then a round-half-up on the
// decimal digits), and laid out. printFloat then applies MLIR's choice between the short
// scientific form, the full form and a hex bit pattern.

// floatFormat describes an IEEE binary format: its precision (significand bits including the
// implicit one) and exponent width.
type floatFormat struct {
	precision int
	expBits   int
}

var (
	formatF16  = floatFormat{11, 5}
	formatF32  = floatFormat{24, 8}
	formatBF16 = floatFormat{8, 8}
)

// formatOf is the IEEE format of a float dtype (f32 for any other).
func formatOf(dt graph.DType) floatFormat {
	switch dt {
	case graph.F16:
		return formatF16
	case graph.BF16:
		return formatBF16
	}
	return formatF32
}

// printFloat formats the float with bit pattern bits as MLIR prints an element of a dense attribute.
func printFloat(bits uint64, f floatFormat) string {
	neg, sig, exp, kind := f.decompose(bits)
	if kind == floatSpecial {
		return hexLiteral(bits)
	}
	// The short form ("%.6e"-like, always 7 significant digits shown) is used when it reads back
	// exactly; otherwise the shortest-safe full form, if it has a decimal point; otherwise hex.
	s := apfloatString(neg, sig, exp, kind, f, 6, 0, false)
	if f.parse(s) == bits {
		return s
	}
	s = apfloatString(neg, sig, exp, kind, f, 0, 3, true)
	if strings.ContainsRune(s, '.') {
		return s
	}
	return hexLiteral(bits)
}

// hexLiteral is APInt's C-literal hex form: 0x, upper-case digits, no leading zeros.
func hexLiteral(v uint64) string {
	return "0x" + strings.ToUpper(strconv.FormatUint(v, 16))
}

type floatKind uint8

const (
	floatFinite floatKind = iota
	floatZero
	floatSpecial // inf or nan
)

// decompose splits bits into sign and value sig * 2^exp.
func (f floatFormat) decompose(bits uint64) (neg bool, sig uint64, exp int, kind floatKind) {
	mbits := f.precision - 1
	bias := 1<<(f.expBits-1) - 1
	neg = bits>>(mbits+f.expBits)&1 == 1
	e := int(bits >> mbits & (1<<f.expBits - 1))
	frac := bits & (1<<mbits - 1)
	switch {
	case e == 1<<f.expBits-1:
		return neg, 0, 0, floatSpecial
	case e == 0 && frac == 0:
		return neg, 0, 0, floatZero
	case e == 0:
		return neg, frac, 1 - bias - mbits, floatFinite
	}
	return neg, frac | 1<<mbits, e - bias - mbits, floatFinite
}

// apfloatString is APFloat::toString(FormatPrecision, FormatMaxPadding, TruncateZero) for a
// finite value.
func apfloatString(neg bool, sig uint64, exp int, kind floatKind, f floatFormat, prec, maxPad int, truncZero bool) string {
	var out strings.Builder
	if neg {
		out.WriteByte('-')
	}
	if kind == floatZero {
		switch {
		case maxPad != 0:
			out.WriteByte('0')
		case truncZero:
			out.WriteString("0.0E+0")
		default:
			out.WriteString("0.0")
			if prec > 1 {
				out.WriteString(strings.Repeat("0", prec-1))
			}
			out.WriteString("e+00")
		}
		return out.String()
	}
	if prec == 0 {
		prec = 2 + f.precision*59/196
	}
	for sig&1 == 0 {
		sig >>= 1
		exp++
	}
	// value = n * 10^exp
	n := new(big.Int).SetUint64(sig)
	if exp > 0 {
		n.Lsh(n, uint(exp))
		exp = 0
	} else if exp < 0 {
		n.Mul(n, new(big.Int).Exp(big.NewInt(5), big.NewInt(int64(-exp)), nil))
	}
	// First cut: drop whole decimal digits by integer division (no rounding).
	if bits, need := n.BitLen(), (prec*196+58)/59; bits > need {
		if tens := (bits - need) * 59 / 196; tens > 0 {
			exp += tens
			n.Quo(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(tens)), nil))
		}
	}
	d := n.String()
	for len(d) > 1 && d[len(d)-1] == '0' {
		d = d[:len(d)-1]
		exp++
	}
	// Second cut: keep prec digits, rounding half up on the first dropped digit.
	if len(d) > prec {
		dropped := len(d) - prec
		kept := []byte(d[:prec])
		if d[prec] < '5' {
			for len(kept) > 1 && kept[len(kept)-1] == '0' {
				kept = kept[:len(kept)-1]
				dropped++
			}
		} else {
			i := len(kept) - 1
			for ; i >= 0 && kept[i] == '9'; i-- {
				dropped++
			}
			if i < 0 {
				kept = []byte{'1'}
				dropped = len(d)
			} else {
				kept[i]++
				kept = kept[:i+1]
			}
		}
		exp += dropped
		d = string(kept)
	}
	nd := len(d)
	scientific := true
	if maxPad != 0 {
		if exp >= 0 {
			scientific = exp > maxPad || nd+exp > prec
		} else if msd := exp + nd - 1; msd >= 0 {
			scientific = false
		} else {
			scientific = -msd > maxPad
		}
	}
	switch {
	case scientific:
		exp += nd - 1
		out.WriteByte(d[0])
		out.WriteByte('.')
		if nd == 1 && truncZero {
			out.WriteByte('0')
		} else {
			out.WriteString(d[1:])
		}
		if !truncZero && prec > nd-1 {
			out.WriteString(strings.Repeat("0", prec-nd+1))
		}
		if truncZero {
			out.WriteByte('E')
		} else {
			out.WriteByte('e')
		}
		if exp >= 0 {
			out.WriteByte('+')
		} else {
			out.WriteByte('-')
			exp = -exp
		}
		e := strconv.Itoa(exp)
		if !truncZero && len(e) < 2 {
			out.WriteByte('0')
		}
		out.WriteString(e)
	case exp >= 0:
		out.WriteString(d)
		out.WriteString(strings.Repeat("0", exp))
	default:
		if whole := exp + nd; whole > 0 {
			out.WriteString(d[:whole])
			out.WriteByte('.')
			out.WriteString(d[whole:])
		} else {
			out.WriteString("0.")
			out.WriteString(strings.Repeat("0", -whole))
			out.WriteString(d)
		}
	}
	return out.String()
}

// parse reads a decimal float into format f, correctly rounded to nearest even as APFloat does,
// and returns its bits (^0 when s does not parse).
func (f floatFormat) parse(s string) uint64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return ^uint64(0)
	}
	a := math.Abs(v)
	if a == 0 || math.IsInf(v, 0) || a < 0x1p-160 || a > 0x1p140 || len(s) > 100 {
		// Far from any rounding boundary of f16/f32 (or absurdly long): float64 is exact enough.
		return f.fromFloat64(v)
	}
	q, ok := new(big.Rat).SetString(s)
	if !ok {
		return ^uint64(0)
	}
	return f.fromRat(q)
}

// fromRat rounds q to format f, nearest even, overflowing to infinity.
func (f floatFormat) fromRat(q *big.Rat) uint64 {
	var sign uint64
	if q.Sign() < 0 {
		sign = 1 << (f.precision - 1 + f.expBits)
		q = new(big.Rat).Neg(q)
	}
	if q.Sign() == 0 {
		return sign
	}
	bias := 1<<(f.expBits-1) - 1
	p := f.precision
	e := q.Num().BitLen() - q.Denom().BitLen() // floor(log2 q) or one more
	if pow2(e).Cmp(q) > 0 {
		e--
	}
	if e < 1-bias {
		e = 1 - bias
	}
	m := new(big.Rat).Mul(q, pow2(p-1-e)) // significand, to be rounded to an integer
	n, r := new(big.Int).QuoRem(m.Num(), m.Denom(), new(big.Int))
	switch c := new(big.Int).Lsh(r, 1).Cmp(m.Denom()); {
	case c > 0, c == 0 && n.Bit(0) == 1:
		n.Add(n, big.NewInt(1))
	}
	if n.BitLen() > p {
		n.Rsh(n, 1)
		e++
	}
	if e > bias {
		return sign | (1<<f.expBits-1)<<(p-1)
	}
	mant := n.Uint64()
	if mant < 1<<(p-1) {
		return sign | mant
	}
	return sign | uint64(e+bias)<<(p-1) | mant&(1<<(p-1)-1)
}

func pow2(e int) *big.Rat {
	if e >= 0 {
		return new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), uint(e)))
	}
	return new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Lsh(big.NewInt(1), uint(-e)))
}

// fromFloat64 rounds v to format f (nearest even, overflow to infinity); exact for f32, and
// for f16 whenever v is not within 2^-53 of a rounding boundary.
func (f floatFormat) fromFloat64(v float64) uint64 {
	if f == formatF32 {
		return uint64(math.Float32bits(float32(v)))
	}
	if math.IsNaN(v) {
		return (1<<f.expBits-1)<<(f.precision-1) | 1<<(f.precision-2) // the quiet NaN (f16 0x7e00, bf16 0x7fc0)
	}
	if v == 0 && math.Signbit(v) {
		return 1 << (f.precision - 1 + f.expBits)
	}
	return f.fromRat(new(big.Rat).SetFloat64(v))
}
