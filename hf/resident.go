package hf

import "golang.org/x/sys/unix"

// DropResident tells the kernel the process no longer needs the checkpoint's mapped pages
// resident (madvise MADV_DONTNEED on the read-only shared mappings). The pages leave the
// process's RSS but stay in the page cache, so the next read of a tensor faults them back in
// without I/O; tensors and their bytes stay valid. A caller that is done with the weights for a
// while (a multi-bundle export between its phases) uses it to keep its peak RSS down.
func (c *Checkpoint) DropResident() {
	for _, s := range c.shards {
		if len(s.data) > 0 {
			_ = unix.Madvise(s.data, unix.MADV_DONTNEED) // advice only: failing to drop costs memory, not correctness
		}
	}
}
