package gating

import (
	"qconv/bundle"
	"qconv/graph/interp"
	"qconv/internal/exitcode"
)

// checkForeignRunnable plans every entrypoint of a bundle another tool wrote (no qconv block in
// its metadata) before the gate runs: an op, composite declaration or type qconv's interpreter
// does not run is then the bundle's limit, not qconv's bug, and is refused with exit 2 naming it
// (docs/verify-foreign.md). A qconv bundle is not checked here: there it would be a bug.
func checkForeignRunnable(b *bundle.Bundle) error {
	if b.Metadata.QConv != nil {
		return nil
	}
	for _, f := range b.Module.Funcs {
		if f.Private {
			continue
		}
		if _, err := interp.New(b.Module, f.Name); err != nil {
			return exitcode.Badf("%s: qconv cannot gate this bundle: %v (docs/verify-foreign.md lists what qconv runs)", b.Dir, err)
		}
	}
	return nil
}
