package interp

import (
	"container/heap"
	"fmt"
	"slices"

	"qconv/graph"
)

// Planning of time-batched feeding (feed.go; docs/numerics.md, "Time-batched feeding").
//
// A decode step reads its states once, works on them layer by layer and writes them back. The
// states are fused across layers along axis 0, so each state splits into sub-states, one per
// index of axis 0 (a layer's KV cache, conv window or recurrent state). The plan finds, for each
// sub-state, the region of steps that touch it: the slices that read it, the slice_updates that
// write it, the step producing the piece the final concat writes back, every step reading a value
// that still aliases the state's storage, and every step on a path between two of those (the
// convex closure, with the whole-state values cut so one layer's chain does not join the next
// layer's). Steps outside every region never see a state: they run for all frames of a chunk in
// program order, and a fused weight product among them runs tile by tile for all frames. A region
// runs frame after frame, frame t reading the sub-states as frame t-1 left them. The state arrays
// are updated in place: a KV chain is in place already, a concat-written state gets each piece
// copied into its index when the region has finished a frame.
//
// Anything the analysis does not understand is an error, and the session then steps token by
// token instead.

// feedPlan is how Feed runs a chunk of frames through a decode function.
type feedPlan struct {
	p     *interpPlan // the plan with steps in schedule order and buffers planned for that order
	nodes []feedNode
	// Values defined and used only inside one region: every frame uses the same storage for
	// them (a region runs frame after frame). sharedSlot maps such an op result to a storage
	// group (values of one group never live at once); sharedCopy marks slices whose copies
	// (when not contiguous) share storage.
	sharedSlot []int
	nShared    int
	sharedCopy []bool
	batched    int // fused weight products run once per weight tile for all frames
	inRegion   int // fused weight products inside regions (run frame by frame)
	regions    int
}

type feedNode struct {
	st     *interpStep   // a step run for every frame (nil for a region)
	batch  bool          // st is a fused weight product run tile by tile for all frames
	region []*interpStep // a region's steps in program order, run frame after frame
	pieces []feedPiece   // state pieces the region copies into its state after each frame
}

// feedPiece is a value a concat writes into axis-0 rows [off, off+extent) of a state.
type feedPiece struct {
	v      int
	handle string
	off    int64
}

// describe is a one-line summary of the plan (tests and benchmarks print it).
func (fp *feedPlan) describe() string {
	return fmt.Sprintf("%d regions, %d steps per frame, %d batched weight products, %d weight products inside regions",
		fp.regions, len(fp.p.steps), fp.batched, fp.inRegion)
}

// indexVector partially evaluates a rank-1 integer value: the known elements, and for each
// whether it is known. Constants and concats of such vectors along axis 0 are understood.
func (p *interpPlan) indexVector(vals []*graph.Value, v int, depth int) ([]int64, []bool) {
	if c := p.consts[v]; c != nil {
		if c.DType.IsFloat() || len(c.Shape) > 1 {
			return nil, nil
		}
		known := make([]bool, len(c.I))
		for i := range known {
			known[i] = true
		}
		return slices.Clone(c.I), known
	}
	val := vals[v]
	if val == nil || val.Type.Rank() != 1 || !val.Type.Static() || val.Type.DType.IsFloat() {
		return nil, nil
	}
	n := int(val.Type.Shape[0])
	out, known := make([]int64, n), make([]bool, n)
	if depth > 8 || val.Def == nil || val.Def.Name != graph.OpConcat {
		return out, known
	}
	ax := p.consts[p.index[val.Def.Operands[0]]]
	if ax == nil || len(ax.I) != 1 || (ax.I[0] != 0 && ax.I[0] != -1) {
		return out, known
	}
	at := 0
	for _, o := range val.Def.Operands[1:] {
		if o.Type.Rank() != 1 || !o.Type.Static() {
			return make([]int64, n), make([]bool, n)
		}
		pv, pk := p.indexVector(vals, p.index[o], depth+1)
		m := int(o.Type.Shape[0])
		if pv != nil && len(pv) == m {
			copy(out[at:], pv)
			copy(known[at:], pk)
		}
		at += m
	}
	if at != n {
		return make([]int64, n), make([]bool, n)
	}
	return out, known
}

// values lists p's graph values by index.
func (p *interpPlan) values() []*graph.Value {
	vals := make([]*graph.Value, len(p.kind))
	for v, i := range p.index {
		vals[i] = v
	}
	return vals
}

// axis0Range is the axis-0 rows [b, e) a slice or slice_update step addresses (begin, end and
// strides are operands k, k+1, k+2), when they are known at plan time.
func (p *interpPlan) axis0Range(vals []*graph.Value, st *interpStep, k int, rows int64) (int64, int64, error) {
	bv, bk := p.indexVector(vals, st.in[k], 0)
	ev, ek := p.indexVector(vals, st.in[k+1], 0)
	sv, sk := p.indexVector(vals, st.in[k+2], 0)
	if len(bk) == 0 || len(ek) == 0 || len(sk) == 0 || !bk[0] || !ek[0] || !sk[0] {
		return 0, 0, fmt.Errorf("op #%d %s: its axis-0 range is not known at plan time", st.pos, st.op.Name)
	}
	b, e, s := bv[0], ev[0], sv[0]
	if e == graph.SliceEnd {
		e = rows
	}
	if s != 1 || b < 0 || e <= b || e > rows {
		return 0, 0, fmt.Errorf("op #%d %s: axis-0 range [%d, %d) stride %d of %d rows", st.pos, st.op.Name, b, e, s, rows)
	}
	return b, e, nil
}

// unionFind over sub-state keys.
type unionFind []int

func (u unionFind) find(x int) int {
	for u[x] != x {
		u[x] = u[u[x]]
		x = u[x]
	}
	return x
}

func (u unionFind) union(a, b int) bool {
	a, b = u.find(a), u.find(b)
	if a == b {
		return false
	}
	u[b] = a
	return true
}

// planFeed plans time-batched feeding of p (a function with state handles), or says why it
// cannot. f16Acc: fp16 weight products accumulate in fp16 (not batched).
func planFeed(p *interpPlan, f16Acc bool) (*feedPlan, error) {
	f := p.fn
	nv, ns := len(p.kind), len(p.steps)
	vals := p.values()
	stepOf := make([]int, nv)
	for i := range stepOf {
		stepOf[i] = -1
	}
	for si, st := range p.steps {
		for _, o := range st.out {
			stepOf[o] = si
		}
	}
	type use struct{ s, k int }
	users := make([][]use, nv)
	dataOperand := func(st *interpStep, k int) bool {
		switch st.op.Name {
		case graph.OpReadHandle, graph.OpWriteHandle:
			if k == 0 {
				return false
			}
		}
		return st.w == nil || k == activationOperand(st.op.Name)
	}
	for si, st := range p.steps {
		for k, j := range st.in {
			if dataOperand(st, k) {
				users[j] = append(users[j], use{si, k})
			}
		}
	}

	// Handles, their single read and write, and the whole-state values (the read value and the
	// slice_update chain on it).
	whole := make([]int, nv) // handle argument index + 1, 0: not a whole-state value
	final := make([]bool, ns)
	base := map[int]int{} // handle arg -> first sub-state key
	rows := map[int]int64{}
	nkeys := 0
	type access struct {
		s    int
		h    int
		b, e int64
	}
	var accesses []access
	var pieces []feedPiece
	pieceStep := map[int]access{}
	if len(p.handles) == 0 {
		return nil, fmt.Errorf("@%s has no states", f.Name)
	}
	for _, h := range p.handles {
		name := f.Args[h.arg].Name
		t := f.Args[h.arg].Value.Type
		if t.Rank() < 1 || t.Shape[0] == graph.Dyn || t.Shape[0] < 1 {
			return nil, fmt.Errorf("state %q %s: axis 0 is not a static size", name, t)
		}
		rows[h.arg], base[h.arg] = t.Shape[0], nkeys
		nkeys += int(t.Shape[0])
		var reads, writes []int
		for si, st := range p.steps {
			if (st.op.Name == graph.OpReadHandle || st.op.Name == graph.OpWriteHandle) && st.in[0] == h.arg {
				if st.op.Name == graph.OpReadHandle {
					reads = append(reads, si)
				} else {
					writes = append(writes, si)
				}
			}
		}
		if len(reads) != 1 || len(writes) != 1 || reads[0] > writes[0] {
			return nil, fmt.Errorf("state %q is read %d and written %d times, want one read before one write", name, len(reads), len(writes))
		}
		ws := writes[0]
		final[ws] = true
		queue := []int{p.steps[reads[0]].out[0]}
		whole[queue[0]] = h.arg + 1
		tip, chain := -1, 0
		for len(queue) > 0 {
			v := queue[0]
			queue = queue[1:]
			chained := 0
			for _, u := range users[v] {
				st := p.steps[u.s]
				switch {
				case st.op.Name == graph.OpSlice && u.k == 0:
					b, e, err := p.axis0Range(vals, st, 1, t.Shape[0])
					if err != nil {
						return nil, fmt.Errorf("state %q: %v", name, err)
					}
					accesses = append(accesses, access{u.s, h.arg, b, e})
				case st.op.Name == graph.OpSliceUpdate && u.k == 0:
					b, e, err := p.axis0Range(vals, st, 2, t.Shape[0])
					if err != nil {
						return nil, fmt.Errorf("state %q: %v", name, err)
					}
					if !st.inPlace || p.root[st.out[0]] != h.arg {
						return nil, fmt.Errorf("state %q: op #%d slice_update is not in place", name, st.pos)
					}
					accesses = append(accesses, access{u.s, h.arg, b, e})
					whole[st.out[0]] = h.arg + 1
					queue = append(queue, st.out[0])
					chained++
					chain++
				case u.s == ws && u.k == 1:
					tip = v
				default:
					return nil, fmt.Errorf("state %q: op #%d %s uses the whole state", name, st.pos, st.op.Name)
				}
			}
			if chained > 1 {
				return nil, fmt.Errorf("state %q: the slice_update chain branches", name)
			}
		}
		written := p.steps[ws].in[1]
		switch {
		case tip >= 0:
			if tip != written || p.root[tip] != h.arg || !p.exact[tip] {
				return nil, fmt.Errorf("state %q: the value written back is not the state updated in place", name)
			}
		default:
			// The value written back is a concat along axis 0 of pieces.
			cs := stepOf[written]
			if cs < 0 || p.steps[cs].op.Name != graph.OpConcat || len(users[written]) != 1 {
				return nil, fmt.Errorf("state %q: the value written back is neither the updated state nor a concat used once", name)
			}
			if chain > 0 {
				return nil, fmt.Errorf("state %q: updated in place and also written back by a concat", name)
			}
			cst := p.steps[cs]
			ax := p.consts[cst.in[0]]
			if ax == nil || len(ax.I) != 1 || ax.I[0] != 0 && ax.I[0] != -int64(t.Rank()) {
				return nil, fmt.Errorf("state %q: the concat written back is not along axis 0", name)
			}
			final[cs] = true
			off := int64(0)
			for _, pv := range cst.in[1:] {
				vt := vals[pv].Type
				if !vt.Static() || vt.Rank() != t.Rank() || !slices.Equal(vt.Shape[1:], t.Shape[1:]) || vt.DType != t.DType {
					return nil, fmt.Errorf("state %q: piece %s does not match the state %s", name, vt, t)
				}
				ps := stepOf[pv]
				if ps < 0 || whole[pv] != 0 || p.kind[pv] == vConst {
					return nil, fmt.Errorf("state %q: a piece written back is not computed by a step", name)
				}
				if ps < reads[0] {
					return nil, fmt.Errorf("state %q: a piece is computed before the state is read", name)
				}
				a := access{ps, h.arg, off, off + vt.Shape[0]}
				accesses = append(accesses, a)
				pieceStep[pv] = a
				pieces = append(pieces, feedPiece{v: pv, handle: name, off: off})
				off += vt.Shape[0]
			}
			if off != t.Shape[0] {
				return nil, fmt.Errorf("state %q: the pieces written back cover %d of %d rows", name, off, t.Shape[0])
			}
		}
	}
	for _, r := range f.Results {
		v := p.index[r.Value]
		if r.Value.Type.Kind == graph.TensorKind && (whole[v] != 0 || p.kind[p.root[v]] == vHandle) {
			return nil, fmt.Errorf("result %q aliases a state", r.Name)
		}
	}
	// Sub-state classes: an access of several rows joins them.
	uf := make(unionFind, nkeys)
	for i := range uf {
		uf[i] = i
	}
	member := make([]int, ns) // a key of the step's class, -1: none
	for i := range member {
		member[i] = -1
	}
	join := func(s, key int) bool {
		if member[s] < 0 {
			member[s] = key
			return true
		}
		return uf.union(member[s], key)
	}
	for _, a := range accesses {
		k0 := base[a.h] + int(a.b)
		for i := a.b + 1; i < a.e; i++ {
			uf.union(k0, base[a.h]+int(i))
		}
		join(a.s, k0)
	}
	// Values aliasing a state's storage, by the class of the rows they alias.
	aliasKey := make([]int, nv)
	for i := range aliasKey {
		aliasKey[i] = -1
	}
	for _, a := range accesses {
		st := p.steps[a.s]
		if st.op.Name == graph.OpSlice && whole[st.in[0]] != 0 {
			aliasKey[st.out[0]] = base[a.h] + int(a.b)
		}
	}
	for _, st := range p.steps {
		o := st.out
		if len(o) != 1 || aliasKey[o[0]] >= 0 || whole[o[0]] != 0 || p.kind[p.root[o[0]]] != vHandle {
			continue
		}
		if (isView(st.op.Name) || st.op.Name == graph.OpSlice) && aliasKey[st.in[0]] >= 0 {
			aliasKey[o[0]] = aliasKey[st.in[0]]
			continue
		}
		return nil, fmt.Errorf("op #%d %s: its result aliases a state in a way the plan does not follow", st.pos, st.op.Name)
	}

	// Regions: the classes' steps, the steps reading aliasing values, and the convex closure,
	// until nothing changes.
	edge := func(j int) bool { return stepOf[j] >= 0 && whole[j] == 0 }
	desc := make([]int, ns)
	anc := make([]int, ns)
	stamp := 0
	for changed := true; changed; {
		changed = false
		for si, st := range p.steps {
			if final[si] {
				continue
			}
			for k, j := range st.in {
				if dataOperand(st, k) && aliasKey[j] >= 0 && join(si, aliasKey[j]) {
					changed = true
				}
			}
		}
		classes := map[int][]int{}
		for si, m := range member {
			if m >= 0 {
				c := uf.find(m)
				classes[c] = append(classes[c], si)
			}
		}
		keys := make([]int, 0, len(classes))
		for c := range classes {
			keys = append(keys, c)
		}
		slices.Sort(keys)
		for _, c := range keys {
			ss := classes[c]
			stamp++
			lo, hi := ss[0], ss[len(ss)-1]
			for _, s := range ss {
				desc[s] = stamp
			}
			for si := lo; si <= hi; si++ {
				if desc[si] == stamp {
					continue
				}
				st := p.steps[si]
				for k, j := range st.in {
					if dataOperand(st, k) && edge(j) && desc[stepOf[j]] == stamp {
						desc[si] = stamp
						break
					}
				}
			}
			for _, s := range ss {
				anc[s] = stamp
			}
			for si := hi; si >= lo; si-- {
				if anc[si] != stamp || final[si] {
					continue
				}
				st := p.steps[si]
				for k, j := range st.in {
					if dataOperand(st, k) && edge(j) {
						anc[stepOf[j]] = stamp
					}
				}
			}
			for si := lo; si <= hi; si++ {
				if desc[si] == stamp && anc[si] == stamp && !final[si] {
					if member[si] < 0 || uf.find(member[si]) != c {
						join(si, c)
						changed = true
					}
				}
			}
		}
	}

	// Schedule: regions and the other steps as nodes of a DAG ordered by the data flow, ties
	// broken by program order.
	nodeOf := make([]int, ns)
	classNode := map[int]int{}
	type node struct {
		steps []int
		deps  map[int]bool
	}
	var nodes []*node
	for si := range p.steps {
		if final[si] {
			nodeOf[si] = -1
			continue
		}
		if m := member[si]; m >= 0 {
			c := uf.find(m)
			n, ok := classNode[c]
			if !ok {
				n = len(nodes)
				classNode[c] = n
				nodes = append(nodes, &node{deps: map[int]bool{}})
			}
			nodes[n].steps = append(nodes[n].steps, si)
			nodeOf[si] = n
			continue
		}
		nodeOf[si] = len(nodes)
		nodes = append(nodes, &node{steps: []int{si}, deps: map[int]bool{}})
	}
	for si, st := range p.steps {
		if final[si] {
			continue
		}
		for _, j := range st.in {
			if d := stepOf[j]; d >= 0 && nodeOf[d] >= 0 && nodeOf[d] != nodeOf[si] {
				nodes[nodeOf[si]].deps[nodeOf[d]] = true
			}
		}
	}
	indeg := make([]int, len(nodes))
	out := make([][]int, len(nodes))
	for n, nd := range nodes {
		for d := range nd.deps {
			indeg[n]++
			out[d] = append(out[d], n)
		}
	}
	first := func(n int) int { return nodes[n].steps[0] }
	h := &nodeHeap{less: func(a, b int) bool { return first(a) < first(b) }}
	for n := range nodes {
		if indeg[n] == 0 {
			heap.Push(h, n)
		}
	}
	fp := &feedPlan{sharedSlot: make([]int, nv), sharedCopy: make([]bool, nv)}
	for i := range fp.sharedSlot {
		fp.sharedSlot[i] = -1
	}
	var order []*interpStep
	regionEnd := map[int]int{} // region node -> index of its last step in order
	for h.Len() > 0 {
		n := heap.Pop(h).(int)
		nd := nodes[n]
		if member[nd.steps[0]] >= 0 {
			fn := feedNode{}
			for _, si := range nd.steps {
				fn.region = append(fn.region, p.steps[si])
				order = append(order, p.steps[si])
				if p.steps[si].w != nil && p.steps[si].op.Name == graph.OpMatmul {
					fp.inRegion++
				}
			}
			regionEnd[len(fp.nodes)] = len(order) - 1
			fp.nodes = append(fp.nodes, fn)
			fp.regions++
		} else {
			st := p.steps[nd.steps[0]]
			batch := st.op.Name == graph.OpMatmul && st.w != nil && !(f16Acc && st.op.Results[0].Type.DType == graph.F16)
			if batch {
				fp.batched++
			}
			fp.nodes = append(fp.nodes, feedNode{st: st, batch: batch})
			order = append(order, st)
		}
		for _, m := range out[n] {
			indeg[m]--
			if indeg[m] == 0 {
				heap.Push(h, m)
			}
		}
	}
	if len(fp.nodes) != len(nodes) {
		return nil, fmt.Errorf("the state regions depend on each other in a cycle")
	}
	// Pieces go with the region computing them.
	for ni := range fp.nodes {
		fn := &fp.nodes[ni]
		for _, st := range fn.region {
			for _, pc := range pieces {
				if stepOf[pc.v] >= 0 && p.steps[stepOf[pc.v]] == st {
					fn.pieces = append(fn.pieces, pc)
				}
			}
		}
	}

	// The plan in schedule order, its buffers planned for that order. A piece lives to the end
	// of its region (it is copied into its state there).
	q := *p
	q.steps = order
	u := q.usage()
	pos := map[*interpStep]int{}
	for i, st := range order {
		pos[st] = i
	}
	for ni, fn := range fp.nodes {
		for _, pc := range fn.pieces {
			u.lastUse[pc.v] = max(u.lastUse[pc.v], regionEnd[ni])
		}
	}
	q.planBuffers(u)
	// Values defined and used only inside one region share storage across frames: op results
	// by buffer id (own storage when they have none), slice copies by value.
	group := map[int]int{}
	for _, fn := range fp.nodes {
		if fn.region == nil {
			continue
		}
		in := map[*interpStep]bool{}
		for _, st := range fn.region {
			in[st] = true
		}
		for _, st := range fn.region {
			for _, o := range st.out {
				// o and every value that may alias its storage (views, slices and in-place
				// updates of it, transitively) must be used inside the region only.
				ok := true
				for stack := []int{o}; ok && len(stack) > 0; {
					x := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					ok = !u.isOut[x] && len(u.writes[x]) == 0
					for _, us := range users[x] {
						ust := p.steps[us.s]
						ok = ok && in[ust]
						if us.k == 0 && (isView(ust.op.Name) || ust.op.Name == graph.OpSlice || ust.inPlace) {
							stack = append(stack, ust.out[0])
						}
					}
				}
				switch {
				case !ok:
				case st.op.Name == graph.OpSlice:
					fp.sharedCopy[o] = true
				case p.kind[o] == vSlot && p.root[o] == o:
					id := q.buf[o]
					if id < 0 {
						fp.sharedSlot[o] = fp.nShared
						fp.nShared++
						continue
					}
					g, seen := group[id]
					if !seen {
						g = fp.nShared
						group[id] = g
						fp.nShared++
					}
					fp.sharedSlot[o] = g
					q.buf[o] = -1
				}
			}
		}
	}
	fp.p = &q
	return fp, nil
}

// nodeHeap is a min-heap of node numbers.
type nodeHeap struct {
	n    []int
	less func(a, b int) bool
}

func (h *nodeHeap) Len() int           { return len(h.n) }
func (h *nodeHeap) Less(i, j int) bool { return h.less(h.n[i], h.n[j]) }
func (h *nodeHeap) Swap(i, j int)      { h.n[i], h.n[j] = h.n[j], h.n[i] }
func (h *nodeHeap) Push(x any)         { h.n = append(h.n, x.(int)) }
func (h *nodeHeap) Pop() any {
	x := h.n[len(h.n)-1]
	h.n = h.n[:len(h.n)-1]
	return x
}
