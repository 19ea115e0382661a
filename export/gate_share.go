package export

import (
	"qconv/graph"
	"qconv/oracle"
)

// gateSharing lets the gates of one run share the reference's trajectories (shareReference).
// Tests turn it off to show the gate reports and bundles are the same bytes without it.
var gateSharing = true

// sharedGates, when set (tests), is told what the shared trajectories did once the gates are done.
var sharedGates func(oracle.SharingStats)

// shareReference makes the gates of a run share the fp32 reference's trajectories when two or
// more of its jobs run a gate of their own (not a twin, whose verdict is copied, nor a prefill
// companion, judged by its decode partner's report): the first gate computes each prompt's
// reference pass and spills its rows to a temporary file, later gates on the same prompt ids
// read them back instead of running the reference again (oracle.Model.ShareTrajectories). A
// prompt set trimmed otherwise for one bundle's context simply shares the prompts it has in
// common. When the spill file cannot be created every gate runs its own reference, as a
// single-gate run always does; the reports are the same either way. The returned function ends
// the sharing and closes the file.
func shareReference(ref *oracle.Model, jobs []*job) func() {
	gates := 0
	for _, j := range jobs {
		if j.twin == nil && j.contract != graph.HostPrefill {
			gates++
		}
	}
	if ref == nil || !gateSharing || gates < 2 || ref.ShareTrajectories() != nil {
		return func() {}
	}
	return func() {
		if sharedGates != nil {
			sharedGates(ref.SharingStats())
		}
		ref.ReleaseTrajectories()
	}
}
