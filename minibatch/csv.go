package minibatch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/klauspost/compress/gzip"

	"github.com/penstock-ml/penstock/flow"
)

// CSVSource reads a CSV table (RFC 4180, as encoding/csv reads it) as
// batches of WithBatchRows rows, split into X and Y by the source's Roles.
// Input compressed with gzip is recognised by its magic number and
// decompressed on the fly, up to WithMaxInputBytes.
//
// Columns: the names come from the header line (WithHeader, default true),
// WithColumnNames or WithSchema. The types come from WithSchema, or are
// inferred from the first WithInferRows rows (default 1000): a column whose
// non-null values all parse as int64 is int64, else float64, else bool
// ("true"/"false", any case), else string; a column with no non-null value
// there is string. Inferred columns are nullable. Fields equal to one of
// WithNullValues are null. Only the columns in X and Y are parsed.
//
// Errors: a ragged row, a value that does not parse as its column's type, a
// null in a non-nullable column, a line longer than WithMaxRowBytes, or
// malformed quoting fails the batch that holds it — no partial batch is
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
	cols    []csvColumn   // every column; parse is nil for unneeded ones
	inputs  []int
	labels  []int
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

// csvAppender parses a field's text and appends the value to its builder;
// it returns false when the text is not a valid value.
type csvAppender func(v string) bool

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
	if sk, ok := r.(io.Seeker); ok && r != nil {
		if s.start, err = sk.Seek(0, io.SeekCurrent); err == nil {
			s.seeker = sk
		}
	}
	if cfg.schema != nil && len(cfg.colNames) > 0 {
		return nil, s.errorf("WithSchema and WithColumnNames both name the columns; give one")
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

func (s *CSVSource) errorf(format string, args ...any) error {
	return fmt.Errorf("minibatch: csv %q: "+format, append([]any{s.name}, args...)...)
}

// csvInput is one pass over the input: the file or reader, the gzip layer,
// the line-length guard and the CSV reader.
type csvInput struct {
	file  *os.File
	gz    *gzip.Reader
	guard *lineGuard
	csv   *csv.Reader
}

func (in *csvInput) close() error {
	var err error
	if in.gz != nil {
		err = in.gz.Close()
	}
	if in.file != nil {
		if cerr := in.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// openPass opens the input for a new pass, without reading a record.
func (s *CSVSource) openPass() error {
	in := &csvInput{}
	var raw io.Reader
	if s.path != "" {
		f, err := os.Open(s.path)
		if err != nil {
			return fmt.Errorf("minibatch: csv: %w", err)
		}
		in.file, raw = f, f
	} else {
		raw = s.r
	}
	br := bufio.NewReaderSize(raw, 64<<10)
	var body io.Reader = br
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			in.close()
			return s.errorf("gzip: %w", err)
		}
		in.gz = gz
		body = &boundedReader{r: gz, left: s.cfg.maxInputBytes, limit: s.cfg.maxInputBytes}
	}
	in.guard = &lineGuard{r: body, max: s.cfg.maxRowBytes}
	c := csv.NewReader(in.guard)
	c.Comma = s.cfg.comma
	c.ReuseRecord = true
	c.FieldsPerRecord = 0
	if s.cols != nil {
		c.FieldsPerRecord = len(s.cols)
	}
	in.csv = c
	s.in = in
	s.seq, s.err, s.done = 0, nil, false
	return nil
}

// read reads the next record; it returns io.EOF at the end, and otherwise
// an error that names the line.
func (s *CSVSource) read() ([]string, int, error) {
	rec, err := s.in.csv.Read()
	if err == nil {
		line, _ := s.in.csv.FieldPos(0)
		return rec, line, nil
	}
	if err == io.EOF {
		return nil, 0, io.EOF
	}
	if errors.Is(err, errLineTooLong) {
		return nil, 0, s.errorf("line %d: longer than %d bytes (WithMaxRowBytes)", s.in.guard.lines+1, s.cfg.maxRowBytes)
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			cols := ""
			if s.names != nil {
				cols = " (columns " + quoteList(s.names) + ")"
			}
			return nil, 0, s.errorf("line %d: has %d fields, want %d%s", pe.StartLine, len(rec), s.in.csv.FieldsPerRecord, cols)
		}
		return nil, 0, s.errorf("line %d, byte %d of the line: %w", pe.Line, pe.Column, pe.Err)
	}
	return nil, 0, s.errorf("line %d: %w", s.in.guard.lines+1, err)
}

// readHead reads the header and the rows for inference, and sets the
// columns.
func (s *CSVSource) readHead() error {
	cfg := s.cfg
	var names []string
	if cfg.header {
		rec, _, err := s.read()
		if err == io.EOF {
			return s.errorf("empty input: no header line")
		}
		if err != nil {
			return err
		}
		names = slices.Clone(rec)
		s.names = names
	}
	var fields []arrow.Field
	switch {
	case cfg.schema != nil:
		fields = cfg.schema.Fields()
		if names != nil {
			if len(names) != len(fields) {
				return s.errorf("line 1: header has %d columns, the schema %d", len(names), len(fields))
			}
			for i, n := range names {
				if n != fields[i].Name {
					return s.errorf("line 1: header column %d is %q; the schema says %q", i+1, n, fields[i].Name)
				}
			}
		}
	case len(cfg.colNames) > 0:
		if names != nil && len(names) != len(cfg.colNames) {
			return s.errorf("line 1: header has %d columns, WithColumnNames %d", len(names), len(cfg.colNames))
		}
		names = cfg.colNames
		s.names = names
	}
	if fields == nil {
		// Read the rows for inference (copies: the reader reuses records).
		for len(s.pending) < cfg.inferRows {
			rec, line, err := s.read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if names == nil {
				names = make([]string, len(rec))
				for i := range names {
					names[i] = "c" + strconv.Itoa(i)
				}
			}
			if len(rec) != len(names) {
				return s.errorf("line %d: has %d fields, want %d (columns %s)", line, len(rec), len(names), quoteList(names))
			}
			s.pending = append(s.pending, csvRow{line: line, fields: cloneStrings(rec)})
		}
		if names == nil {
			return s.errorf("empty input: no header and no rows")
		}
		fields = s.infer(names)
	}
	s.schema = arrow.NewSchema(fields, nil)
	s.names = make([]string, 0, len(fields))
	for _, f := range fields {
		s.names = append(s.names, f.Name)
	}
	s.in.csv.FieldsPerRecord = len(fields)
	var err error
	if s.inputs, s.labels, err = cfg.roles.Columns(s.schema); err != nil {
		return s.errorf("%w", err)
	}
	s.cols = make([]csvColumn, len(fields))
	for i, f := range fields {
		s.cols[i].field = f
	}
	s.xSchema = projectSchema(s.schema, s.inputs)
	if s.xb, s.xput, err = s.appenders(s.inputs); err != nil {
		return err
	}
	if len(s.labels) > 0 {
		s.ySchema = projectSchema(s.schema, s.labels)
		if s.yb, s.yput, err = s.appenders(s.labels); err != nil {
			return err
		}
	}
	return nil
}

// appenders makes a builder and its appender for each column in idx.
func (s *CSVSource) appenders(idx []int) ([]array.Builder, []csvAppender, error) {
	isNull := s.nullChecker()
	bs := make([]array.Builder, 0, len(idx))
	puts := make([]csvAppender, 0, len(idx))
	for _, i := range idx {
		c := &s.cols[i]
		b := array.NewBuilder(s.cfg.mem, c.field.Type)
		put, want := csvParser(c.field, b, isNull, s.cfg.nullValues)
		if put == nil {
			b.Release()
			releaseBuilders(bs)
			return nil, nil, s.errorf("column %q: unsupported type %s (want bool, an integer, a float or string)", c.field.Name, c.field.Type)
		}
		c.want = want
		bs = append(bs, b)
		puts = append(puts, put)
	}
	return bs, puts, nil
}

func projectSchema(schema *arrow.Schema, idx []int) *arrow.Schema {
	fields := make([]arrow.Field, len(idx))
	for i, j := range idx {
		fields[i] = schema.Field(j)
	}
	return arrow.NewSchema(fields, nil)
}

func cloneStrings(rec []string) []string {
	// One allocation for all the fields of the row.
	n := 0
	for _, f := range rec {
		n += len(f)
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, f := range rec {
		sb.WriteString(f)
	}
	all := sb.String()
	out := make([]string, len(rec))
	at := 0
	for i, f := range rec {
		out[i] = all[at : at+len(f)]
		at += len(f)
	}
	return out
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// infer chooses each column's type from the pending rows.
func (s *CSVSource) infer(names []string) []arrow.Field {
	isNull := s.nullChecker()
	fields := make([]arrow.Field, len(names))
	for c, name := range names {
		isInt, isFloat, isBool, seen := true, true, true, false
		for _, row := range s.pending {
			v := row.fields[c]
			if isNull(v) {
				continue
			}
			seen = true
			if isInt {
				if _, err := strconv.ParseInt(v, 10, 64); err != nil {
					isInt = false
				}
			}
			if isFloat && !isInt {
				if _, err := strconv.ParseFloat(v, 64); err != nil {
					isFloat = false
				}
			}
			if isBool {
				if _, ok := parseBool(v); !ok {
					isBool = false
				}
			}
		}
		var dt arrow.DataType
		switch {
		case !seen:
			dt = arrow.BinaryTypes.String
		case isInt:
			dt = arrow.PrimitiveTypes.Int64
		case isFloat:
			dt = arrow.PrimitiveTypes.Float64
		case isBool:
			dt = arrow.FixedWidthTypes.Boolean
		default:
			dt = arrow.BinaryTypes.String
		}
		fields[c] = arrow.Field{Name: name, Type: dt, Nullable: true}
	}
	return fields
}

func (s *CSVSource) nullChecker() func(string) bool {
	nulls := s.cfg.nullValues
	maxLen := 0
	for _, n := range nulls {
		maxLen = max(maxLen, len(n))
	}
	return func(v string) bool {
		if len(v) > maxLen {
			return false
		}
		for _, n := range nulls {
			if v == n {
				return true
			}
		}
		return false
	}
}

func parsesAsNumber(dt arrow.DataType, v string) bool {
	var err error
	switch {
	case arrow.IsFloating(dt.ID()):
		_, err = strconv.ParseFloat(v, 64)
	case arrow.IsSignedInteger(dt.ID()):
		_, err = strconv.ParseInt(v, 10, 64)
	default:
		_, err = strconv.ParseUint(v, 10, 64)
	}
	return err == nil
}

func parseBool(v string) (bool, bool) {
	switch {
	case strings.EqualFold(v, "true"):
		return true, true
	case strings.EqualFold(v, "false"):
		return false, true
	}
	return false, false
}

// csvParser returns the appender of field's values to b, and the name of
// what it expects; nil for an unsupported type. Null values are nulls only
// in a nullable field. Numbers are parsed first and checked for null only
// when they do not parse, unless a null value parses as a number ("NaN").
func csvParser(field arrow.Field, b array.Builder, isNull func(string) bool, nulls []string) (csvAppender, string) {
	// value parses v and appends it, reporting whether v was valid.
	var value func(v string) bool
	var want string
	ints := func(bits int, put func(int64)) func(string) bool {
		return func(v string) bool {
			n, err := strconv.ParseInt(v, 10, bits)
			if err == nil {
				put(n)
			}
			return err == nil
		}
	}
	uints := func(bits int, put func(uint64)) func(string) bool {
		return func(v string) bool {
			n, err := strconv.ParseUint(v, 10, bits)
			if err == nil {
				put(n)
			}
			return err == nil
		}
	}
	switch dt := field.Type; dt.ID() {
	case arrow.FLOAT64:
		fb := b.(*array.Float64Builder)
		value, want = func(v string) bool {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				fb.Append(f)
			}
			return err == nil
		}, "float64"
	case arrow.FLOAT32:
		fb := b.(*array.Float32Builder)
		value, want = func(v string) bool {
			f, err := strconv.ParseFloat(v, 32)
			if err == nil {
				fb.Append(float32(f))
			}
			return err == nil
		}, "float32"
	case arrow.INT64:
		ib := b.(*array.Int64Builder)
		value, want = ints(64, func(n int64) { ib.Append(n) }), "int64"
	case arrow.INT32:
		ib := b.(*array.Int32Builder)
		value, want = ints(32, func(n int64) { ib.Append(int32(n)) }), "int32"
	case arrow.INT16:
		ib := b.(*array.Int16Builder)
		value, want = ints(16, func(n int64) { ib.Append(int16(n)) }), "int16"
	case arrow.INT8:
		ib := b.(*array.Int8Builder)
		value, want = ints(8, func(n int64) { ib.Append(int8(n)) }), "int8"
	case arrow.UINT64:
		ub := b.(*array.Uint64Builder)
		value, want = uints(64, func(n uint64) { ub.Append(n) }), "uint64"
	case arrow.UINT32:
		ub := b.(*array.Uint32Builder)
		value, want = uints(32, func(n uint64) { ub.Append(uint32(n)) }), "uint32"
	case arrow.UINT16:
		ub := b.(*array.Uint16Builder)
		value, want = uints(16, func(n uint64) { ub.Append(uint16(n)) }), "uint16"
	case arrow.UINT8:
		ub := b.(*array.Uint8Builder)
		value, want = uints(8, func(n uint64) { ub.Append(uint8(n)) }), "uint8"
	case arrow.BOOL:
		bb := b.(*array.BooleanBuilder)
		value, want = func(v string) bool {
			x, ok := parseBool(v)
			if ok {
				bb.Append(x)
			}
			return ok
		}, "bool (true or false)"
	case arrow.STRING:
		sb := b.(*array.StringBuilder)
		value, want = func(v string) bool {
			sb.Append(v)
			return true
		}, "string"
	default:
		return nil, ""
	}
	if !field.Nullable {
		return value, want
	}
	nullFirst := field.Type.ID() == arrow.STRING || field.Type.ID() == arrow.BOOL
	for _, n := range nulls {
		if parsesAsNumber(field.Type, n) {
			nullFirst = true // a null value that parses, e.g. "NaN"
		}
	}
	if nullFirst {
		return func(v string) bool {
			if isNull(v) {
				b.AppendNull()
				return true
			}
			return value(v)
		}, want
	}
	return func(v string) bool {
		if value(v) {
			return true
		}
		if isNull(v) {
			b.AppendNull()
			return true
		}
		return false
	}, want
}

// Schema returns the schema of every column of the table, as given or
// inferred (before the split into X and Y).
func (s *CSVSource) Schema() *arrow.Schema { return s.schema }

// Next returns the next batch of up to WithBatchRows rows, split into X and
// Y, with Seq 0, 1, 2, … in this pass and Epoch 0; the caller owns and
// releases it. It returns io.EOF after the last row. ctx is checked every
// 1024 rows.
func (s *CSVSource) Next(ctx context.Context) (flow.Batch, error) {
	switch {
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
			return flow.Batch{}, s.errorf("line %d: has %d fields, want %d (columns %s)", line, len(rec), len(s.cols), quoteList(s.names))
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

func (s *CSVSource) parseError(col int, v string, line int) error {
	c := &s.cols[col]
	if !c.field.Nullable && slices.Contains(s.cfg.nullValues, v) {
		return s.errorf("line %d: column %q: null value %q in a column that is not nullable", line, c.field.Name, v)
	}
	hint := ""
	if s.cfg.schema == nil {
		hint = fmt.Sprintf(" (type inferred from the first %d rows; set WithSchema or WithInferRows)", s.cfg.inferRows)
	}
	return s.errorf("line %d: column %q: cannot parse %s as %s%s", line, c.field.Name, quoteField(v), c.want, hint)
}

func quoteField(v string) string {
	const show = 40
	if len(v) > show {
		return strconv.Quote(v[:show]) + fmt.Sprintf("… (%d bytes)", len(v))
	}
	return strconv.Quote(v)
}

func releaseBuilders(bs []array.Builder) {
	for _, b := range bs {
		b.Release()
	}
}

// resetBuilders drops what the builders hold.
func resetBuilders(bs []array.Builder) {
	for _, b := range bs {
		b.NewArray().Release()
	}
}

// csvRecord makes a record of what the builders hold, which resets them.
func csvRecord(schema *arrow.Schema, bs []array.Builder, rows int) arrow.RecordBatch {
	cols := make([]arrow.Array, len(bs))
	for i, b := range bs {
		cols[i] = b.NewArray()
	}
	rec := array.NewRecordBatch(schema, cols, int64(rows))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// Replayable reports whether Rewind can work: the source was opened from a
// path or made from an io.Seeker.
func (s *CSVSource) Replayable() bool { return s.path != "" || s.seeker != nil }

// Rewind starts a new pass from the first row: it reopens the file or seeks
// the reader back, and skips the header. The types found by inference are
// kept. It returns an error wrapping ErrNotReplayable when the input is an
// io.Reader that is not an io.Seeker.
func (s *CSVSource) Rewind() error {
	if s.in == nil {
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

var errLineTooLong = errors.New("line too long")

// lineGuard passes bytes through and fails when a line runs longer than
// max bytes, so that one endless line cannot fill the memory. It counts the
// lines it has passed.
type lineGuard struct {
	r     io.Reader
	max   int
	run   int // bytes since the last newline
	lines int // newlines passed
	err   error
}

func (g *lineGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	chunk := p[:n]
	first := bytes.IndexByte(chunk, '\n')
	if first < 0 {
		if g.run+n <= g.max {
			g.run += n
			return n, err
		}
	} else {
		last := bytes.LastIndexByte(chunk, '\n')
		if g.run+first <= g.max && n-last-1 <= g.max && (last-first-1 <= g.max || longestLine(chunk[first+1:last+1]) <= g.max) {
			g.lines += bytes.Count(chunk, []byte{'\n'})
			g.run = n - last - 1
			return n, err
		}
	}
	// A line runs over: pass on the whole lines before it, then fail.
	start := 0
	for {
		i := bytes.IndexByte(chunk[start:], '\n')
		if i < 0 || g.run+i > g.max {
			break
		}
		g.lines++
		g.run = 0
		start += i + 1
	}
	g.err = errLineTooLong
	if start > 0 {
		return start, nil
	}
	return 0, g.err
}

// longestLine returns the length of the longest line in b, which ends with
// a newline. It is only called when a chunk is long enough to hold a line
// longer than the bound.
func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		longest = max(longest, i)
		b = b[i+1:]
	}
	return longest
}

// boundedReader fails once more than limit bytes have been read.
type boundedReader struct {
	r     io.Reader
	left  int64
	limit int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, fmt.Errorf("decompressed input exceeds %d bytes (WithMaxInputBytes)", b.limit)
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, fmt.Errorf("decompressed input exceeds %d bytes (WithMaxInputBytes)", b.limit)
	}
	return n, err
}
