package mlir

import "qconv/graph"

// Skipping what qconv's IR does not represent: the regions of an op inside a composite body that
// is read opaque (graph.Func.Opaque), and the body's ops after it. Every index is still checked
// against the input and values are numbered as the MLIR reader numbers them, so a corrupt body is
// an error, never a panic.

// skipRegions skips n regions of an op encoded inline in c (the op is not isolated from above):
// each region is its block count, its value count, then its blocks.
func (r *bcReader) skipRegions(c *cursor, scope *valueScope, n int) error {
	for ; n > 0; n-- {
		nBlocks, err := c.varint()
		if err != nil {
			return err
		}
		if nBlocks == 0 {
			continue
		}
		if nBlocks > uint64(c.left()) {
			return c.errf("region with %d blocks exceeds the data left", nBlocks)
		}
		numValues, err := c.count("value", 1)
		if err != nil {
			return err
		}
		first := len(scope.values)
		scope.values = append(scope.values, make([]*graph.Value, numValues)...)
		for b := uint64(0); b < nBlocks; b++ {
			nOps, hasArgs, err := blockHeader(c)
			if err != nil {
				return err
			}
			if hasArgs {
				args, err := c.count("block argument", 1)
				if err != nil {
					return err
				}
				for k := 0; k < args; k++ {
					v, err := c.varint()
					if err != nil {
						return err
					}
					if v>>1 >= uint64(len(r.types)) {
						return c.errf("type index %d out of range", v>>1)
					}
					if v&1 == 1 {
						if _, err := r.attrRef(c); err != nil {
							return err
						}
					}
				}
				useLists, err := c.byte1()
				if err != nil {
					return err
				}
				if useLists != 0 {
					if err := skipUseLists(c, args); err != nil {
						return err
					}
				}
			}
			if err := r.skipOps(c, scope, nOps); err != nil {
				return err
			}
		}
		scope.values = scope.values[:first]
	}
	return nil
}

// skipOps skips n ops of a block, with their regions.
func (r *bcReader) skipOps(c *cursor, scope *valueScope, n int) error {
	for ; n > 0; n-- {
		o, err := r.readOp(c, scope)
		if err != nil {
			return err
		}
		if err := r.skipOpRegions(c, scope, o); err != nil {
			return err
		}
	}
	return nil
}

// skipOpRegions skips the regions of o, read without them: a nested IR section when o is
// isolated, else inline.
func (r *bcReader) skipOpRegions(c *cursor, scope *valueScope, o *bcOp) error {
	if o.regions == 0 {
		return nil
	}
	if o.isolated {
		_, err := r.regionReader(c, o)
		return err
	}
	return r.skipRegions(c, scope, o.regions)
}
