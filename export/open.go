package export

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"qconv/graph"
	"qconv/graph/interp"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/oracle"
)

// Built is a target's lowered graphs with their weights in memory (for `qconv run --target`).
type Built struct {
	Target  *Target
	Recipe  Recipe
	Name    string
	Decode  *graph.Module
	Prefill *graph.Module // ios-gpu companion, or nil
}

// Build lowers t's graphs for ck under flags and quantizes every weight in memory: the candidate
// exactly as an export would write it, without writing.
func Build(ck *hf.Checkpoint, t *Target, f Flags) (*Built, error) {
	r, err := f.Apply(t)
	if err != nil {
		return nil, err
	}
	if err := r.forCheckpoint(ck.Config); err != nil {
		return nil, err
	}
	b := &Built{Target: t, Recipe: r, Name: BundleName(ShortName(ck), t, t.Contract, &r, PrefillTokens)}
	for _, c := range []graph.Contract{t.Contract, t.Prefill} {
		if c == 0 {
			continue
		}
		j := &job{target: t, recipe: r, contract: c}
		if err := j.lower(ck); err != nil {
			return nil, err
		}
		for _, res := range j.module.Resources {
			if err := res.Materialize(); err != nil {
				return nil, err
			}
		}
		if c == t.Contract {
			b.Decode = j.module
		} else {
			b.Prefill = j.module
		}
	}
	return b, nil
}

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
	if _, bare := bareMetadata(dir, b); bare {
		return true
	}
	return decodeStrict(b, &md) == nil && md.Assets["main"] != ""
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
	if err := decodeStrict(b, md); err != nil {
		return nil, exitcode.Badf("%s: %v", filepath.Join(dir, "metadata.json"), err)
	}
	assetDir := filepath.Join(dir, md.Assets["main"])
	if bm, ok := bareMetadata(dir, b); ok && md.MetadataVersion == "" {
		md, assetDir = bm, dir
	}
	if md.Assets["main"] == "" {
		return nil, exitcode.Badf("%s: metadata.json has no assets.main", dir)
	}
	m, mapping, err := ReadBundleModule(filepath.Join(assetDir, "main.mlirb"))
	if err != nil {
		return nil, exitcode.Bad(err)
	}
	bd := &Bundle{Dir: dir, Metadata: md, Module: m, mapping: mapping}
	if md.QConv != nil && md.QConv.Contract == graph.HostPrefill.String() {
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

// Verify re-runs the gate on a bundle's shipped bytes against the checkpoint's fp32 reference.
// For a prefill companion it also checks that decoding after the companion equals decoding
// without it (the CompanionCheck is nil otherwise).
func Verify(b *Bundle, ck *hf.Checkpoint, prompts []oracle.GatePrompt, opt oracle.GateOptions) (*oracle.GateReport, *CompanionCheck, error) {
	if ck.Config.VocabSize != b.Metadata.Language.VocabSize {
		return nil, nil, exitcode.Badf("--reference %s: vocabulary %d, the bundle's is %d: not the checkpoint this bundle came from", ck.Dir, ck.Config.VocabSize, b.Metadata.Language.VocabSize)
	}
	ref, err := oracle.New(ck, oracle.Options{})
	if err != nil {
		return nil, nil, err
	}
	if prompts == nil {
		if prompts, err = DefaultPrompts(ck); err != nil {
			return nil, nil, err
		}
	}
	if b.Metadata.QConv != nil && b.Metadata.QConv.Contract != graph.Pipelined.String() {
		prompts = fitPrompts(prompts, graph.HostDecode, b.Metadata.Language.MaxContextLength, opt.Tokens)
	}
	if interp.IsStock(b.Module) {
		// Apple's contract, whoever wrote the bundle: the metadata is not consulted (stock.go).
		return GateStock(context.Background(), b.Module, ref, prompts, opt)
	}
	dec := b
	if b.Companion != nil {
		dec = b.Companion
	}
	rep, err := oracle.Gate(ref, func() (oracle.Candidate, error) {
		s, err := interp.NewSession(dec.Module, nil)
		if err != nil {
			return nil, err
		}
		return sessionCandidate{s}, nil
	}, prompts, opt)
	if err != nil || b.Companion == nil {
		return rep, nil, gateError(err)
	}
	cc, err := CheckCompanion(dec.Module, b.Module, prompts, opt.Tokens, opt.MinMargin, rep)
	if err != nil {
		return nil, nil, err
	}
	return rep, cc, nil
}
