package registry

import (
	"runtime"
	"sync"
	"time"
)

// ListDecoder decodes the stored servers a Store lists, on several
// goroutines while the store reads the next rows: start-up lists every
// server, and with 10,000 of them decoding took as long as reading. Add the
// rows in order; Finish returns the servers in the same order.
//
// Documents are copied when added, so a store may pass a buffer it reuses
// (sql.RawBytes). Lists shorter than one batch are decoded on the calling
// goroutine, without starting any.
type ListDecoder struct {
	batch   *listBatch
	batches int // batches handed out, which numbers them

	work    chan *listBatch
	free    chan *listBatch
	wg      sync.WaitGroup
	started bool

	mu      sync.Mutex
	results map[int][]*Server
	errAt   int // batch of the first failure (-1: none)
	err     error
}

// listBatchRows is how many documents one worker decodes at a time.
const listBatchRows = 64

type listBatch struct {
	n    int
	buf  []byte // the documents, one after the other
	rows []listRow
}

type listRow struct {
	start, end       int // the document in buf
	enabled          bool
	created, updated time.Time
}

// NewListDecoder returns an empty ListDecoder.
func NewListDecoder() *ListDecoder {
	return &ListDecoder{results: map[int][]*Server{}, errAt: -1}
}

// Add queues one stored server: its document and the state a store keeps
// beside it.
func (d *ListDecoder) Add(doc []byte, enabled bool, created, updated time.Time) {
	if d.batch == nil {
		d.batch = d.newBatch()
	}
	b := d.batch
	start := len(b.buf)
	b.buf = append(b.buf, doc...)
	b.rows = append(b.rows, listRow{start: start, end: len(b.buf), enabled: enabled, created: created, updated: updated})
	if len(b.rows) == listBatchRows {
		d.send()
	}
}

func (d *ListDecoder) newBatch() *listBatch {
	select {
	case b := <-d.free:
		b.buf, b.rows = b.buf[:0], b.rows[:0]
		return b
	default:
		return &listBatch{rows: make([]listRow, 0, listBatchRows)}
	}
}

// send hands the current batch to the workers, starting them the first
// time.
func (d *ListDecoder) send() {
	if !d.started {
		d.started = true
		workers := min(runtime.GOMAXPROCS(0), 4)
		d.work = make(chan *listBatch, workers)
		d.free = make(chan *listBatch, 2*workers)
		d.wg.Add(workers)
		for range workers {
			go d.worker()
		}
	}
	d.batch.n = d.batches
	d.batches++
	d.work <- d.batch
	d.batch = nil
}

func (d *ListDecoder) worker() {
	defer d.wg.Done()
	for b := range d.work {
		d.decode(b)
		select {
		case d.free <- b:
		default:
		}
	}
}

// decode decodes one batch and files its servers (or its first error).
func (d *ListDecoder) decode(b *listBatch) {
	out := make([]*Server, 0, len(b.rows))
	var err error
	for _, r := range b.rows {
		var s *Server
		if s, err = UnmarshalStorage(b.buf[r.start:r.end]); err != nil {
			break
		}
		s.Enabled, s.CreatedAt, s.UpdatedAt = r.enabled, r.created, r.updated
		out = append(out, s)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if d.errAt < 0 || b.n < d.errAt {
			d.errAt, d.err = b.n, err
		}
		return
	}
	d.results[b.n] = out
}

// Finish decodes what is left and returns every server in the order added,
// or the error of the first document (in that order) that did not decode.
func (d *ListDecoder) Finish() ([]*Server, error) {
	if d.batch != nil && len(d.batch.rows) > 0 {
		d.batch.n = d.batches
		d.batches++
		d.decode(d.batch) // the tail, here: the workers may be done
		d.batch = nil
	}
	if d.started {
		close(d.work)
		d.wg.Wait()
	}
	if d.err != nil {
		return nil, d.err
	}
	total := 0
	for _, r := range d.results {
		total += len(r)
	}
	out := make([]*Server, 0, total)
	for i := range d.batches {
		out = append(out, d.results[i]...)
	}
	return out, nil
}
