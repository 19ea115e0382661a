package hf

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/nlpodyssey/safetensors"
	"golang.org/x/sys/unix"
)

// DType is a supported on-disk element type.
type DType uint8

const (
	BF16 DType = iota + 1
	F16
	F32
)

var dtypeNames = map[DType]string{BF16: "BF16", F16: "F16", F32: "F32"}

func (d DType) String() string {
	if s, ok := dtypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size is the element size in bytes.
func (d DType) Size() int {
	if d == F32 {
		return 4
	}
	return 2
}

// maxHeaderBytes bounds the JSON header we are willing to parse (the safetensors spec's own limit).
const maxHeaderBytes = 100 << 20

// shard is one memory-mapped safetensors file.
type shard struct {
	path    string
	size    int64
	data    []byte // the whole file, mmapped read-only; nil for an empty file
	tensors []*Tensor
}

// headerEntry is one tensor's record in a safetensors JSON header.
type headerEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// openShard maps path and validates its header completely before any tensor is handed out:
// header length, JSON, dtypes, shapes against byte ranges, and that the ranges tile the data
// section exactly (no overlap, no gap, nothing out of range). Errors name the file and tensor.
func openShard(path string) (*shard, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a directory, not a safetensors file", path)
	}
	s := &shard{path: path, size: st.Size()}
	if s.size < 8 {
		return nil, fmt.Errorf("%s: truncated: %d bytes, but a safetensors file starts with an 8-byte header length", path, s.size)
	}
	if int64(int(s.size)) != s.size {
		return nil, fmt.Errorf("%s: %d bytes is too large to map on this platform", path, s.size)
	}
	s.data, err = unix.Mmap(int(f.Fd()), 0, int(s.size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	if err := s.index(); err != nil {
		s.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func (s *shard) close() error {
	if s.data == nil {
		return nil
	}
	err := unix.Munmap(s.data)
	s.data = nil
	return err
}

func (s *shard) index() error {
	n := binary.LittleEndian.Uint64(s.data[:8])
	if n > uint64(s.size-8) {
		return fmt.Errorf("header length %d runs beyond the end of the file (%d bytes): truncated or not a safetensors file", n, s.size)
	}
	if n > maxHeaderBytes {
		return fmt.Errorf("header length %d exceeds the %d-byte limit", n, maxHeaderBytes)
	}
	header := s.data[8 : 8+n]
	dataLen := s.size - 8 - int64(n)

	var raw map[string]json.RawMessage
	if err := decodeJSON(header, &raw); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	type span struct {
		name       string
		start, end int64
	}
	var spans []span
	entries := map[string]headerEntry{}
	// Visit the header in name order, so the same bad file gives the same message every run; a
	// truncated file names the first tensor (by offset) whose data is missing.
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	var beyond *span
	nBeyond := 0
	for _, name := range names {
		msg := raw[name]
		if name == "__metadata__" {
			var meta map[string]string
			if err := json.Unmarshal(msg, &meta); err != nil {
				return fmt.Errorf("header: __metadata__ must map strings to strings: %v", err)
			}
			continue
		}
		var e headerEntry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("tensor %q: malformed header entry: %v", name, err)
		}
		dt, err := parseDType(e.DType)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", name, err)
		}
		elems := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return fmt.Errorf("tensor %q: negative dimension in shape %v", name, e.Shape)
			}
			if d != 0 && elems > (1<<62)/d {
				return fmt.Errorf("tensor %q: shape %v overflows", name, e.Shape)
			}
			elems *= d
		}
		start, end := e.DataOffsets[0], e.DataOffsets[1]
		if start < 0 || end < start {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] are not an increasing range", name, start, end)
		}
		if end > dataLen {
			if nBeyond++; beyond == nil || start < beyond.start {
				beyond = &span{name, start, end}
			}
			continue
		}
		if want := elems * int64(dt.Size()); end-start != want {
			return fmt.Errorf("tensor %q: %s shape %v needs %d bytes, but data_offsets [%d, %d] span %d", name, dt, e.Shape, want, start, end, end-start)
		}
		entries[name] = e
		spans = append(spans, span{name, start, end})
	}
	if beyond != nil {
		return fmt.Errorf("tensor %q: data_offsets [%d, %d] run beyond the %d-byte data section (file truncated? %d tensor(s) end past it; this is the first by offset)", beyond.name, beyond.start, beyond.end, dataLen, nBeyond)
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].start != spans[j].start {
			return spans[i].start < spans[j].start
		}
		return spans[i].end < spans[j].end
	})
	var pos int64
	for i, sp := range spans {
		if sp.start < pos {
			prev := spans[i-1]
			return fmt.Errorf("tensors %q [%d, %d) and %q [%d, %d) overlap", prev.name, prev.start, prev.end, sp.name, sp.start, sp.end)
		}
		if sp.start > pos {
			return fmt.Errorf("data bytes [%d, %d) before tensor %q belong to no tensor", pos, sp.start, sp.name)
		}
		pos = sp.end
	}
	if pos != dataLen {
		return fmt.Errorf("data section has %d trailing bytes after the last tensor (%d of %d used)", dataLen-pos, pos, dataLen)
	}

	// The header is sound; let the safetensors library slice the tensors out of the mapping.
	st, err := safetensors.Deserialize(s.data)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	for _, sp := range spans {
		view, ok := st.Tensor(sp.name)
		if !ok {
			return fmt.Errorf("tensor %q: listed in the header but not found by the safetensors reader", sp.name)
		}
		e := entries[sp.name]
		dt, _ := parseDType(e.DType)
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			shape[i] = int(d)
		}
		s.tensors = append(s.tensors, &Tensor{
			StoredName: sp.name,
			File:       filepath.Base(s.path),
			DType:      dt,
			Shape:      shape,
			data:       view.Data(),
		})
	}
	return nil
}

func parseDType(s string) (DType, error) {
	for d, name := range dtypeNames {
		if name == s {
			return d, nil
		}
	}
	return 0, fmt.Errorf("dtype %s is not supported (supported: BF16, F16, F32)", s)
}
