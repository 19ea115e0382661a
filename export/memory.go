package export

import (
	"io"
	"os"
	"runtime/debug"
	"slices"

	"golang.org/x/sys/unix"

	"qconv/graph"
	"qconv/internal/atomicfile"
)

// The memory model of a multi-bundle run (docs/performance.md). Every staged bundle stays mapped
// from its read-back until it is gated (the gate, the companion check and the resource reuse of
// later bundles read its bytes), and the checkpoint stays mapped for the whole run. File-backed
// pages a process has touched count in its RSS for as long as the mapping holds them, so without
// care the peak RSS is the checkpoint plus every bundle read so far. Instead:
//
//   - after each write, the staged bundles' pages are dropped from the process's resident set
//     (madvise MADV_DONTNEED: the pages stay in the page cache, a later read faults them back
//     in without I/O); the checkpoint stays, the next write reads it again;
//   - before a gate, every mapping but the gated bundle's (and, for the prefill companion, its
//     decode partner's) is dropped, and the gated one is populated in one call (cheaper than a
//     page fault per 4 KiB, which the gate would take anyway);
//   - the companion check does not read the reference: the checkpoint is dropped before it;
//   - a gated bundle that no later gate needs is unmapped (releaseUnneeded), and the heap the
//     gate's interpreters used is handed back to the OS at once;
//   - a twin (identical bytes) is copied file to file, never through the heap.
//
// Mappings are read-only views of files this run wrote and fsynced, and the checkpoint is
// read-only: dropping or populating their pages never changes a byte, and nothing here touches
// staging or publishing.

// dropResident drops a read-only shared file mapping's pages from the resident set.
func dropResident(b []byte) {
	if len(b) > 0 {
		_ = unix.Madvise(b, unix.MADV_DONTNEED) // advice only: failing to drop costs memory, not correctness
	}
}

// populate maps in a read-only file mapping's pages in one call where the kernel can
// (MADV_POPULATE_READ, Linux 5.14); elsewhere the reader faults them in as before.
func populate(b []byte) {
	if len(b) > 0 {
		_ = unix.Madvise(b, unix.MADV_POPULATE_READ)
	}
}

// dropStaged drops every staged bundle's pages from the resident set, except keep's.
func dropStaged(jobs []*job, keep ...*job) {
	for _, o := range jobs {
		if !slices.Contains(keep, o) {
			dropResident(o.mapping)
		}
	}
}

// residentForGate leaves resident what j's gate reads: the checkpoint (for the reference) and
// j's bundle, or, for a prefill companion, the two ios-gpu bundles and not the checkpoint. The
// heap's free memory goes back to the OS.
func residentForGate(opt Options, jobs []*job, j *job) {
	keep := []*job{j}
	if j.contract == graph.HostPrefill && j.partner != nil {
		keep = append(keep, j.partner)
		if opt.Checkpoint != nil {
			opt.Checkpoint.DropResident()
		}
	}
	dropStaged(jobs, keep...)
	debug.FreeOSMemory()
	for _, k := range keep {
		populate(k.mapping)
	}
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

// tightGCParams is the checkpoint size (parameters) from which gates run under gateGCPercent.
// Below it the heap a gate holds is small (its rows are vocabulary-wide, and small checkpoints
// have small vocabularies), and the runtime's minimum heap target, which shrinks with GOGC, only
// makes the collector run more often: the trained fixture's `--target all` took 8% longer under
// GOGC 25 (5.37 s against 4.96 s, same session).
const tightGCParams = 100_000_000

// tightenGC lowers the collector's target to gateGCPercent for a checkpoint of params parameters
// (from tightGCParams on) unless the user set GOGC, and returns the function that restores it.
func tightenGC(params int64) (restore func()) {
	if os.Getenv("GOGC") != "" || params < tightGCParams {
		return func() {}
	}
	old := debug.SetGCPercent(gateGCPercent)
	if old >= 0 && old < gateGCPercent {
		debug.SetGCPercent(old)
	}
	return func() { debug.SetGCPercent(old) }
}
