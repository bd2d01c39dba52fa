package wal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
)

// Pos is a position in the log, as Run sends it (JSON): just after batch
// Batch (0-based) of the post in record Record, which starts at byte
// Offset of the segment whose first record is Segment.
type Pos struct {
	Segment int64 `json:"segment"`
	Offset  int64 `json:"offset"`
	Record  int64 `json:"record"`
	Batch   int   `json:"batch"`
}

// ParsePos decodes a position that Run sent.
func ParsePos(b []byte) (Pos, error) {
	var p Pos
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("wal: position %q: %w", b, err)
	}
	if p.Segment < 1 || p.Offset < int64(len(segMagic)) || p.Record < p.Segment || p.Batch < 0 {
		return p, fmt.Errorf("wal: position %q: want segment ≥ 1, offset ≥ %d, record ≥ segment, batch ≥ 0", b, len(segMagic))
	}
	return p, nil
}

// marshal is json.Marshal(p), without its reflection.
func (p Pos) marshal() []byte {
	b := make([]byte, 0, 80)
	b = append(b, `{"segment":`...)
	b = strconv.AppendInt(b, p.Segment, 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, p.Offset, 10)
	b = append(b, `,"record":`...)
	b = strconv.AppendInt(b, p.Record, 10)
	b = append(b, `,"batch":`...)
	b = strconv.AppendInt(b, int64(p.Batch), 10)
	return append(b, '}')
}

// cursor is where Run reads.
type cursor struct {
	seg       *segment
	off       int64 // next record's offset in seg
	skipRec   int64 // the record of from, whose batches ≤ skipBatch were sent (0: none)
	skipBatch int
}

// Run sends one source.Input per record batch of the log, in log order,
// from just after position from (nil: the start of the log), each with
// the Pos just after it; it sends only records whose fsync is done. Then
// it waits for new posts. Once drain is closed the handler refuses new
// posts (503) and Run returns nil after sending every post that was
// acknowledged (or being appended) before. When ctx is done it returns
// context.Cause(ctx) promptly, releasing the batch it held. It returns
// ErrClosed when Close is called under it, the writer's error after
// sending what was committed when an append failed, or an error when
// from is not a position of this log (naming it). A record that no
// longer decodes with the current Schema (it was checked when it was
// posted) is reported (source.ReasonDecode or source.ReasonSchema) and
// skipped. Batches with no rows are not sent. Batch.Seq is the batch's
// index in its post. Run may be called once.
func (l *Log) Run(ctx context.Context, from []byte, drain <-chan struct{}, out chan<- source.Input) error {
	l.mu.Lock()
	if l.running {
		l.mu.Unlock()
		return fmt.Errorf("wal %q: Run called twice", l.o.Name)
	}
	if l.closed {
		// As dirsource and natsource (source.Guard): not after Close.
		l.mu.Unlock()
		return fmt.Errorf("wal %q: Run after Close: %w", l.o.Name, ErrClosed)
	}
	l.running = true
	cur, err := l.startLocked(from)
	if err == nil {
		l.cursorSeg = cur.seg.first
		l.readPos = cur.seg.base + cur.off
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-drain:
			l.mu.Lock()
			l.draining = true
			l.cutReadsLocked()
			l.broadcastLocked()
			l.mu.Unlock()
			l.o.Log.Info("wal drain", "source", l.o.Name)
		case <-stop:
		}
	})
	defer func() { close(stop); wg.Wait() }()
	defer func() {
		l.mu.Lock()
		l.releaseDecodedLocked()
		l.mu.Unlock()
	}()

	var f *os.File
	rr := newRecordReader(nil, 0, 0)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		l.mu.Lock()
		limit := cur.seg.size
		var next *segment
		if last := l.segs[len(l.segs)-1]; cur.seg != last {
			for i, s := range l.segs {
				if s == cur.seg {
					next = l.segs[i+1]
				}
			}
		}
		switch {
		case cur.off < limit:
			l.mu.Unlock()
			if f == nil {
				if f, err = os.Open(cur.seg.path); err != nil {
					return fmt.Errorf("wal %q: reading: %w", l.o.Name, err)
				}
			}
			if err := l.sendRange(ctx, f, rr, &cur, limit, out); err != nil {
				return err
			}
			continue
		case next != nil:
			cur = cursor{seg: next, off: int64(len(segMagic))}
			l.cursorSeg = next.first
			l.readPos = next.base + cur.off
			l.mu.Unlock()
			if f != nil {
				f.Close()
				f = nil
			}
			continue
		case l.failed != nil:
			err := l.failed
			l.mu.Unlock()
			return err
		case l.draining && l.admitted == 0:
			l.mu.Unlock()
			return nil
		case l.closed:
			l.mu.Unlock()
			return ErrClosed
		}
		ch := l.notify
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-ch:
		}
	}
}

// startLocked finds where Run starts: after from, or at the first record.
func (l *Log) startLocked(from []byte) (cursor, error) {
	if from == nil {
		return cursor{seg: l.segs[0], off: int64(len(segMagic))}, nil
	}
	p, err := ParsePos(from)
	if err != nil {
		return cursor{}, fmt.Errorf("wal %q: run from %s: %w", l.o.Name, from, err)
	}
	for _, s := range l.segs {
		if s.first != p.Segment {
			continue
		}
		if p.Offset >= s.size {
			return cursor{}, fmt.Errorf("wal %q: run from %s: offset %d is past the end (%d) of segment %s: the log lost what the position covers",
				l.o.Name, from, p.Offset, s.size, s.path)
		}
		rec, err := readRecordAt(s, p.Offset)
		if err != nil {
			return cursor{}, fmt.Errorf("wal %q: run from %s: %w", l.o.Name, from, err)
		}
		if rec.seq != p.Record {
			return cursor{}, fmt.Errorf("wal %q: run from %s: the record at byte %d of %s is %d, not %d: the position is not of this log",
				l.o.Name, from, p.Offset, s.path, rec.seq, p.Record)
		}
		return cursor{seg: s, off: p.Offset, skipRec: p.Record, skipBatch: p.Batch}, nil
	}
	if p.Segment < l.segs[0].first {
		return cursor{}, fmt.Errorf("wal %q: run from %s: segment %d was deleted (the log starts at record %d): resume from a newer checkpoint",
			l.o.Name, from, p.Segment, l.segs[0].first)
	}
	return cursor{}, fmt.Errorf("wal %q: run from %s: no segment %d in the log: the position is not of this log", l.o.Name, from, p.Segment)
}

// readRecordAt reads the record at byte off of seg.
func readRecordAt(s *segment, off int64) (record, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return record{}, err
	}
	defer f.Close()
	rec, err := newRecordReader(io.NewSectionReader(f, off, s.size-off), off, s.size).next()
	if err != nil {
		return record{}, fmt.Errorf("segment %s: %w", s.path, err)
	}
	return rec, nil
}

// sendRange sends the batches of the records of cur.seg from cur.off to
// limit (committed bytes), advancing cur and the pending count record by
// record. A record that this process committed is sent as the handler
// decoded it, without reading it back; the others are read (CRC checked)
// and decoded.
func (l *Log) sendRange(ctx context.Context, f *os.File, rr *recordReader, cur *cursor, limit int64, out chan<- source.Input) error {
	placed := false // rr reads from cur.off
	for cur.off < limit {
		var rec record
		l.mu.Lock()
		kept, ok := l.decoded[cur.seg.base+cur.off]
		delete(l.decoded, cur.seg.base+cur.off)
		l.mu.Unlock()
		if ok {
			rec = record{seq: kept.seq, off: cur.off, size: kept.size}
			placed = false
		} else {
			if !placed {
				rr.reset(io.NewSectionReader(f, cur.off, limit-cur.off), cur.off, limit)
				placed = true
			}
			var err error
			if rec, err = rr.next(); err != nil { // committed bytes that no longer verify: the disk is damaged
				return fmt.Errorf("wal %q: reading segment %s: %w", l.o.Name, cur.seg.path, noEOF(err))
			}
		}
		pos := Pos{Segment: cur.seg.first, Offset: rec.off, Record: rec.seq}
		skip := -1
		if rec.seq == cur.skipRec {
			skip = cur.skipBatch
		}
		stopped := false
		send := func(i int, b flow.Batch) error {
			if i <= skip || b.Rows() == 0 {
				b.Release()
				return nil
			}
			pos.Batch = i
			select {
			case out <- source.Input{Batch: b, Pos: pos.marshal()}:
				return nil
			case <-ctx.Done():
				b.Release()
				stopped = true
				return context.Cause(ctx)
			}
		}
		var err error
		if ok && kept.fast != nil {
			err = l.dec.buildFast(ctx, *kept.fast, send)
			putRecordBuf(kept.rec)
		} else if ok {
			for i, b := range kept.batches {
				if stopped {
					b.Release()
				} else if serr := send(i, b); serr != nil {
					err = serr
				}
			}
		} else {
			err = l.dec.decode(ctx, rec.body, send)
		}
		if stopped || ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err != nil {
			reason := source.ReasonDecode
			if errors.Is(err, source.ErrSchema) {
				reason = source.ReasonSchema
			}
			l.o.Reporter.Rejected(l.o.Name, reason, fmt.Errorf("wal %q: record %d (segment %s, byte %d) skipped: %w",
				l.o.Name, rec.seq, cur.seg.path, rec.off, err))
		}
		cur.off += rec.size
		l.mu.Lock()
		l.readPos = cur.seg.base + cur.off
		l.mu.Unlock()
	}
	return nil
}

// Durable says that a checkpoint covers every input up to pos. The log
// keeps the last KeepPositions positions and deletes the segments wholly
// before the oldest of them (never the one being written, nor the one
// Run reads), after writing the idempotency keys to the keys file, so
// that retries of deleted posts are still recognized.
func (l *Log) Durable(pos []byte) error {
	p, err := ParsePos(pos)
	if err != nil {
		return fmt.Errorf("wal %q: durable: %w", l.o.Name, err)
	}
	l.mu.Lock()
	if p.Record >= l.nextSeq || p.Segment > l.segs[len(l.segs)-1].first {
		// Not a position Run sent: taken, it would delete segments that
		// Run has not read.
		last := l.nextSeq - 1
		l.mu.Unlock()
		return fmt.Errorf("wal %q: durable: position %s is past the log's end (the last record appended is %d): not a position Run sent", l.o.Name, pos, last)
	}
	l.positions = append(l.positions, p)
	if len(l.positions) > l.o.KeepPositions {
		l.positions = append(l.positions[:0], l.positions[1:]...)
	}
	if len(l.positions) < l.o.KeepPositions {
		l.mu.Unlock()
		return nil
	}
	oldest := l.positions[0].Segment
	if l.cursorSeg >= 0 {
		oldest = min(oldest, l.cursorSeg)
	}
	cut := 0
	for cut < len(l.segs)-1 && l.segs[cut].first < oldest && l.segs[cut+1].first <= oldest {
		cut++
	}
	if cut == 0 {
		l.mu.Unlock()
		return nil
	}
	doomed := make([]*segment, cut)
	copy(doomed, l.segs[:cut])
	startsAt := l.segs[cut].first
	keys := l.keys.marshal()
	l.mu.Unlock()

	if err := writeKeys(l.o.Dir, keys); err != nil {
		return fmt.Errorf("wal %q: durable: %w", l.o.Name, err)
	}
	for _, s := range doomed {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("wal %q: durable: deleting %s: %w", l.o.Name, s.path, err)
		}
	}
	if err := syncDir(l.o.Dir); err != nil {
		return fmt.Errorf("wal %q: durable: %w", l.o.Name, err)
	}
	l.mu.Lock()
	l.segs = l.segs[cut:]
	// Before Run the whole log is pending: what remains of it.
	l.readPos = max(l.readPos, l.segs[0].base)
	l.mu.Unlock()
	l.o.Log.Info("wal deleted segments", "source", l.o.Name, "segments", cut, "log_starts_at_record", startsAt, "keys_file_bytes", len(keys))
	return nil
}
