package interp

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"qconv/graph"
	"qconv/internal/kernels"
)

// Time-batched teacher-forced feeding: a chunk of tokens runs through the decode function as
// frames in lockstep, so a weight is read once per chunk instead of once per token, with every
// result bit-identical to stepping token by token (feed_plan.go; docs/numerics.md).

// FeedChunk is how many tokens Feed runs together. The logits of a chunk are held at once (a
// chunk of 32 at Qwen3.5's 248320-token vocabulary is 32 MB of float32).
var FeedChunk = 32

// feedTileBytes bounds the decoded (float32) bytes of one tile of a batched product's weight
// rows, so the tile stays in the core's cache while every frame of the chunk is multiplied by it.
const feedTileBytes = 128 << 10

// feedL1Floats is how many decoded weight values a batched product keeps in the L1 cache while
// it dots them with every frame (16 KB).
const feedL1Floats = 4096

// feedState is a session's batched-feeding machinery, planned on first use.
type feedState struct {
	planned bool
	fd      *feeder
	err     error // why Feed steps token by token instead
}

// feeder runs chunks of frames through one planned function.
type feeder struct {
	fp       *feedPlan
	it       *Interpreter // owner of the frames' buffers: the session's (fp16-accumulate cache) or a private one
	parallel bool         // steps outside the regions run on two goroutines
	frames   []*interpFrame
	shared   []*Array
	copies   map[int]*Array
	subs     map[*interpPlan]*interpFrame
	ramp     []int64
	ids      []*Array
	pos      []*Array
	in       []map[string]*Array
	// frameInputs, when set, adds or replaces a frame's inputs for the token at position pos
	// (the host-cache function's position and mask, feed_host.go).
	frameInputs func(in map[string]*Array, pos int)

	exact      map[*fusedWeight]bool // dotRowsExact's verdicts
	bufs       [][]float32           // decoded tiles, one per worker
	tilePasses atomic.Int64          // weight tiles read by batched products (tests)
}

func (fs *feedState) feeder(it *Interpreter, f16Acc bool) *feeder {
	if !fs.planned {
		fs.planned = true
		fp, err := planFeed(it.plan, f16Acc)
		if err != nil {
			fs.err = err
			return nil
		}
		fs.fd = &feeder{fp: fp, it: it, shared: make([]*Array, fp.nShared), copies: map[int]*Array{},
			subs: map[*interpPlan]*interpFrame{}}
		if !f16Acc && runtime.GOMAXPROCS(0) > 1 {
			// Frames get an interpreter of their own (no spare buffers to share between
			// goroutines) and the steps outside the regions run on two goroutines.
			fs.fd.it, fs.fd.parallel = &Interpreter{produced: map[*Array]bool{}}, true
		}
	}
	return fs.fd
}

func (fd *feeder) frame(t int) *interpFrame {
	for len(fd.frames) <= t {
		fr := fd.fp.p.newFrame(fd.it)
		fr.subs = fd.subs // invocations run one at a time and copy their results out
		for v, g := range fd.fp.sharedSlot {
			if g < 0 {
				continue
			}
			if fd.shared[g] == nil {
				fd.shared[g] = &Array{}
			}
			fr.slots[v] = fd.shared[g]
		}
		for v, ok := range fd.fp.sharedCopy {
			if !ok {
				continue
			}
			if fd.copies[v] == nil {
				fd.copies[v] = &Array{}
			}
			fr.copies[v] = fd.copies[v]
		}
		fd.frames = append(fd.frames, fr)
	}
	return fd.frames[t]
}

// run feeds ids as frames from position pos (input_ids [1,1], position_ids [1, pos+t+1] for
// frame t) with the states map updated in place, and returns the logits array of each frame
// (valid until the next run).
func (fd *feeder) run(ids []int, pos int, states map[string]*Array) ([]*Array, error) {
	p := fd.fp.p
	f := p.fn
	T := len(ids)
	for len(fd.ramp) < pos+T {
		fd.ramp = append(fd.ramp, int64(len(fd.ramp)))
	}
	for len(fd.ids) < T {
		fd.ids = append(fd.ids, NewArray(graph.SI32, 1, 1))
		fd.pos = append(fd.pos, &Array{DType: graph.SI32, Shape: []int64{1, 0}})
		fd.in = append(fd.in, map[string]*Array{})
	}
	frames := make([]*interpFrame, T)
	for t := range frames {
		fr := fd.frame(t)
		frames[t] = fr
		fd.ids[t].I[0] = int64(ids[t])
		fd.pos[t].Shape[1], fd.pos[t].I = int64(pos+t+1), fd.ramp[:pos+t+1]
		in := fd.in[t]
		in[graph.InInputIDs], in[graph.InPositionIDs] = fd.ids[t], fd.pos[t]
		if fd.frameInputs != nil {
			fd.frameInputs(in, pos+t)
		}
		for i, a := range f.Args {
			switch a.Value.Type.Kind {
			case graph.HandleKind:
				st, ok := states[a.Name]
				if !ok || st == nil {
					return nil, fmt.Errorf("@%s: state %q is missing", f.Name, a.Name)
				}
				if err := st.check(a.Value.Type); err != nil {
					return nil, fmt.Errorf("@%s: state %q %v", f.Name, a.Name, err)
				}
			case graph.TensorKind:
				x, ok := in[a.Name]
				if !ok {
					return nil, fmt.Errorf("@%s: input %q is missing", f.Name, a.Name)
				}
				if err := x.check(a.Value.Type); err != nil {
					return nil, fmt.Errorf("@%s: input %q %v", f.Name, a.Name, err)
				}
				fr.vals[i] = x
			default:
				return nil, fmt.Errorf("@%s: argument %q of type %s cannot be passed", f.Name, a.Name, a.Value.Type)
			}
		}
		fr.states = states
	}
	defer func() {
		for _, fr := range frames {
			fr.states = nil
		}
	}()
	for _, n := range fd.fp.nodes {
		switch {
		case n.region != nil:
			for _, fr := range frames {
				for _, st := range n.region {
					if err := execChecked(fr, st); err != nil {
						return nil, err
					}
				}
				for _, pc := range n.pieces {
					if err := putPiece(states[pc.handle], pc.off, fr.vals[pc.v]); err != nil {
						return nil, fmt.Errorf("@%s: state %q: %v", f.Name, pc.handle, err)
					}
				}
			}
		case n.batch:
			if err := fd.batchedProduct(frames, n.st); err != nil {
				return nil, err
			}
		case fd.parallel && len(frames) > 1 && n.st.op.Name != graph.OpInvoke && n.st.w == nil:
			// Frames are independent outside the regions: two goroutines share them. Steps that
			// touch shared machinery (invocations share callee frames, fused products the
			// fp16-accumulate cache) stay on one goroutine.
			half := len(frames) / 2
			var wg sync.WaitGroup
			var err2 error
			wg.Go(func() {
				for _, fr := range frames[half:] {
					if err2 = execChecked(fr, n.st); err2 != nil {
						return
					}
				}
			})
			var err error
			for _, fr := range frames[:half] {
				if err = execChecked(fr, n.st); err != nil {
					break
				}
			}
			wg.Wait()
			if err != nil {
				return nil, err
			}
			if err2 != nil {
				return nil, err2
			}
		default:
			for _, fr := range frames {
				if err := execChecked(fr, n.st); err != nil {
					return nil, err
				}
			}
		}
	}
	li := p.index[f.Result(graph.OutLogits).Value]
	out := make([]*Array, T)
	for t, fr := range frames {
		out[t] = fr.vals[li]
	}
	return out, nil
}

// execChecked runs one step of a frame and checks its results' types (interpFrame.run and the
// batched frames both run steps through it).
func execChecked(fr *interpFrame, st *interpStep) error {
	f := fr.p.fn
	if err := st.exec(fr, st); err != nil {
		return fmt.Errorf("@%s %w", f.Name, err)
	}
	for k, o := range st.out {
		t := st.op.Results[k].Type
		if t.Kind != graph.TensorKind {
			continue
		}
		if err := fr.vals[o].check(t); err != nil {
			return fmt.Errorf("@%s %w", f.Name, st.errorf("result %d %v", k, err))
		}
	}
	return nil
}

// putPiece copies a piece into axis-0 rows [off, off+piece rows) of the state, as the concat
// written back would.
func putPiece(state *Array, off int64, piece *Array) error {
	if state == nil || piece.DType != state.DType || len(piece.Shape) != len(state.Shape) {
		return fmt.Errorf("piece %s does not fit the state", piece)
	}
	row := int64(1)
	for _, d := range state.Shape[1:] {
		row *= d
	}
	at := off * row
	if state.DType.IsFloat() {
		if at+int64(len(piece.F)) > int64(len(state.F)) || int64(len(piece.F)) != piece.Shape[0]*row {
			return fmt.Errorf("piece %s does not fit the state %s at row %d", piece, state, off)
		}
		copy(state.F[at:], piece.F)
		return nil
	}
	if at+int64(len(piece.I)) > int64(len(state.I)) || int64(len(piece.I)) != piece.Shape[0]*row {
		return fmt.Errorf("piece %s does not fit the state %s at row %d", piece, state, off)
	}
	copy(state.I[at:], piece.I)
	return nil
}

// batchedProduct runs a fused weight product for every frame, reading the weight once. The
// rows are taken tile by tile; when the matrix's one-vector kernel is a dot of the decoded row
// (checked once per weight, dotRowsExact), each tile is decoded once into float32 and dotted
// with every frame's activation by kernels.Dot, else the tile is multiplied with each frame by the
// one-frame kernel call itself (MulRows over a row range starting at an even row). Either way
// every output equals what execFusedMatmul computes for that frame, bit for bit.
func (fd *feeder) batchedProduct(frames []*interpFrame, st *interpStep) error {
	w := st.w
	xs := make([][]float32, len(frames))
	outs := make([]*Array, len(frames))
	ns := make([]int, len(frames))
	total := 0
	for t, fr := range frames {
		x, _, out, err := fusedMatmulOperands(fr, st)
		if err != nil {
			return fmt.Errorf("@%s %w", fr.p.fn.Name, err)
		}
		xs[t], outs[t], ns[t] = x.F, out, len(x.F)/w.cols
		total += ns[t]
	}
	if total > 0 {
		decode := fd.dotRowsExact(w)
		tile := max(2, feedTileBytes/(4*w.cols)) &^ 1
		// Whole blocks of DotRows's four rows, even past the L1 budget: for wide rows (Qwen3.5's
		// MLP down projection) four rows from L2 still beat one from L1 (BenchmarkDotRows).
		rowsL1 := max(4, (feedL1Floats/w.cols)&^3)
		// The frames of one vector each are dotted with the decoded rows (DotRows); the others
		// go through MulRows.
		var oneX, oneD [][]float32
		for t := range frames {
			if ns[t] == 1 {
				oneX, oneD = append(oneX, xs[t]), append(oneD, outs[t].F)
			}
		}
		tiles := (w.rows + tile - 1) / tile
		var next atomic.Int64
		workers := min(runtime.GOMAXPROCS(0), tiles)
		if workers <= 1 || w.rows*w.cols*total < 1<<16 {
			workers = 1
		}
		for len(fd.bufs) < workers {
			fd.bufs = append(fd.bufs, nil)
		}
		work := func(k int) {
			var buf []float32
			if decode {
				fd.bufs[k] = growF(fd.bufs[k], tile*w.cols)
				buf = fd.bufs[k]
			}
			for {
				i := int(next.Add(1)) - 1
				if i >= tiles {
					return
				}
				r0 := i * tile
				r1 := min(r0+tile, w.rows)
				if decode {
					for r := r0; r < r1; r++ {
						w.m.Row(r, buf[(r-r0)*w.cols:(r-r0+1)*w.cols])
					}
				}
				// A few decoded rows (feedL1Floats) stay in the L1 cache while every frame's
				// activation passes by them; DotRows gives each sum bit for bit kernels.Dot's.
				for rb := r0; decode && rb < r1; rb += rowsL1 {
					re := min(rb+rowsL1, r1)
					kernels.DotRows(oneD, rb, buf[(rb-r0)*w.cols:(re-r0)*w.cols], w.cols, oneX)
				}
				for t := range frames {
					if ns[t] > 1 || ns[t] == 1 && !decode {
						w.m.MulRows(outs[t].F, xs[t], ns[t], r0, r1)
					}
				}
			}
		}
		var wg sync.WaitGroup
		for k := 1; k < workers; k++ {
			wg.Go(func() { work(k) })
		}
		work(0)
		wg.Wait()
		fd.tilePasses.Add(int64(tiles))
	}
	for t, fr := range frames {
		roundResult(outs[t])
		if err := outs[t].check(st.op.Results[0].Type); err != nil {
			return fmt.Errorf("@%s %w", fr.p.fn.Name, st.errorf("result %v", err))
		}
	}
	return nil
}

// dotRowsExact reports whether w's one-vector product (MulRows with n = 1, what a Step computes)
// equals kernels.Dot of each decoded row, bit for bit, on this machine: checked once per weight
// on its first and last rows with a fixed activation. The kernels accumulate a row the way Dot
// does; a kernel that does not (or a machine where the two take different code paths) fails
// the check and its products are batched with MulRows per frame instead.
func (fd *feeder) dotRowsExact(w *fusedWeight) bool {
	if ok, seen := fd.exact[w]; seen {
		return ok
	}
	x := make([]float32, w.cols)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.7+0.3)) * float32(1+i%5)
	}
	row := make([]float32, w.cols)
	ok := true
	for _, span := range [][2]int{{0, min(w.rows, 64)}, {max(0, w.rows-64) &^ 1, w.rows}} {
		got := make([]float32, w.rows)
		w.m.MulRows(got, x, 1, span[0], span[1])
		for r := span[0]; r < span[1] && ok; r++ {
			w.m.Row(r, row)
			ok = math.Float32bits(kernels.Dot(row, x)) == math.Float32bits(got[r])
		}
	}
	if fd.exact == nil {
		fd.exact = map[*fusedWeight]bool{}
	}
	fd.exact[w] = ok
	return ok
}

// Feed feeds ids in order from the session's current position and calls row(i, logits) with
// the logits after ids[i]; logits is valid only during the call. The rows and the final state are
// bit-identical to calling Step for each id. The ids run in chunks of FeedChunk frames through
// the batched path when the decode graph's states are understood (feed_plan.go; the host-cache
// graph through its state form, feed_host.go), else token by token. When row returns an error
// Feed stops and returns it; the session has then consumed the ids up to the end of the current
// chunk. Do not call the session from row.
func (s *Session) Feed(ids []int, row func(i int, logits []float32) error) error {
	fs := feedSession{vocab: s.vocab, step: s.Step, pos: &s.pos}
	switch s.contract {
	case graph.Pipelined:
		fd := s.feed.feeder(s.decIt, s.numerics == F16Accumulate && s.dec.Dynamic())
		fs.chunk = stateChunk(fd, &s.pos, &s.kvCap, s.growKV, s.states)
	case graph.HostDecode:
		fs.chunk = s.hostChunk
	}
	return feedLoop(ids, row, fs)
}

// Feed is Session.Feed on the stock contract's @main, one token per frame.
func (s *StockSession) Feed(ids []int, row func(i int, logits []float32) error) error {
	fd := s.feed.feeder(s.main, false)
	return feedLoop(ids, row, feedSession{vocab: s.vocab, step: s.Step, pos: &s.pos,
		chunk: stateChunk(fd, &s.pos, &s.kvCap, s.growKV, s.states)})
}

// stateChunk is feedSession.chunk for a session whose states live on the graph (pipelined,
// stock): the KV capacity doubles until the chunk fits, as Step grows it, and fd (nil: step
// token by token) runs it on states.
func stateChunk(fd *feeder, pos *int, kvCap *int64, grow func(int64), states map[string]*Array) func(n int) (*feeder, map[string]*Array, error) {
	return func(n int) (*feeder, map[string]*Array, error) {
		if fd == nil {
			return nil, nil, nil
		}
		for int64(*pos+n) > *kvCap {
			grow(2 * *kvCap)
		}
		return fd, states, nil
	}
}

// feedSession is what Feed needs of a session: its stepping, its position, and chunk, which
// readies the session for n more tokens (growing its caches) and returns the feeder to run them
// with the states it updates, or a nil feeder to step them.
type feedSession struct {
	vocab int
	step  func(id int) ([]float32, error)
	pos   *int
	chunk func(n int) (*feeder, map[string]*Array, error)
}

// feedLoop is Feed for every session kind: chunks of FeedChunk frames through the feeder chunk
// gives, else (and for a chunk of one) a step per id.
func feedLoop(ids []int, row func(i int, logits []float32) error, fs feedSession) error {
	for _, id := range ids {
		if id < 0 || id >= fs.vocab {
			return fmt.Errorf("token id %d out of range [0, %d)", id, fs.vocab)
		}
	}
	for i := 0; i < len(ids); {
		n := min(max(FeedChunk, 1), len(ids)-i)
		var fd *feeder
		var states map[string]*Array
		if n > 1 && fs.chunk != nil {
			var err error
			if fd, states, err = fs.chunk(n); err != nil {
				return err
			}
		}
		if fd == nil {
			l, err := fs.step(ids[i])
			if err != nil {
				return err
			}
			if err := row(i, l); err != nil {
				return err
			}
			i++
			continue
		}
		out, err := fd.run(ids[i:i+n], *fs.pos, states)
		if err != nil {
			return err
		}
		*fs.pos += n
		for t, l := range out {
			if len(l.F) != fs.vocab {
				return fmt.Errorf("the graph returned %d logits for one token, want %d", len(l.F), fs.vocab)
			}
			if err := row(i+t, l.F); err != nil {
				return err
			}
		}
		i += n
	}
	return nil
}

func (fs *feedState) describe(it *Interpreter, f16Acc bool) string {
	if fd := fs.feeder(it, f16Acc); fd != nil {
		return "batched: " + fd.fp.describe()
	}
	if fs.err != nil {
		return "token by token: " + fs.err.Error()
	}
	return "token by token"
}

// FeedPlan says how Feed runs on this session: "batched: ..." with the plan's summary, or
// "token by token: ..." with the reason.
func (s *Session) FeedPlan() string {
	if s.contract == graph.HostDecode {
		fs, it, err := s.hostFeedState()
		if err != nil {
			return "token by token: " + err.Error()
		}
		return fs.describe(it, false)
	}
	return s.feed.describe(s.decIt, s.numerics == F16Accumulate && s.dec.Dynamic())
}

// FeedPlan is Session.FeedPlan for the stock contract's @main.
func (s *StockSession) FeedPlan() string { return s.feed.describe(s.main, false) }
