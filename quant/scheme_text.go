package quant

import "fmt"

// MarshalText writes the scheme's name (absmax, clip), as bundle metadata records it.
func (s Scheme) MarshalText() ([]byte, error) {
	if s != Absmax && s != Clip {
		return nil, fmt.Errorf("%v has no name", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a scheme's name.
func (s *Scheme) UnmarshalText(b []byte) error {
	for _, v := range []Scheme{Absmax, Clip} {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("unknown scale scheme %q (absmax, clip)", b)
}
