package parquet

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// Source reads a Parquet file through Arrow's pqarrow as batches of up to
// minibatch.WithBatchRows rows, split into X and Y by the source's
// minibatch.Roles. Only the columns of X and Y are read (all of them when no
// inputs are named), from the row groups chosen by minibatch.WithRowGroups
// (default: all). It is replayable.
//
// Cost: the decoding of the chosen column chunks, one batch at a time;
// memory is bounded by the batch size, the pages being decoded, and the
// compressed column chunks of the current row group, which are read whole
// (each checked, when the source is made, to lie inside the file). A
// source is read by one goroutine at a time.
type Source struct {
	name    string
	cfg     minibatch.SourceSettings
	split   minibatch.RoleSplitter
	file    *os.File // owned, when opened from a path
	pf      *file.Reader
	fr      *pqarrow.FileReader
	leaves  []int // the leaf columns to read
	fileSch *arrow.Schema
	xSchema *arrow.Schema
	rr      pqarrow.RecordReader // the current pass; nil before the first Next
	seq     int64
	err     error
	done    bool
}

var (
	_ flow.Source   = (*Source)(nil)
	_ flow.Rewinder = (*Source)(nil)
	_ io.Closer     = (*Source)(nil)
)

// Open opens the Parquet file at path. The source owns the open file and
// Close closes it. Errors name the path. It reads the options
// minibatch.WithRoles, WithInputs, WithLabels, WithBatchRows,
// WithAllocator, WithName and WithRowGroups, and ignores the others.
func Open(path string, opts ...minibatch.Option) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("minibatch: parquet: %w", err)
	}
	s, err := newSource(f, path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.file = f
	return s, nil
}

// New reads a Parquet file from r, which the caller keeps open while the
// source is used and closes after Close. Errors name the source by
// minibatch.WithName (default "<reader>"). It reads the options that Open
// reads.
func New(r pq.ReaderAtSeeker, opts ...minibatch.Option) (*Source, error) {
	return newSource(r, "<reader>", opts)
}

func newSource(r pq.ReaderAtSeeker, name string, opts []minibatch.Option) (_ *Source, err error) {
	cfg, err := minibatch.ResolveSourceOptions(opts...)
	if err != nil {
		return nil, err
	}
	if cfg.Name != "" {
		name = cfg.Name
	}
	s := &Source{name: name, cfg: cfg}
	s.split.Roles = cfg.Roles
	// Wrapped so that file.Reader.Close does not close the caller's r.
	err = noPanic(func() (err error) {
		s.pf, err = file.NewParquetReader(struct{ pq.ReaderAtSeeker }{r}, file.WithReadProps(pq.NewReaderProperties(cfg.Allocator)))
		return err
	})
	if err != nil {
		return nil, s.errorf("not a readable Parquet file: %w", err)
	}
	defer func() {
		if err != nil {
			s.pf.Close()
		}
	}()
	err = noPanic(func() (err error) {
		s.fr, err = pqarrow.NewFileReader(s.pf, pqarrow.ArrowReadProperties{BatchSize: int64(cfg.BatchRows)}, cfg.Allocator)
		return err
	})
	if err != nil {
		return nil, s.errorf("%w", err)
	}
	for _, g := range cfg.RowGroups {
		if g < 0 || g >= s.pf.NumRowGroups() {
			return nil, s.errorf("row group %d does not exist; the file has %d", g, s.pf.NumRowGroups())
		}
	}
	var full *arrow.Schema
	err = noPanic(func() (err error) {
		full, err = s.fr.Schema()
		return err
	})
	if err != nil {
		return nil, s.errorf("%w", err)
	}
	if s.xSchema, err = s.split.XSchema(full); err != nil {
		return nil, s.errorf("%w", err)
	}
	// The leaf columns of the needed top-level fields.
	needed := cfg.Roles.Needed()
	fields := s.fr.Manifest.Fields
	for i := range fields {
		if needed != nil && !slices.Contains(needed, fields[i].Field.Name) {
			continue
		}
		s.leaves = appendLeaves(s.leaves, &fields[i])
	}
	s.fileSch = full
	if err := s.checkChunks(); err != nil {
		return nil, err
	}
	return s, nil
}

// checkChunks checks that the column chunks to read lie inside the file.
// The reader reads a chunk whole into a buffer of the length that the
// footer gives, so a footer that lies about it would otherwise ask for
// any amount of memory (16 GiB from a file of 2 KiB).
func (s *Source) checkChunks() error {
	md := s.pf.MetaData()
	size := md.GetSourceFileSize()
	groups := s.cfg.RowGroups
	if len(groups) == 0 {
		groups = make([]int, s.pf.NumRowGroups())
		for i := range groups {
			groups[i] = i
		}
	}
	for _, g := range groups {
		rg := md.RowGroup(g)
		for _, c := range s.leaves {
			col, err := rg.ColumnChunk(c)
			if err != nil {
				return s.errorf("row group %d: %w", g, err)
			}
			start := col.DataPageOffset()
			if col.HasDictionaryPage() && col.DictionaryPageOffset() > 0 && start > col.DictionaryPageOffset() {
				start = col.DictionaryPageOffset()
			}
			if n := col.TotalCompressedSize(); start < 0 || n < 0 || start > size || n > size-start {
				return s.errorf("row group %d, column %q: a chunk of %d bytes at byte %d does not fit in the file's %d bytes of data (a corrupt footer)",
					g, md.Schema.Column(c).Path(), n, start, size)
			}
		}
	}
	return nil
}

func appendLeaves(out []int, f *pqarrow.SchemaField) []int {
	if f.IsLeaf() {
		return append(out, f.ColIndex)
	}
	for i := range f.Children {
		out = appendLeaves(out, &f.Children[i])
	}
	return out
}

func (s *Source) errorf(format string, args ...any) error {
	return fmt.Errorf("minibatch: parquet %q: "+format, append([]any{s.name}, args...)...)
}

// Schema returns the schema of X: the input columns, in order, known from
// the file's footer before the first batch. It stays valid after Close.
func (s *Source) Schema() *arrow.Schema { return s.xSchema }

// FileSchema returns the Arrow schema of the whole file (before the choice
// of columns and the split into X and Y).
func (s *Source) FileSchema() *arrow.Schema { return s.fileSch }

// NumRows returns the number of rows in the chosen row groups (0 after
// Close).
func (s *Source) NumRows() int64 {
	if s.pf == nil {
		return 0
	}
	if len(s.cfg.RowGroups) == 0 {
		return s.pf.NumRows()
	}
	var n int64
	for _, g := range s.cfg.RowGroups {
		n += s.pf.MetaData().RowGroup(g).NumRows()
	}
	return n
}

// Next returns the next batch of up to WithBatchRows rows, split into X and
// Y, with Seq 0, 1, 2, … in this pass and Epoch 0; the caller owns and
// releases it. It returns io.EOF after the last row; a corrupt page is an
// error naming the file and the batch, which ends the pass.
func (s *Source) Next(ctx context.Context) (flow.Batch, error) {
	switch {
	case s.fr == nil:
		return flow.Batch{}, s.errorf("Next after Close")
	case s.err != nil:
		return flow.Batch{}, s.err
	case s.done:
		return flow.Batch{}, io.EOF
	}
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	if s.rr == nil {
		// pqarrow keeps the context of the reader for the whole pass; the
		// pass outlives this call, so it gets ctx without its cancellation
		// (Next checks ctx itself).
		var rr pqarrow.RecordReader
		err := noPanic(func() (err error) {
			rr, err = s.fr.GetRecordReader(context.WithoutCancel(ctx), s.leaves, s.cfg.RowGroups)
			return err
		})
		if err != nil {
			s.err = s.errorf("%w", err)
			return flow.Batch{}, s.err
		}
		s.rr = rr
	}
	rec, err := readParquetBatch(s.rr)
	if err != nil {
		if err == io.EOF {
			s.done = true
			return flow.Batch{}, io.EOF
		}
		s.err = s.errorf("batch %d (rows from %d): %w", s.seq, s.seq*int64(s.cfg.BatchRows), err)
		return flow.Batch{}, s.err
	}
	defer rec.Release()
	x, y, err := s.split.Split(rec)
	if err != nil {
		s.err = s.errorf("batch %d: %w", s.seq, err)
		return flow.Batch{}, s.err
	}
	b := flow.Batch{Seq: s.seq, X: x, Y: y}
	s.seq++
	return b, nil
}

// noPanic runs read, a call into arrow-go's Parquet reader over bytes from
// outside, and returns its error. arrow-go panics on some corrupt input (a
// footer with an invalid logical type, say) instead of returning an error;
// this is the boundary where such input becomes an error.
func noPanic(read func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("corrupt file: %v", p)
		}
	}()
	return read()
}

// readParquetBatch reads the next record, owned by the caller, or io.EOF.
// pqarrow's page decoders panic on some corrupt input instead of returning
// an error; this is the boundary where such input becomes an error.
func readParquetBatch(rr pqarrow.RecordReader) (rec arrow.RecordBatch, err error) {
	defer func() {
		if p := recover(); p != nil {
			rec, err = nil, fmt.Errorf("corrupt data: %v", p)
		}
	}()
	rec, err = rr.Read()
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, io.EOF
	}
	if err := oneValuePerRow(rec); err != nil {
		return nil, err
	}
	rec.Retain()
	return rec, nil
}

// oneValuePerRow refuses a record whose columns hold other numbers of
// values than it has rows: arrow-go's record checks only that none holds
// fewer, and a corrupt file's column chunk may hold more.
func oneValuePerRow(rec arrow.RecordBatch) error {
	for i, col := range rec.Columns() {
		if n := int64(col.Len()); n != rec.NumRows() {
			return fmt.Errorf("corrupt data: column %d (%s) holds %d values in a batch of %d rows; want one per row", i, rec.Schema().Field(i).Name, n, rec.NumRows())
		}
	}
	return nil
}

// Rewind starts a new pass from the first chosen row group. It always
// succeeds on an open source.
func (s *Source) Rewind() error {
	if s.fr == nil {
		return s.errorf("Rewind after Close")
	}
	if s.rr != nil {
		s.rr.Release()
		s.rr = nil
	}
	s.seq, s.err, s.done = 0, nil, false
	return nil
}

// Replayable reports true until Close: a Parquet file can always be read
// again.
func (s *Source) Replayable() bool { return s.fr != nil }

// Close releases the reader and what it holds, and closes the file if the
// source opened it. Batches already returned stay valid. Close is
// idempotent.
func (s *Source) Close() error {
	if s.rr != nil {
		s.rr.Release()
		s.rr = nil
	}
	var err error
	if s.pf != nil {
		err = s.pf.Close()
		s.pf, s.fr = nil, nil
	}
	if s.file != nil {
		if cerr := s.file.Close(); err == nil {
			err = cerr
		}
		s.file = nil
	}
	if err != nil {
		return s.errorf("close: %w", err)
	}
	return nil
}
