package wal

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
)

// maxGroupBytes bounds the records that one group commit writes.
const maxGroupBytes = 8 << 20

// ErrClosed is returned by Run when the log is closed under it.
var ErrClosed = errors.New("wal: log closed")

// Log is the write-ahead log of HTTP posts and the source.Source that
// reads it. See the package documentation for its contract.
type Log struct {
	o   Options
	dec *decoder

	appendc    chan *appendReq // to the writer; closed by Close
	writerDone chan struct{}   // closed when the writer has returned

	mu        sync.Mutex
	segs      []*segment // live segments by first seq; the last is written
	keys      *keyIndex
	inflight  map[string]chan struct{}         // keys of admitted, uncommitted posts; closed when done
	reading   map[http.ResponseWriter]struct{} // posts reading their body (see startRead)
	admitted  int                              // posts admitted and not yet committed or failed
	queued    int64                            // their record bytes
	readPos   int64                            // logical offset up to which Run has sent (pending = end + queued - readPos)
	draining  bool
	closed    bool
	failed    error         // the writer's sticky error
	notify    chan struct{} // closed and replaced at each commit and change of state
	running   bool          // Run was called
	cursorSeg int64         // first seq of the segment Run reads (-1: none)
	positions []Pos         // the last KeepPositions positions given to Durable
	// decoded holds the batches of records committed by this process
	// that Run has not reached yet, as the handler decoded them, by the
	// logical offset of the record (its segment's base + its offset), so
	// that Run need neither read nor decode them again. Bounded like the
	// pending bytes; released by Run when it returns, or by Close.
	decoded map[int64]keptRecord
	runDone bool // Run returned: nothing is kept in decoded any more

	// owned by the writer goroutine
	f       *os.File
	nextSeq int64
	buf     []byte
	// zeroEnd is the length of the last segment's file: the bytes after
	// its records up to there are zeros that the log wrote ahead of them
	// (see prealloc).
	zeroEnd int64

	records   atomic.Int64
	fastPosts atomic.Int64 // posts taken by the fast path (for tests and the benchmark)
	fsyncs    atomic.Int64
	syncNanos atomic.Int64 // time in the writes and fsyncs of group commits (for the benchmark)

	closeOnce sync.Once
	closeErr  error
}

// keptRecord is a record committed by this process, decoded.
type keptRecord struct {
	seq     int64
	size    int64 // bytes of the record, header included
	batches []flow.Batch
	// fast: the post is for the fast path, its batches not made yet: rec
	// (a pooled record buffer, owned) holds its body.
	fast *fastPost
	rec  []byte
}

// release releases what k holds.
func (k keptRecord) release() {
	releaseAll(k.batches)
	if k.fast != nil {
		putRecordBuf(k.rec)
	}
}

type appendReq struct {
	rec     []byte       // a record made by newRecordBuf, sealed by the writer
	batches []flow.Batch // the post decoded, for Run (owned)
	fast    *fastPost    // or checked for the fast path: Run makes its batches from rec
	key     string
	done    chan appendResult // buffered: the writer never blocks on it
}

type appendResult struct {
	seq int64
	err error
}

var _ source.Source = (*Log)(nil)

// Open opens (or creates) the log in o.Dir and recovers it: it verifies
// every record of every segment (length, CRC, sequence), truncates the
// last segment at its first record that does not verify (a torn write
// from a crash; logged with the bytes dropped), refuses a record that does
// not verify in an older segment (an error naming the segment and the
// offset: that is damage, not a crash), and rebuilds the index of
// idempotency keys from the keys file and the segments. It starts the
// writer goroutine, which Close stops.
func Open(o Options) (*Log, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal %q: %w", o.Name, err)
	}
	l := &Log{
		o:          o,
		appendc:    make(chan *appendReq, 1024),
		writerDone: make(chan struct{}),
		keys:       newKeyIndex(o.MaxKeys),
		inflight:   map[string]chan struct{}{},
		reading:    map[http.ResponseWriter]struct{}{},
		decoded:    map[int64]keptRecord{},
		notify:     make(chan struct{}),
		cursorSeg:  -1,
	}
	l.dec = newDecoder(&l.o)
	if err := l.recover(); err != nil {
		return nil, fmt.Errorf("wal %q: open %s: %w", o.Name, o.Dir, err)
	}
	go l.writer()
	return l, nil
}

func (l *Log) recover() error {
	dir := l.o.Dir
	if err := os.Remove(filepath.Join(dir, keysTemp)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	keysPath := filepath.Join(dir, keysName)
	if data, err := os.ReadFile(keysPath); err == nil {
		if err := l.keys.unmarshal(data); err != nil {
			return fmt.Errorf("keys file %s: %v; it holds the idempotency keys of deleted segments: "+
				"remove it to start without them (retries of their posts would then be appended again)", keysPath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fromFile := l.keys.lastSeq()
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	next := fromFile + 1
	var records int64
	for i, seg := range segs {
		last := i == len(segs)-1
		if i > 0 && seg.first != next {
			return fmt.Errorf("segment %s starts at record %d, want %d (the segment before ends there): a segment is missing or damaged", seg.path, seg.first, next)
		}
		res, err := scanSegment(seg, func(key []byte, seq int64) {
			if seq > fromFile {
				l.keys.add(string(key), seq)
			}
		})
		if err != nil {
			return fmt.Errorf("segment %s: %w", seg.path, err)
		}
		switch {
		case res.bad == nil:
		case last && res.zeroTail:
			// Only zeros after the last record: the space that the log
			// preallocates (see prealloc), kept for the next records.
		default:
			if !last {
				return fmt.Errorf("segment %s: %w; it is not the last segment, so this is damage rather than a torn write: "+
					"restore the segment, or move it and the segments after it away to start without their records", seg.path, res.bad)
			}
			if err := truncateTail(seg.path, res.size); err != nil {
				return err
			}
			l.o.Log.Warn("wal truncated a torn tail", "source", l.o.Name, "segment", seg.path,
				"offset", res.size, "dropped_bytes", res.fileLen-res.size, "err", res.bad)
		}
		records += res.next - seg.first
		seg.size = res.size
		if i > 0 {
			seg.base = segs[i-1].base + segs[i-1].size
		}
		next = res.next
	}
	l.nextSeq = max(next, 1) // sequence numbers start at 1
	if len(segs) == 0 {
		f, err := createSegment(dir, l.nextSeq)
		if err != nil {
			return err
		}
		l.f = f
		l.zeroEnd = int64(len(segMagic))
		segs = []*segment{{first: l.nextSeq, path: filepath.Join(dir, segName(l.nextSeq)), size: int64(len(segMagic))}}
	} else {
		last := segs[len(segs)-1]
		f, err := os.OpenFile(last.path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if last.size < int64(len(segMagic)) { // torn in its header: a crash while it was created
			if _, err = f.WriteAt([]byte(segMagic), 0); err == nil {
				err = datasync(f)
			}
			last.size = int64(len(segMagic))
		}
		if err == nil {
			_, err = f.Seek(last.size, io.SeekStart)
		}
		var st os.FileInfo
		if err == nil {
			st, err = f.Stat()
		}
		if err != nil {
			f.Close()
			return err
		}
		l.f, l.zeroEnd = f, st.Size() // zeros kept after the records, if any
	}
	l.segs = segs
	l.readPos = segs[0].base
	l.o.Log.Info("wal open", "source", l.o.Name, "dir", dir, "segments", len(segs),
		"records", records, "next_record", l.nextSeq, "keys", l.keys.len())
	return nil
}

// truncateTail cuts the file at path to size bytes and fsyncs it.
func truncateTail(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("truncating the torn tail of %s at byte %d: %w", path, size, err)
	}
	return nil
}

// Name returns the source's name (Options.Name).
func (l *Log) Name() string { return l.o.Name }

// Stats are counters of the log since Open.
type Stats struct {
	Records int64 // records appended (posts acknowledged)
	Fsyncs  int64 // group commits: one fsync each
	Pending int64 // bytes accepted but not yet sent out by Run (see Options.MaxPending)
}

// Stats returns the log's counters. Records/Fsyncs is the number of posts
// per fsync.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Records: l.records.Load(), Fsyncs: l.fsyncs.Load(), Pending: l.pendingLocked()}
}

func (l *Log) pendingLocked() int64 {
	last := l.segs[len(l.segs)-1]
	return last.base + last.size + l.queued - l.readPos
}

// broadcastLocked wakes every waiter on l.notify.
func (l *Log) broadcastLocked() {
	close(l.notify)
	l.notify = make(chan struct{})
}

// writer appends the admitted posts, one group (everything that queued up
// meanwhile, up to maxGroupBytes) per write and fsync.
func (l *Log) writer() {
	defer close(l.writerDone)
	var group []*appendReq
	for {
		req, ok := <-l.appendc
		if !ok {
			return
		}
		group = append(group[:0], req)
		size := len(req.rec)
	gather:
		for size < maxGroupBytes {
			select {
			case r, ok := <-l.appendc:
				if !ok {
					break gather
				}
				group = append(group, r)
				size += len(r.rec)
			default:
				break gather
			}
		}
		l.commit(group)
		clear(group)
	}
}

// commit writes group to the current segment (rolling first if it is
// full), fsyncs it and answers every post of it.
func (l *Log) commit(group []*appendReq) {
	l.mu.Lock()
	err := l.failed
	seg := l.segs[len(l.segs)-1]
	l.mu.Unlock()
	if err == nil && seg.size >= l.o.SegmentBytes && seg.size > int64(len(segMagic)) { // a segment holds at least one record
		seg, err = l.roll(seg)
	}
	seq := l.nextSeq
	if err == nil {
		l.buf = l.buf[:0]
		for _, r := range group {
			sealRecord(r.rec, seq)
			seq++
			l.buf = append(l.buf, r.rec...)
		}
		t0 := time.Now()
		err = l.write(seg)
		l.syncNanos.Add(int64(time.Since(t0)))
		l.fsyncs.Add(1)
		if err != nil {
			err = fmt.Errorf("wal %q: appending to %s: %w (the log takes no more posts; restart to recover it)", l.o.Name, seg.path, err)
			l.o.Log.Error("wal append failed", "source", l.o.Name, "segment", seg.path, "err", err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil && l.failed == nil {
		l.failed = err
	}
	seq = l.nextSeq
	at := seg.base + seg.size // logical offset of the next record
	for _, r := range group {
		res := appendResult{seq: seq, err: err}
		kept := keptRecord{seq: seq, size: int64(len(r.rec)), batches: r.batches, fast: r.fast, rec: r.rec}
		if err == nil && !l.runDone {
			l.decoded[at] = kept
			at += kept.size
		} else {
			kept.release()
		}
		r.batches = nil
		if err == nil {
			if r.key != "" {
				l.keys.add(r.key, seq)
			}
			seq++
		}
		if r.key != "" {
			close(l.inflight[r.key])
			delete(l.inflight, r.key)
		}
		l.admitted--
		l.queued -= int64(len(r.rec))
		if r.fast == nil {
			putRecordBuf(r.rec) // written (or failed): the writer was its last user
		}
		r.rec, r.fast = nil, nil
		r.done <- res
	}
	if err == nil {
		seg.size += int64(len(l.buf))
		l.records.Add(int64(len(group)))
		l.nextSeq = seq
	}
	l.broadcastLocked()
}

// write writes l.buf after the records of seg, the last segment, and
// fsyncs it.
func (l *Log) write(seg *segment) error {
	if end := seg.size + int64(len(l.buf)); end > l.zeroEnd {
		l.prealloc(seg, end)
	}
	if _, err := l.f.Write(l.buf); err != nil {
		return err
	}
	return datasync(l.f)
}

// preallocChunk is how far past its records the log zeroes the segment
// being written.
const preallocChunk = 2 << 20

// zeros is what prealloc writes.
var zeros [256 << 10]byte

// prealloc makes room in the last segment, seg, for records up to byte
// end: it writes zeros past end, up to preallocChunk past seg's records
// (and not past SegmentBytes), before the records are written and
// fsynced with them.
//
// Overwriting zeros that are on disk costs an fdatasync less than
// appending does: the file's size does not change, so the inode is not
// written. On ext4 without a journal it halves the fsync of a group of
// posts (about 170 µs for 45 KB against 260 to 390 µs). A crash leaves
// zeros after the last record, which Open takes for what they are; a
// torn write leaves bytes that are not all zero, and is cut off as before.
// The zeros are cut off when the segment is closed (roll, Close).
func (l *Log) prealloc(seg *segment, end int64) {
	target := min(seg.size+preallocChunk, l.o.SegmentBytes)
	off := end
	for off < target {
		n, err := l.f.WriteAt(zeros[:min(int64(len(zeros)), target-off)], off)
		off += int64(n)
		if err != nil {
			// Out of space, say: the records go in as appended, and the
			// zeros that were written are free space like the others.
			l.o.Log.Warn("wal cannot preallocate", "source", l.o.Name, "segment", seg.path, "err", err)
			break
		}
	}
	l.zeroEnd = max(off, end)
}

// trim cuts the zeros after the records of seg, the last segment, and
// fsyncs it.
func (l *Log) trim(seg *segment) error {
	if l.zeroEnd <= seg.size {
		return nil
	}
	err := l.f.Truncate(seg.size)
	if err == nil {
		err = datasync(l.f)
	}
	if err != nil {
		return fmt.Errorf("wal %q: cutting the preallocated end of %s: %w", l.o.Name, seg.path, err)
	}
	l.zeroEnd = seg.size
	return nil
}

// roll closes the full segment seg and starts the next one.
func (l *Log) roll(seg *segment) (*segment, error) {
	// A closed segment ends at its last record: Open takes zeros after
	// it for damage, as anything else that does not verify there.
	if err := l.trim(seg); err != nil {
		return seg, err
	}
	f, err := createSegment(l.o.Dir, l.nextSeq)
	if err != nil {
		return seg, fmt.Errorf("wal %q: %w", l.o.Name, err)
	}
	if err := l.f.Close(); err != nil {
		l.o.Log.Warn("wal closing a full segment", "source", l.o.Name, "segment", seg.path, "err", err)
	}
	l.f = f
	l.zeroEnd = int64(len(segMagic))
	next := &segment{first: l.nextSeq, path: filepath.Join(l.o.Dir, segName(l.nextSeq)), base: seg.base + seg.size, size: int64(len(segMagic))}
	l.mu.Lock()
	l.segs = append(l.segs, next)
	l.mu.Unlock()
	l.o.Log.Info("wal segment", "source", l.o.Name, "segment", next.path, "previous_bytes", seg.size)
	return next, nil
}

// Close refuses new posts (503), waits until the posts already admitted
// are committed and answered, stops the writer and closes the segment
// file. Call it after Run has returned (a Run still waiting returns
// ErrClosed). Close may be called more than once.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.broadcastLocked()
		for l.admitted > 0 {
			ch := l.notify
			l.mu.Unlock()
			<-ch
			l.mu.Lock()
		}
		l.mu.Unlock()
		close(l.appendc)
		<-l.writerDone
		l.mu.Lock()
		l.releaseDecodedLocked()
		seg, failed := l.segs[len(l.segs)-1], l.failed
		l.mu.Unlock()
		if failed == nil {
			l.closeErr = l.trim(seg)
		}
		if err := l.f.Close(); err != nil && l.closeErr == nil {
			l.closeErr = fmt.Errorf("wal %q: close: %w", l.o.Name, err)
		}
	})
	return l.closeErr
}

// releaseDecodedLocked releases the batches kept for Run, and keeps no
// more.
func (l *Log) releaseDecodedLocked() {
	l.runDone = true
	for at, k := range l.decoded {
		k.release()
		delete(l.decoded, at)
	}
}

func releaseAll(bs []flow.Batch) {
	for _, b := range bs {
		b.Release()
	}
}
