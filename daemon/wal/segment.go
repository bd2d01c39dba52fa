package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// segment is one file of the log, named by the sequence number of its
// first record ("00000000000000000042.wal").
type segment struct {
	first int64  // seq of its first record (the next one, while it is empty)
	path  string // file path
	base  int64  // logical offset of its byte 0: the sizes of the segments before it, since Open
	size  int64  // bytes committed (fsynced); final once a later segment exists
}

const segExt = ".wal"

func segName(first int64) string { return fmt.Sprintf("%020d%s", first, segExt) }

// listSegments returns the segments in dir by first seq, sizes unset.
func listSegments(dir string) ([]*segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []*segment
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segExt) || !e.Type().IsRegular() {
			continue
		}
		first, err := strconv.ParseInt(strings.TrimSuffix(name, segExt), 10, 64)
		if err != nil || first < 0 || segName(first) != name {
			return nil, fmt.Errorf("segment %q: not a segment name (want 20 digits and %s); move it out of the log's directory", name, segExt)
		}
		segs = append(segs, &segment{first: first, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(segs, func(a, b *segment) int { return int(a.first - b.first) })
	return segs, nil
}

// scanResult is what recovering one segment found.
type scanResult struct {
	next    int64 // seq after its last record
	size    int64 // bytes of its whole records (header included)
	bad     error // the record that does not verify, if any (wraps errCorrupt)
	fileLen int64
	// zeroTail: every byte from size to fileLen is zero, so that the
	// record that does not verify is the segment's preallocated space
	// (see Log.prealloc), not a torn write.
	zeroTail bool
}

// scanSegment verifies every record of seg, from its header on, and calls
// each for each (key, seq) of a record with a key. It stops at the first
// record that does not verify (result.bad); other errors are returned.
func scanSegment(seg *segment, each func(key []byte, seq int64)) (scanResult, error) {
	f, err := os.Open(seg.path)
	if err != nil {
		return scanResult{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return scanResult{}, err
	}
	res := scanResult{next: seg.first, fileLen: st.Size()}
	var magic [len(segMagic)]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != segMagic {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return res, err
		}
		res.bad = fmt.Errorf("segment header: %w: want magic %q", errCorrupt, segMagic)
		return res, nil
	}
	res.size = int64(len(segMagic))
	rr := newRecordReader(f, res.size, st.Size())
	for {
		rec, err := rr.next()
		if err == io.EOF {
			return res, nil
		}
		if errors.Is(err, errCorrupt) {
			res.bad = err
			res.zeroTail, err = allZero(f, res.size, res.fileLen)
			return res, err
		}
		if err != nil {
			return res, err
		}
		if rec.seq != res.next {
			res.bad = fmt.Errorf("record at byte %d: %w: sequence number %d, want %d", rec.off, errCorrupt, rec.seq, res.next)
			return res, nil
		}
		if rec.key != nil {
			each(rec.key, rec.seq)
		}
		res.next++
		res.size = rr.off
	}
}

// allZero reports whether bytes from to end of f are all zero.
func allZero(f *os.File, from, end int64) (bool, error) {
	buf := make([]byte, 64<<10)
	for off := from; off < end; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		off += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) { // shorter than its Stat said: what is there is zero
				return true, nil
			}
			return false, err
		}
	}
	return true, nil
}

// createSegment makes a new, empty segment file (header only), fsynced
// with its directory, and returns it open for appending.
func createSegment(dir string, first int64) (*os.File, error) {
	path := filepath.Join(dir, segName(first))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err = f.Write([]byte(segMagic)); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("creating segment %s: %w", path, err)
	}
	return f, nil
}
