package dirsource

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/internal/ipcguard"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/minibatch/parquet"
)

// This file reads one file wholly: every batch is decoded, checked against
// the schema and held before the first one is sent, so that a file is
// taken all or nothing.

// rejection is why a file is not taken: it goes to rejected/.
type rejection struct {
	reason source.Reason
	err    error
}

func (r *rejection) Error() string { return r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

func reject(reason source.Reason, err error) error { return &rejection{reason: reason, err: err} }

// The magic numbers that tell the formats apart, and the end of a stream.
var (
	ipcMagic     = []byte("ARROW1")
	parquetMagic = []byte("PAR1")
	ipcStreamEOS = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}
)

// formatOf returns the format of a file name by its extension, "" when
// none is known.
func formatOf(name string) string {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, ".arrow"), strings.HasSuffix(n, ".arrows"),
		strings.HasSuffix(n, ".feather"), strings.HasSuffix(n, ".ipc"):
		return "ipc"
	case strings.HasSuffix(n, ".csv"), strings.HasSuffix(n, ".csv.gz"):
		return "csv"
	case strings.HasSuffix(n, ".parquet"), strings.HasSuffix(n, ".pq"):
		return "parquet"
	}
	return ""
}

// tableSource is what the minibatch sources that a file is read with have
// in common.
type tableSource interface {
	flow.Source
	io.Closer
}

// loaded is a file read wholly: its batches, each split into X and Y by
// the schema, owned by the holder.
type loaded struct {
	batches []flow.Batch
	bytes   int64       // the Arrow buffers that the batches hold
	info    os.FileInfo // the file read, as opened
}

func (l *loaded) release() {
	for _, b := range l.batches {
		b.Release()
	}
	l.batches = nil
}

// load reads the file at path of format (by extension when ""), wholly.
// early says that the file is taken because its format looked complete,
// before Settle: an IPC stream must then end with its end-of-stream
// marker (its last 8 bytes may be a body's that look like one). An error
// is a *rejection, unless ctx is done (then context.Cause(ctx)).
func (d *Dir) load(ctx context.Context, path, name string, early bool) (_ *loaded, err error) {
	format := d.o.Format
	if format == "" {
		if format = formatOf(name); format == "" {
			return nil, reject(source.ReasonType, fmt.Errorf("dirsource %q: file %q: unknown extension; want .arrow, .arrows, .feather, .ipc, .csv, .csv.gz, .parquet or .pq, or set Format", d.o.Name, name))
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, reject(source.ReasonIO, fmt.Errorf("dirsource %q: file %q: %w", d.o.Name, name, err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, reject(source.ReasonIO, fmt.Errorf("dirsource %q: file %q: %w", d.o.Name, name, err))
	}
	if st.Size() > d.o.MaxFileBytes {
		return nil, reject(source.ReasonTooBig, fmt.Errorf("dirsource %q: file %q: %d bytes, over MaxFileBytes %d", d.o.Name, name, st.Size(), d.o.MaxFileBytes))
	}
	src, table, err := d.open(f, st.Size(), name, format, early)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if err := d.o.Schema.Check(table); err != nil {
		return nil, reject(source.ReasonSchema, fmt.Errorf("dirsource %q: file %q: %w", d.o.Name, name, err))
	}
	l := &loaded{info: st}
	defer func() {
		if err != nil {
			l.release()
		}
	}()
	for i := 0; ; i++ {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return l, nil
		}
		if ctx.Err() != nil {
			b.Release()
			return nil, context.Cause(ctx)
		}
		if err != nil {
			return nil, d.classify(name, err)
		}
		l.bytes += minibatch.RecordBytes(b.X)
		if l.bytes > d.o.MaxFileBytes {
			b.Release()
			return nil, reject(source.ReasonTooBig, fmt.Errorf("dirsource %q: file %q: batch %d: its batches hold over MaxFileBytes %d bytes of memory", d.o.Name, name, i, d.o.MaxFileBytes))
		}
		split, err := d.o.Schema.Split(b.X)
		b.Release()
		if err != nil {
			return nil, reject(source.ReasonSchema, fmt.Errorf("dirsource %q: file %q: batch %d: %w", d.o.Name, name, i, err))
		}
		split.Seq = int64(i)
		l.batches = append(l.batches, split)
	}
}

// classify makes a reading error a rejection with its reason.
func (d *Dir) classify(name string, err error) error {
	reason := source.ReasonDecode
	if _, ok := errors.AsType[*ipcguard.LimitError](err); ok {
		reason = source.ReasonTooBig
	} else if errors.Is(err, source.ErrSchema) {
		reason = source.ReasonSchema
	}
	return reject(reason, fmt.Errorf("dirsource %q: file %q: %w", d.o.Name, name, err))
}

// open opens the minibatch source that reads f in format; every column is
// in X (the schema splits them) and table is the schema of the file's
// table. With early, an IPC stream that ends without its end-of-stream
// marker is an error.
func (d *Dir) open(f *os.File, size int64, name, format string, early bool) (tableSource, *arrow.Schema, error) {
	opts := []minibatch.Option{
		minibatch.WithAllocator(d.o.Alloc),
		minibatch.WithName(name),
		minibatch.WithBatchRows(d.o.BatchRows),
		minibatch.WithMaxBatchBytes(min(d.o.MaxFileBytes, minibatch.DefaultMaxBatchBytes)),
		minibatch.WithMaxInputBytes(d.o.MaxFileBytes),
	}
	switch format {
	case "ipc":
		head := make([]byte, len(ipcMagic))
		if _, err := f.ReadAt(head, 0); err == nil && bytes.Equal(head, ipcMagic) {
			s, err := minibatch.NewIPCFile(f, size, opts...)
			if err != nil {
				return nil, nil, d.classify(name, err)
			}
			return s, s.TableSchema(), nil
		}
		var r io.Reader = io.NewSectionReader(f, 0, size)
		if early {
			r = endReader{r}
		}
		s, err := minibatch.NewIPCStream(bufio.NewReaderSize(r, 64<<10), opts...)
		if err != nil {
			return nil, nil, d.classify(name, err)
		}
		return s, s.TableSchema(), nil
	case "parquet":
		s, err := parquet.New(f, opts...)
		if err != nil {
			return nil, nil, d.classify(name, err)
		}
		return s, s.FileSchema(), nil
	case "csv":
		// Read no further than the size checked, should the file grow.
		fields, err := d.csvFields(io.NewSectionReader(f, 0, size), name)
		if err != nil {
			return nil, nil, err
		}
		s, err := minibatch.NewCSV(io.NewSectionReader(f, 0, size), append(opts, minibatch.WithHeader(true), minibatch.WithSchema(fields))...)
		if err != nil {
			return nil, nil, d.classify(name, err)
		}
		return s, s.TableSchema(), nil
	}
	panic("dirsource: format " + format) // New checked it
}

// errNoEnd is what an endReader reads at its end.
var errNoEnd = errors.New("the stream ends without its end-of-stream marker (still being written?)")

// endReader reads r, but fails with errNoEnd where r ends: an IPC stream
// read through it reads without an error only if it ends with its
// end-of-stream marker, where the reader stops before the end of r.
type endReader struct{ r io.Reader }

func (e endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) {
		err = errNoEnd
	}
	return n, err
}

// maxHeaderBytes bounds the header line of a CSV file.
const maxHeaderBytes = 1 << 20

// csvFields reads the header of a CSV file (plain or gzip) and returns the
// schema's fields in the header's order, so that a file may give the
// columns in any order; a header column that the schema lacks, or a field
// that the header lacks, is a schema rejection naming the column.
func (d *Dir) csvFields(f io.Reader, name string) (*arrow.Schema, error) {
	var r io.Reader = bufio.NewReader(f)
	br := r.(*bufio.Reader)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, reject(source.ReasonDecode, fmt.Errorf("dirsource %q: file %q: gzip: %w", d.o.Name, name, err))
		}
		defer zr.Close()
		r = zr
	}
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxHeaderBytes), 4096).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, reject(source.ReasonDecode, fmt.Errorf("dirsource %q: file %q: line 1: %w", d.o.Name, name, err))
	}
	if !strings.HasSuffix(line, "\n") && len(line) >= maxHeaderBytes {
		return nil, reject(source.ReasonTooBig, fmt.Errorf("dirsource %q: file %q: line 1: header over %d bytes", d.o.Name, name, maxHeaderBytes))
	}
	line = strings.TrimPrefix(line, "\ufeff")
	cr := csv.NewReader(strings.NewReader(line))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, reject(source.ReasonDecode, fmt.Errorf("dirsource %q: file %q: line 1: header: %w", d.o.Name, name, err))
	}
	want := d.o.Schema.Fields
	fields := make([]arrow.Field, 0, len(header))
	count := make(map[string]int, len(header))
	for _, col := range header {
		count[col]++
	}
	for _, col := range header {
		if n := count[col]; n > 1 {
			return nil, reject(source.ReasonSchema, fmt.Errorf("dirsource %q: file %q: line 1: %w", d.o.Name, name,
				&source.SchemaError{Column: col, Want: "one column", Got: fmt.Sprintf("%d columns", n)}))
		}
		idx := want.FieldIndices(col)
		if len(idx) == 0 {
			return nil, reject(source.ReasonSchema, fmt.Errorf("dirsource %q: file %q: line 1: %w", d.o.Name, name,
				&source.SchemaError{Column: col, Want: "no such column", Got: "a CSV column"}))
		}
		fields = append(fields, want.Field(idx[0]))
	}
	got := arrow.NewSchema(fields, nil)
	for _, fl := range want.Fields() {
		if !got.HasField(fl.Name) {
			return nil, reject(source.ReasonSchema, fmt.Errorf("dirsource %q: file %q: line 1: %w", d.o.Name, name,
				&source.SchemaError{Column: fl.Name, Want: fl.Type.String(), Got: "missing"}))
		}
	}
	return got, nil
}
