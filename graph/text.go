package graph

import "fmt"

// The text forms below are how bundle metadata records a dtype and a contract: the MLIR dtype
// spelling and Contract.String. Readers get the typed value back; nothing parses the strings
// by hand.

// MarshalText writes the MLIR spelling (f16, f32, ...).
func (d DType) MarshalText() ([]byte, error) {
	if !d.Valid() {
		return nil, fmt.Errorf("dtype(%d) has no spelling", uint8(d))
	}
	return []byte(d.String()), nil
}

// UnmarshalText reads an MLIR dtype spelling.
func (d *DType) UnmarshalText(b []byte) error {
	v, ok := ParseDType(string(b))
	if !ok {
		return fmt.Errorf("unknown dtype %q", b)
	}
	*d = v
	return nil
}

// Contracts lists the engine contracts.
var Contracts = []Contract{Pipelined, HostDecode, HostPrefill, Stock}

// ParseContract reads a contract's String form.
func ParseContract(s string) (Contract, bool) {
	for _, c := range Contracts {
		if c.String() == s {
			return c, true
		}
	}
	return 0, false
}

// MarshalText writes the contract's String form ("pipelined", "host-cache decode", ...).
func (c Contract) MarshalText() ([]byte, error) {
	if _, ok := ParseContract(c.String()); !ok {
		return nil, fmt.Errorf("%v has no spelling", c)
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads a contract's String form.
func (c *Contract) UnmarshalText(b []byte) error {
	v, ok := ParseContract(string(b))
	if !ok {
		return fmt.Errorf("unknown contract %q", b)
	}
	*c = v
	return nil
}
