package export

import (
	"context"
	"qconv/bundle"
	"qconv/graph"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/oracle"
)

// Verify re-runs the gate on a bundle's shipped bytes against the checkpoint's fp32 reference.
// For a prefill companion it also checks that decoding after the companion equals decoding
// without it (the CompanionCheck is nil otherwise).
func Verify(b *bundle.Bundle, ck *hf.Checkpoint, prompts []oracle.GatePrompt, opt oracle.GateOptions) (*oracle.GateReport, *bundle.CompanionCheck, error) {
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
	if graph.IsStock(b.Module) {
		// Apple's contract, whoever wrote the bundle: the metadata is not consulted (stock.go).
		return GateStock(context.Background(), b.Module, ref, prompts, opt)
	}
	dec := b
	if b.Companion != nil {
		dec = b.Companion
	}
	rep, err := oracle.Gate(ref, func() (oracle.Candidate, error) {
		s, err := graph.NewSession(dec.Module, nil)
		if err != nil {
			return nil, err
		}
		return sessionCandidate{s}, nil
	}, prompts, opt)
	if err != nil || b.Companion == nil {
		return rep, nil, err
	}
	cc, err := CheckCompanion(dec.Module, b.Module, prompts, opt.Tokens, opt.MinMargin, rep)
	if err != nil {
		return nil, nil, err
	}
	return rep, cc, nil
}
