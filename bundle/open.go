package bundle

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"qconv/graph"
	"qconv/graph/interp"
	"qconv/graph/mlir"
	"qconv/internal/exitcode"
)

// Bundle is an opened bundle: its metadata and the module its bytes hold (resources alias a
// read-only mapping until Close).
type Bundle struct {
	Dir       string
	Metadata  *BundleMetadata
	Module    *graph.Module
	Companion *Bundle // for an ios-gpu prefill bundle, the decode bundle it runs with
	mapping   []byte
}

// IsBundle reports whether dir looks like a bundle directory (metadata.json with assets.main) or
// a bare asset qconv published (metadata.json with a qconv block).
func IsBundle(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		return false
	}
	var md BundleMetadata
	if _, bare := BareMetadata(dir, b); bare {
		return true
	}
	return DecodeStrict(b, &md) == nil && md.Assets["main"] != ""
}

// OpenBundle maps dir's main.mlirb and reads it back; for an ios-gpu prefill bundle it also opens
// the decode bundle it names as its companion (a sibling directory).
func OpenBundle(dir string) (*Bundle, error) {
	if err := AssetHint(dir); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir) // "bundle/" names the same directory; its sibling is beside it
	b, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		return nil, exitcode.Badf("%s: not a bundle: %v", dir, err)
	}
	md := &BundleMetadata{}
	if err := DecodeStrict(b, md); err != nil {
		return nil, exitcode.Badf("%s: %v", filepath.Join(dir, "metadata.json"), err)
	}
	assetDir := filepath.Join(dir, md.Assets["main"])
	if bm, ok := BareMetadata(dir, b); ok && md.MetadataVersion == "" {
		md, assetDir = bm, dir
	}
	if md.Assets["main"] == "" {
		return nil, exitcode.Badf("%s: metadata.json has no assets.main", dir)
	}
	m, mapping, err := ReadModule(filepath.Join(assetDir, "main.mlirb"))
	if err != nil {
		return nil, exitcode.Bad(err)
	}
	bd := &Bundle{Dir: dir, Metadata: md, Module: m, mapping: mapping}
	if md.QConv != nil && md.QConv.Contract == graph.HostPrefill {
		partner := filepath.Join(filepath.Dir(dir), md.QConv.Companion)
		if _, err := os.Stat(partner); err != nil {
			partner += ".aimodel" // published as a bare asset
		}
		if md.QConv.Companion == "" {
			bd.Close()
			return nil, exitcode.Badf("%s: a prefill companion bundle must name its decode bundle", dir)
		}
		if bd.Companion, err = OpenBundle(partner); err != nil {
			bd.Close()
			return nil, fmt.Errorf("opening the decode bundle beside the prefill companion: %w", err)
		}
	}
	return bd, nil
}

// Close releases the mappings.
func (b *Bundle) Close() {
	if b.Companion != nil {
		b.Companion.Close()
	}
	if b.mapping != nil {
		unix.Munmap(b.mapping)
		b.mapping = nil
	}
}

// Session starts a session on the bundle's bytes (decode partner + companion for a prefill
// bundle).
func (b *Bundle) Session() (*interp.Session, error) {
	if b.Companion != nil {
		return interp.NewSession(b.Companion.Module, b.Module)
	}
	return interp.NewSession(b.Module, nil)
}

// ReadModule maps a main.mlirb read-only and parses it; resource data aliases the mapping,
// which the caller releases with unix.Munmap when done with the module.
func ReadModule(path string) (*graph.Module, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 {
		return nil, nil, fmt.Errorf("%s: empty file", path)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	m, err := mlir.ReadBytecode(data)
	if err != nil {
		unix.Munmap(data)
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, data, nil
}
