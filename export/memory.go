package export

import (
	"io"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"qconv/internal/atomicfile"
)

// The memory model of a multi-bundle run (docs/performance.md). Every staged bundle stays mapped
// from its read-back until it is gated (the gate, the companion check and the resource reuse of
// later bundles read its bytes), and the checkpoint stays mapped for the whole run. File-backed
// pages a process has touched count in its RSS for as long as the mapping holds them, so without
// care the peak RSS is the checkpoint plus every bundle read so far. Instead:
//
//   - before a bundle is gated, every mapping is dropped from the process's resident set
//     (madvise MADV_DONTNEED: the pages stay in the page cache, a later read faults them back
//     in without I/O), so the gate holds the checkpoint, its own bundle (and, for the prefill
//     companion, its decode partner) and nothing else;
//   - the companion check does not read the reference: the checkpoint is dropped before it;
//   - a gated bundle that no later gate needs is unmapped (releaseUnneeded), and the heap the
//     gate's interpreters used is handed back to the OS at once;
//   - a twin (identical bytes) is copied file to file, never through the heap.
//
// Mappings are read-only views of files this run wrote and fsynced, and the checkpoint is
// read-only: dropping their pages never changes a byte, and nothing here touches publishing.

// dropResident drops a read-only shared file mapping's pages from the resident set.
func dropResident(b []byte) {
	if len(b) > 0 {
		_ = unix.Madvise(b, unix.MADV_DONTNEED) // advice only: failing to drop costs memory, not correctness
	}
}

// trimResident drops the pages of every staged bundle's mapping and of the checkpoint from the
// process's resident set, and returns the heap's free memory to the OS: the start of a phase
// that reads only what it faults back in.
func trimResident(opt Options, jobs []*job) {
	for _, o := range jobs {
		dropResident(o.mapping)
	}
	if opt.Checkpoint != nil {
		opt.Checkpoint.DropResident()
	}
	debug.FreeOSMemory()
}

// copyFileNew copies src to a new file dst (exclusive create, fsynced) without holding the
// content in memory: the kernel copies between the files (copy_file_range where it can).
func copyFileNew(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, atomicfile.FilePerm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// gateGCPercent is the heap growth over the live heap the collector allows while gates run
// (GOGC; the runtime's default is 100). A gate's heap is mostly pointer-free rows of logits and
// activations, cheap to collect, and the default lets garbage rows of earlier steps and prompts
// double the resident heap.
const gateGCPercent = 25

// tightenGC lowers the collector's target to gateGCPercent unless the user set GOGC, and
// returns the function that restores it.
func tightenGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(gateGCPercent)
	if old >= 0 && old < gateGCPercent {
		debug.SetGCPercent(old)
	}
	return func() { debug.SetGCPercent(old) }
}
