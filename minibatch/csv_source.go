package minibatch

import (
	"context"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
)

// CSVSource reads a CSV table (RFC 4180, as encoding/csv reads it) as
// batches of WithBatchRows rows, split into X and Y by the source's Roles.
// Input compressed with gzip is recognised by its magic number and
// decompressed on the fly, up to WithMaxInputBytes; a stream of several
// gzip members is read as one. Lines may end with LF, CRLF or CR alone (old
// Mac), mixed; a UTF-8 byte-order mark at the start is skipped.
//
// Columns: the names come from the header line (WithHeader, default true),
// WithColumnNames or WithSchema, and must be unique. The types come from
// WithSchema, or are inferred from the first WithInferRows rows (default
// 1000): a column whose non-null values all parse as int64 is int64, else
// float64, else bool ("true"/"false", any case), else string; a column with
// no non-null value there is string. Inferred columns are nullable. Fields
// equal to one of WithNullValues are null. Only the columns in X and Y are
// parsed, and string values must be valid UTF-8.
//
// Errors: nothing is skipped or guessed silently. A header that is all
// numbers (the first row of a file without a header, unless WithHeader(true)
// was given), duplicate column names, a ragged row, a blank line between
// rows (blank lines at the end are allowed), a value that does not parse as
// its column's type, a null in a non-nullable column, invalid UTF-8 in a
// string column, a NUL byte, a UTF-16 file, a record longer than
// WithMaxRowBytes (a quote left open makes the record run on), malformed
// quoting (a quote still open at the end), a truncated gzip stream or bytes
// after it: each fails the batch that holds it — no partial batch is
// returned — with an error naming the input, the 1-based line number, the
// column and what was expected, e.g.
//
//	minibatch: csv "data.csv": line 17: column "x": cannot parse "abc" as float64
//
// The error ends the pass and is returned again until Rewind.
//
// Cost: one pass over the bytes per pass over the data; memory is bounded
// by WithBatchRows × row size, plus the rows held for inference. A source is
// read by one goroutine at a time.
type CSVSource struct {
	name   string
	cfg    *sourceConfig
	path   string    // set when opened from a path: replay reopens it
	r      io.Reader // set when made from a reader
	seeker io.Seeker // set when r can be rewound
	start  int64

	names   []string      // the column names, once known
	schema  *arrow.Schema // every column of the file
	cols    []csvColumn   // every column
	inputs  []int
	labels  []int
	closed  bool
	xSchema *arrow.Schema
	ySchema *arrow.Schema
	xb, yb  []array.Builder // reused from batch to batch
	xput    []csvAppender   // appenders bound to xb, by input
	yput    []csvAppender

	// The current pass.
	in      *csvInput
	pending []csvRow // rows read for inference, not yet returned
	seq     int64
	err     error
	done    bool
}

var (
	_ flow.Source   = (*CSVSource)(nil)
	_ flow.Rewinder = (*CSVSource)(nil)
)

type csvRow struct {
	line   int
	fields []string
}

type csvColumn struct {
	field arrow.Field
	want  string // what a value must be, for errors
}

// OpenCSV opens the CSV file at path (plain or gzip-compressed). The
// source is replayable: Rewind reopens the file. It holds the file open
// until Close. Errors name the path.
func OpenCSV(path string, opts ...SourceOption) (*CSVSource, error) {
	return newCSV(path, nil, path, opts)
}

// NewCSV reads a CSV table (plain or gzip-compressed) from r, from its
// current position. The source is replayable if r is an io.Seeker. The
// caller keeps r open while the source is used and closes it after Close.
// Errors name the source by WithName (default "<reader>").
func NewCSV(r io.Reader, opts ...SourceOption) (*CSVSource, error) {
	return newCSV("", r, "<reader>", opts)
}

func newCSV(path string, r io.Reader, name string, opts []SourceOption) (*CSVSource, error) {
	cfg, err := newSourceConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.name != "" {
		name = cfg.name
	}
	s := &CSVSource{name: name, cfg: cfg, path: path, r: r}
	if err := s.checkConfig(); err != nil {
		return nil, err
	}
	if sk, ok := r.(io.Seeker); ok && r != nil {
		if s.start, err = sk.Seek(0, io.SeekCurrent); err == nil {
			s.seeker = sk
		}
	}
	if err := s.openPass(); err != nil {
		return nil, err
	}
	if err := s.readHead(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// checkConfig rejects options that cannot work, before any byte is read.
func (s *CSVSource) checkConfig() error {
	cfg := s.cfg
	if c := cfg.comma; c == 0 || c == '"' || c == '\r' || c == '\n' || c == utf8.RuneError || !utf8.ValidRune(c) {
		return s.errorf("WithComma(%q): a delimiter cannot be NUL, a quote, CR, LF or an invalid rune", c)
	}
	if cfg.schema != nil && len(cfg.colNames) > 0 {
		return s.errorf("WithSchema and WithColumnNames both name the columns; give one")
	}
	if i, j, ok := duplicateName(cfg.colNames); ok {
		return s.errorf("WithColumnNames: columns %d and %d are both named %q; names must be unique", i+1, j+1, cfg.colNames[i])
	}
	if cfg.schema != nil {
		names := make([]string, cfg.schema.NumFields())
		for i, f := range cfg.schema.Fields() {
			names[i] = f.Name
		}
		if i, j, ok := duplicateName(names); ok {
			return s.errorf("WithSchema: columns %d and %d are both named %q; names must be unique", i+1, j+1, names[i])
		}
	}
	return nil
}

func (s *CSVSource) errorf(format string, args ...any) error {
	return fmt.Errorf("minibatch: csv %q: "+format, append([]any{s.name}, args...)...)
}

// Schema returns the schema of X, the input columns, as every source's
// Schema does.
func (s *CSVSource) Schema() *arrow.Schema { return s.xSchema }

// TableSchema returns the schema of every column of the table, as given or
// inferred (before the split into X and Y).
func (s *CSVSource) TableSchema() *arrow.Schema { return s.schema }

// Next returns the next batch of up to WithBatchRows rows, split into X and
// Y, with Seq 0, 1, 2, … in this pass and Epoch 0; the caller owns and
// releases it. It returns io.EOF after the last row. ctx is checked every
// 1024 rows.
func (s *CSVSource) Next(ctx context.Context) (flow.Batch, error) {
	switch {
	case s.closed:
		return flow.Batch{}, s.errorf("read after Close")
	case s.err != nil:
		return flow.Batch{}, s.err
	case s.done:
		return flow.Batch{}, io.EOF
	case s.in == nil:
		return flow.Batch{}, s.errorf("read after Close")
	}
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	b, err := s.nextBatch(ctx)
	if err != nil {
		if err != io.EOF {
			s.err = err
		} else {
			s.done = true
		}
		return flow.Batch{}, err
	}
	return b, nil
}

func (s *CSVSource) nextBatch(ctx context.Context) (_ flow.Batch, err error) {
	n := s.cfg.batchRows
	for _, b := range s.xb {
		b.Reserve(n)
	}
	for _, b := range s.yb {
		b.Reserve(n)
	}
	defer func() {
		if err != nil { // drop the rows of the failed batch
			resetBuilders(s.xb)
			resetBuilders(s.yb)
		}
	}()
	rows := 0
	for rows < n {
		var (
			rec  []string
			line int
		)
		if len(s.pending) > 0 {
			rec, line = s.pending[0].fields, s.pending[0].line
			s.pending[0] = csvRow{}
			s.pending = s.pending[1:]
		} else {
			rec, line, err = s.read()
			if err == io.EOF {
				err = nil
				break
			}
			if err != nil {
				return flow.Batch{}, err
			}
		}
		if len(rec) != len(s.cols) {
			return flow.Batch{}, s.raggedError(line, len(rec), len(s.cols))
		}
		for k, i := range s.inputs {
			if !s.xput[k](rec[i]) {
				return flow.Batch{}, s.parseError(i, rec[i], line)
			}
		}
		for k, i := range s.labels {
			if !s.yput[k](rec[i]) {
				return flow.Batch{}, s.parseError(i, rec[i], line)
			}
		}
		rows++
		if rows%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return flow.Batch{}, context.Cause(ctx)
			}
		}
	}
	if rows == 0 {
		return flow.Batch{}, io.EOF
	}
	b := flow.Batch{Seq: s.seq, X: csvRecord(s.xSchema, s.xb, rows)}
	if s.yb != nil {
		b.Y = csvRecord(s.ySchema, s.yb, rows)
	}
	s.seq++
	return b, nil
}

// Replayable reports whether Rewind can work: the source was opened from a
// path or made from an io.Seeker.
func (s *CSVSource) Replayable() bool { return !s.closed && (s.path != "" || s.seeker != nil) }

// Rewind starts a new pass from the first row: it reopens the file or seeks
// the reader back, and skips the header. The types found by inference are
// kept. It returns an error wrapping ErrNotReplayable when the input is an
// io.Reader that is not an io.Seeker.
func (s *CSVSource) Rewind() error {
	if s.closed || s.in == nil {
		return s.errorf("rewind after Close")
	}
	if !s.Replayable() {
		return s.errorf("rewind: %w (made from an io.Reader that is not an io.Seeker)", ErrNotReplayable)
	}
	if err := s.in.close(); err != nil {
		s.in = nil
		return s.errorf("rewind: %w", err)
	}
	s.in, s.pending = nil, nil
	if s.seeker != nil {
		if _, err := s.seeker.Seek(s.start, io.SeekStart); err != nil {
			return s.errorf("rewind: %w", err)
		}
	}
	if err := s.openPass(); err != nil {
		return err
	}
	if s.cfg.header {
		if _, _, err := s.read(); err != nil {
			if err == io.EOF {
				err = s.errorf("rewind: the header line is gone")
			}
			s.err = err
			return err
		}
	}
	return nil
}

// Close closes the file if the source opened it and drops the rows held.
// Batches already returned stay valid. Close is idempotent.
func (s *CSVSource) Close() error {
	s.closed = true
	s.pending = nil
	releaseBuilders(s.xb)
	releaseBuilders(s.yb)
	s.xb, s.yb, s.xput, s.yput = nil, nil, nil, nil
	if s.in == nil {
		return nil
	}
	err := s.in.close()
	s.in = nil
	if err != nil {
		return s.errorf("close: %w", err)
	}
	return nil
}
