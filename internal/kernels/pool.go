package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A parallel product is a few hundred microseconds of work, and a decode step runs hundreds of
// them back to back. Starting a goroutine per product leaves its first piece waiting for the
// OS to wake an idle core, which on a virtual machine takes about as long as the product: two
// cores then ran decode no faster than one. The helpers below stay awake for spinFor after each
// product, yielding their core to any other runnable goroutine while they wait, so the next
// product starts on both cores at once; past spinFor they sleep until the next one.

// spinFor is how long an idle helper keeps polling for the next product before it sleeps.
const spinFor = 200 * time.Microsecond

// poolTask is one parallel product: helpers and the caller run work until it returns.
type poolTask struct {
	work func()
}

type workerPool struct {
	mu      sync.Mutex // one product at a time; others use goroutines
	helpers int
	task    atomic.Pointer[poolTask]
	seq     atomic.Uint64 // bumped when task changes
	asleep  []atomic.Bool
	wake    []chan struct{}
}

var (
	poolMu sync.Mutex
	pool   *workerPool
)

// getPool returns the pool with helpers goroutines, or nil when it has another size (GOMAXPROCS
// changed since it started) or another product holds it.
func getPool(helpers int) *workerPool {
	poolMu.Lock()
	if pool == nil {
		p := &workerPool{helpers: helpers, asleep: make([]atomic.Bool, helpers), wake: make([]chan struct{}, helpers)}
		for i := range helpers {
			p.wake[i] = make(chan struct{}, 1)
			go p.helper(i)
		}
		pool = p
	}
	p := pool
	poolMu.Unlock()
	if p.helpers != helpers || !p.mu.TryLock() {
		return nil
	}
	return p
}

// run runs work on the calling goroutine and every helper; work must return once the product
// has no piece left to claim, and the caller waits for the pieces themselves to finish.
func (p *workerPool) run(work func()) {
	p.task.Store(&poolTask{work: work})
	p.seq.Add(1)
	for i := range p.helpers {
		if p.asleep[i].Load() {
			select {
			case p.wake[i] <- struct{}{}:
			default:
			}
		}
	}
	work()
	p.mu.Unlock()
}

func (p *workerPool) helper(i int) {
	var seen uint64
	for {
		start := time.Now()
		for n := 0; p.seq.Load() == seen; n++ {
			if n%64 == 63 && time.Since(start) > spinFor {
				p.asleep[i].Store(true)
				if p.seq.Load() == seen {
					<-p.wake[i]
				}
				p.asleep[i].Store(false)
				start = time.Now()
			}
			runtime.Gosched()
		}
		seen = p.seq.Load()
		p.task.Load().work()
	}
}

// parallelRows runs mul over [0, rows) in pieces of chunkRows rows (the last one shorter) on
// workers goroutines, the caller included, and returns when every piece is done.
func parallelRows(rows, chunkRows, workers int, mul func(r0, r1 int)) {
	var next, done atomic.Int64
	work := func() {
		for {
			r0 := int(next.Add(int64(chunkRows))) - chunkRows
			if r0 >= rows {
				return
			}
			r1 := min(r0+chunkRows, rows)
			mul(r0, r1)
			done.Add(int64(r1 - r0))
		}
	}
	if p := getPool(workers - 1); p != nil {
		p.run(work)
		// Pieces a helper claimed may still be running; they are short.
		for done.Load() < int64(rows) {
			runtime.Gosched()
		}
		return
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}
