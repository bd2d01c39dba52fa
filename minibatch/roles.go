package minibatch

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ErrNotReplayable is returned by Rewind on a source whose input cannot be
// read again (a plain io.Reader, a channel). Test with errors.Is.
var ErrNotReplayable = errors.New("minibatch: source is not replayable")

// Roles names which columns of a table are inputs (X) and which are
// expected outputs (Y, labels). Its zero value puts every column in X and
// makes Y nil.
type Roles struct {
	// Inputs are the columns of X, in this order. Empty means every column
	// that is not a label, in the table's order.
	Inputs []string
	// Labels are the columns of Y, in this order. Empty means no Y (nil).
	Labels []string
}

// Columns returns the indices in schema of the input and label columns. It
// returns an error naming the first column that schema lacks, a column that
// is named twice, or a column that is both an input and a label. Its cost is
// O(columns).
func (r Roles) Columns(schema *arrow.Schema) (inputs, labels []int, err error) {
	seen := make(map[string]string, len(r.Inputs)+len(r.Labels))
	find := func(name, role string) (int, error) {
		if prev, ok := seen[name]; ok {
			if prev == role {
				return 0, fmt.Errorf("minibatch: column %q named twice as %s", name, role)
			}
			return 0, fmt.Errorf("minibatch: column %q is both an input and a label", name)
		}
		seen[name] = role
		idx := schema.FieldIndices(name)
		switch len(idx) {
		case 0:
			return 0, fmt.Errorf("minibatch: %s column %q not found; have %s", role, name, fieldList(schema))
		case 1:
			return idx[0], nil
		}
		return 0, fmt.Errorf("minibatch: %s column %q is ambiguous: the schema has %d columns of that name", role, name, len(idx))
	}
	for _, name := range r.Labels {
		i, err := find(name, "label")
		if err != nil {
			return nil, nil, err
		}
		labels = append(labels, i)
	}
	if len(r.Inputs) == 0 {
		for i := range schema.NumFields() {
			if !slices.Contains(labels, i) {
				inputs = append(inputs, i)
			}
		}
		return inputs, labels, nil
	}
	for _, name := range r.Inputs {
		i, err := find(name, "input")
		if err != nil {
			return nil, nil, err
		}
		inputs = append(inputs, i)
	}
	return inputs, labels, nil
}

// Needed returns the names of the columns that Split reads, inputs then
// labels, or nil when Inputs is empty (then every column may be needed).
// Column-oriented sources use it to read only those columns.
func (r Roles) Needed() []string {
	if len(r.Inputs) == 0 {
		return nil
	}
	return append(slices.Clone(r.Inputs), r.Labels...)
}

// Split divides rec into an input record x and a label record y (nil when
// Labels is empty), without copying: both share rec's column arrays, each
// holding its own reference. The caller owns x and y and releases them; rec
// stays owned by the caller. Its cost is O(columns).
func (r Roles) Split(rec arrow.RecordBatch) (x, y arrow.RecordBatch, err error) {
	inputs, labels, err := r.Columns(rec.Schema())
	if err != nil {
		return nil, nil, err
	}
	x = project(rec, inputs)
	if len(labels) > 0 {
		y = project(rec, labels)
	}
	return x, y, nil
}

// project returns a new record made of rec's columns at idx; the new record
// holds its own references to them.
func project(rec arrow.RecordBatch, idx []int) arrow.RecordBatch {
	fields := make([]arrow.Field, len(idx))
	cols := make([]arrow.Array, len(idx))
	for i, j := range idx {
		fields[i] = rec.Schema().Field(j)
		cols[i] = rec.Column(j)
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows())
}

func fieldList(schema *arrow.Schema) string {
	names := make([]string, 0, schema.NumFields())
	for _, f := range schema.Fields() {
		names = append(names, fmt.Sprintf("%q", f.Name))
	}
	if len(names) == 0 {
		return "no columns"
	}
	return strings.Join(names, ", ")
}

// Defaults of the source options.
const (
	// DefaultBatchRows is the number of rows per batch of the CSV and
	// Parquet sources.
	DefaultBatchRows = 1024
	// DefaultMaxBatchBytes bounds one IPC record batch: its message body
	// and the sum of its decompressed buffers.
	DefaultMaxBatchBytes = 256 << 20
	// DefaultMaxRowBytes bounds one CSV row (one line of input).
	DefaultMaxRowBytes = 1 << 20
	// DefaultMaxInputBytes bounds the decompressed size of gzip-compressed
	// CSV input.
	DefaultMaxInputBytes = 4 << 30
	// DefaultInferRows is the number of CSV rows read to infer column types.
	DefaultInferRows = 1000
)

// DefaultNullValues are the CSV fields read as null by default.
var DefaultNullValues = []string{"", "NA", "N/A", "null", "NULL"}

// SourceOption configures a source made by this package (CSV, IPC,
// Parquet). Options that do not apply to a source are ignored by it; each
// option says which sources read it.
type SourceOption func(*sourceConfig)

type sourceConfig struct {
	roles         Roles
	batchRows     int
	mem           memory.Allocator
	maxBatchBytes int64
	maxRowBytes   int
	maxInputBytes int64
	name          string
	// CSV
	header     bool
	colNames   []string
	schema     *arrow.Schema
	nullValues []string
	inferRows  int
	comma      rune
	// Parquet
	rowGroups []int
}

func newSourceConfig(opts []SourceOption) (*sourceConfig, error) {
	cfg := &sourceConfig{
		batchRows:     DefaultBatchRows,
		mem:           memory.DefaultAllocator,
		maxBatchBytes: DefaultMaxBatchBytes,
		maxRowBytes:   DefaultMaxRowBytes,
		maxInputBytes: DefaultMaxInputBytes,
		header:        true,
		nullValues:    DefaultNullValues,
		inferRows:     DefaultInferRows,
		comma:         ',',
	}
	for _, o := range opts {
		o(cfg)
	}
	switch {
	case cfg.batchRows <= 0:
		return nil, fmt.Errorf("minibatch: batch rows %d, want > 0", cfg.batchRows)
	case cfg.maxBatchBytes <= 0:
		return nil, fmt.Errorf("minibatch: max batch bytes %d, want > 0", cfg.maxBatchBytes)
	case cfg.maxRowBytes <= 0:
		return nil, fmt.Errorf("minibatch: max row bytes %d, want > 0", cfg.maxRowBytes)
	case cfg.maxInputBytes <= 0:
		return nil, fmt.Errorf("minibatch: max input bytes %d, want > 0", cfg.maxInputBytes)
	case cfg.inferRows <= 0:
		return nil, fmt.Errorf("minibatch: infer rows %d, want > 0", cfg.inferRows)
	case cfg.mem == nil:
		return nil, errors.New("minibatch: nil allocator")
	}
	return cfg, nil
}

// WithRoles sets which columns are inputs and which are labels. The default
// is Roles{}: every column is an input and Y is nil. All sources.
func WithRoles(r Roles) SourceOption {
	return func(c *sourceConfig) {
		c.roles = Roles{Inputs: slices.Clone(r.Inputs), Labels: slices.Clone(r.Labels)}
	}
}

// WithLabels names the label columns (Y). The default is none (Y is nil).
// All sources.
func WithLabels(names ...string) SourceOption {
	return func(c *sourceConfig) { c.roles.Labels = slices.Clone(names) }
}

// WithInputs names the input columns (X), in order. The default is every
// column that is not a label. All sources.
func WithInputs(names ...string) SourceOption {
	return func(c *sourceConfig) { c.roles.Inputs = slices.Clone(names) }
}

// WithBatchRows sets the number of rows per batch; the last batch may be
// shorter. The default is DefaultBatchRows (1024). CSV and Parquet; the IPC
// sources keep the batches as they were written (re-batch them with this
// package's re-batching if needed).
func WithBatchRows(n int) SourceOption {
	return func(c *sourceConfig) { c.batchRows = n }
}

// WithAllocator sets the allocator of the batches' buffers. The default is
// memory.DefaultAllocator. CSV, Parquet and IPC allocate every buffer from
// it.
func WithAllocator(mem memory.Allocator) SourceOption {
	return func(c *sourceConfig) { c.mem = mem }
}

// WithMaxBatchBytes bounds the size in bytes of one IPC record batch (or
// dictionary batch): both its message body as stored and the sum of its
// buffers after decompression (for a stream, with the dictionary batches
// read before it), and its number of rows. A larger batch is an error
// naming the batch and the bound. The default is DefaultMaxBatchBytes
// (256 MiB). IPC.
func WithMaxBatchBytes(n int64) SourceOption {
	return func(c *sourceConfig) { c.maxBatchBytes = n }
}

// WithMaxRowBytes bounds the length in bytes of one CSV line; a longer line
// is an error naming the line. The default is DefaultMaxRowBytes (1 MiB).
// CSV.
func WithMaxRowBytes(n int) SourceOption {
	return func(c *sourceConfig) { c.maxRowBytes = n }
}

// WithMaxInputBytes bounds the decompressed size of gzip-compressed CSV
// input; more is an error. The default is DefaultMaxInputBytes (4 GiB).
// CSV.
func WithMaxInputBytes(n int64) SourceOption {
	return func(c *sourceConfig) { c.maxInputBytes = n }
}

// WithName sets the name used in error messages for a source made from an
// io.Reader. The default is the path for sources opened from a path, and
// "<reader>" otherwise. All sources.
func WithName(name string) SourceOption {
	return func(c *sourceConfig) { c.name = name }
}

// WithHeader says whether the first CSV line is a header of column names.
// The default is true. Without a header, the names come from
// WithColumnNames, else from WithSchema, else they are "c0", "c1", …. CSV.
func WithHeader(has bool) SourceOption {
	return func(c *sourceConfig) { c.header = has }
}

// WithColumnNames names the CSV columns, overriding a header (which is then
// skipped). The default is the header's names. CSV.
func WithColumnNames(names ...string) SourceOption {
	return func(c *sourceConfig) { c.colNames = slices.Clone(names) }
}

// WithSchema gives the CSV columns' names and types instead of inferring
// them. Supported types: bool, int8–int64, uint8–uint64, float32, float64,
// string. A field that is not nullable rejects null values. The default is
// inference over the first WithInferRows rows. CSV.
func WithSchema(schema *arrow.Schema) SourceOption {
	return func(c *sourceConfig) { c.schema = schema }
}

// WithNullValues sets the CSV field values read as null. The default is
// DefaultNullValues ("", "NA", "N/A", "null", "NULL"). CSV.
func WithNullValues(values ...string) SourceOption {
	return func(c *sourceConfig) { c.nullValues = slices.Clone(values) }
}

// WithInferRows sets how many CSV rows are read, and held in memory, to
// infer column types when no schema is given. The default is
// DefaultInferRows (1000). CSV.
func WithInferRows(n int) SourceOption {
	return func(c *sourceConfig) { c.inferRows = n }
}

// WithComma sets the CSV field delimiter. The default is ','. CSV.
func WithComma(r rune) SourceOption {
	return func(c *sourceConfig) { c.comma = r }
}

// WithRowGroups restricts a Parquet source to the given row groups, read in
// this order. The default is every row group. Parquet.
func WithRowGroups(groups ...int) SourceOption {
	return func(c *sourceConfig) { c.rowGroups = slices.Clone(groups) }
}
