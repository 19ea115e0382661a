// Package gating holds the checks beside oracle's gate that need a graph to run: the prefill
// companion check, the stock entrypoint check, the gate run on a graph session, and Verify, which
// re-gates a published bundle's own bytes against the fp32 reference (docs/gate.md). oracle does
// not import graph; this package joins them.
package gating

import (
	"context"
	"fmt"
	"qconv/bundle"
	"qconv/graph"
	"qconv/graph/interp"
	"qconv/hf"
	"qconv/internal/exitcode"
	"qconv/oracle"
)

// Verify re-runs the gate on a bundle's shipped bytes against the checkpoint's fp32 reference.
// For a prefill companion it also checks that decoding after the companion equals decoding
// without it (the CompanionCheck is nil otherwise). prompts are the recorded ones or the
// defaults (export.DefaultPrompts): the caller chooses.
func Verify(b *bundle.Bundle, ck *hf.Checkpoint, prompts []oracle.GatePrompt, opt oracle.GateOptions) (*oracle.GateReport, *bundle.CompanionCheck, error) {
	if ck.Config.VocabSize != b.Metadata.Language.VocabSize {
		return nil, nil, exitcode.Badf("--reference %s: vocabulary %d, the bundle's is %d: not the checkpoint this bundle came from", ck.Dir, ck.Config.VocabSize, b.Metadata.Language.VocabSize)
	}
	if err := checkForeignRunnable(b); err != nil {
		return nil, nil, err
	}
	ref, err := oracle.New(ck, oracle.Options{})
	if err != nil {
		return nil, nil, err
	}
	if len(prompts) == 0 {
		return nil, nil, fmt.Errorf("verify: no gate prompts (the caller passes the recorded ones or the defaults)")
	}
	if b.Metadata.QConv != nil && b.Metadata.QConv.Contract != graph.Pipelined {
		prompts = FitPrompts(prompts, graph.HostDecode, b.Metadata.Language.MaxContextLength, opt.Tokens)
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
		return SessionCandidate(s), nil
	}, prompts, opt)
	if err != nil || b.Companion == nil {
		return rep, nil, GateError(err)
	}
	cc, err := CheckCompanion(dec.Module, b.Module, prompts, opt, rep)
	if err != nil {
		return nil, nil, err
	}
	return rep, cc, nil
}

// GateError classifies an error from oracle.Gate: prompts too weak for the checkpoint are bad
// input (exit 2), not a failed gate and not our bug.
func GateError(err error) error {
	if oracle.IsWeakPrompts(err) {
		return exitcode.Bad(err)
	}
	return err
}
