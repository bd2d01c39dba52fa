package minibatch

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Defaults of the options.
const (
	// DefaultBatchRows is the number of rows per batch of the CSV and
	// Parquet sources.
	DefaultBatchRows = 1024
	// DefaultMaxBatchBytes bounds one IPC record batch: its message body
	// and the sum of its decompressed buffers.
	DefaultMaxBatchBytes = 256 << 20
	// DefaultMaxRowBytes bounds one CSV record (a line of input, or more
	// where a quoted field spans lines).
	DefaultMaxRowBytes = 1 << 20
	// DefaultMaxInputBytes bounds the decompressed size of gzip-compressed
	// CSV input.
	DefaultMaxInputBytes = 4 << 30
	// DefaultInferRows is the number of CSV rows read to infer column types.
	DefaultInferRows = 1000
	// DefaultCacheBytes bounds the data that a Cache holds (WithMaxBytes).
	DefaultCacheBytes = 1 << 30
)

// DefaultNullValues are the CSV fields read as null by default.
var DefaultNullValues = []string{"", "NA", "N/A", "null", "NULL"}

// Option configures a constructor of this package: a source (CSV, IPC,
// Parquet in minibatch/parquet), a stage (NewRebatcher, Shuffle, Permute,
// Curriculum, NewCache), a split (Holdout, KFold, WalkForward) or a step
// (NewResampler). Every option is named With…; each says which
// constructors read it.
//
// Sources ignore options that do not apply to them, so that one list of
// options can configure several sources. Stages, splits and steps reject
// them: an option that a constructor does not read is an error naming the
// option and those it reads, so that a misplaced option (WithGap given to
// KFold) fails at construction instead of being silently dropped.
type Option func(*sourceConfig)

// SourceOption is the former name of Option, kept as an alias.
type SourceOption = Option

type sourceConfig struct {
	roles         RoleSplitter
	batchRows     int
	mem           memory.Allocator
	maxBatchBytes int64
	maxRowBytes   int
	maxInputBytes int64
	name          string
	// CSV
	header     bool
	headerSet  bool // WithHeader was given
	colNames   []string
	schema     *arrow.Schema
	nullValues []string
	inferRows  int
	comma      rune
	// Parquet
	rowGroups []int

	// Stages, splits and steps.
	seed        uint64
	classLabel  string
	stratify    int8 // 0 automatic, 1 required, -1 off
	window      int64
	validation  int64
	gap         int64
	windowRows  int
	shuffleRows int
	maxBytes    int64
	targets     []string // names of the re-sampling targets given, for errors
	target      resampleTarget

	given []string // names of the options given, in order
	err   error    // the first invalid option value
}

// note records that the option name was given, and err if it is the first
// invalid value.
func (c *sourceConfig) note(name string, err error) {
	c.given = append(c.given, name)
	if err != nil && c.err == nil {
		c.err = err
	}
}

func defaultConfig() *sourceConfig {
	return &sourceConfig{
		batchRows:     DefaultBatchRows,
		mem:           memory.DefaultAllocator,
		maxBatchBytes: DefaultMaxBatchBytes,
		maxRowBytes:   DefaultMaxRowBytes,
		maxInputBytes: DefaultMaxInputBytes,
		header:        true,
		nullValues:    DefaultNullValues,
		inferRows:     DefaultInferRows,
		comma:         ',',
		windowRows:    DefaultWindowRows,
		maxBytes:      DefaultCacheBytes,
	}
}

func newSourceConfig(opts []SourceOption) (*sourceConfig, error) {
	cfg := defaultConfig()
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("minibatch: option %d is nil", i+1)
		}
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

// newStageConfig applies opts for the constructor op, which reads the
// options named reads (WithAllocator is read by all), and reports an
// option that op does not read or an invalid value.
func newStageConfig(op string, opts []Option, reads ...string) (*sourceConfig, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("minibatch: %s: nil option", op)
		}
		o(cfg)
	}
	reads = append(reads, "WithAllocator")
	for _, name := range cfg.given {
		if !slices.Contains(reads, name) {
			return nil, fmt.Errorf("minibatch: %s: option %s does not apply; %s reads %s", op, name, op, strings.Join(reads, ", "))
		}
	}
	if cfg.err != nil {
		return nil, fmt.Errorf("minibatch: %s: %w", op, cfg.err)
	}
	if cfg.mem == nil {
		return nil, fmt.Errorf("minibatch: %s: WithAllocator(nil): want an allocator (memory.DefaultAllocator is the default)", op)
	}
	return cfg, nil
}

// SourceSettings is what a list of options resolves to for a source
// defined in another package (minibatch/parquet), so that such a source
// reads the same options as those of this package.
type SourceSettings struct {
	Name      string           // WithName; "" when not given
	Roles     Roles            // WithRoles, WithInputs, WithLabels
	BatchRows int              // WithBatchRows, default DefaultBatchRows
	Allocator memory.Allocator // WithAllocator, default memory.DefaultAllocator
	RowGroups []int            // WithRowGroups; nil means all
}

// ResolveSourceOptions applies opts and returns the settings that a source
// reads, or the error for an invalid value (a batch size below 1, a nil
// allocator, …).
func ResolveSourceOptions(opts ...Option) (SourceSettings, error) {
	cfg, err := newSourceConfig(opts)
	if err != nil {
		return SourceSettings{}, err
	}
	return SourceSettings{
		Name:      cfg.name,
		Roles:     cfg.roles.Roles,
		BatchRows: cfg.batchRows,
		Allocator: cfg.mem,
		RowGroups: slices.Clone(cfg.rowGroups),
	}, nil
}

// WithAllocator sets the allocator of every buffer that the constructor's
// value allocates: the batches of a source, the gathered or concatenated
// rows of a stage, split or step. The default is memory.DefaultAllocator;
// nil is an error. CSV, Parquet and IPC allocate every buffer from it.
// Read by every constructor.
func WithAllocator(mem memory.Allocator) Option {
	return func(c *sourceConfig) { c.mem = mem; c.note("WithAllocator", nil) }
}

// WithRoles sets which columns are inputs and which are labels. The default
// is Roles{}: every column is an input and Y is nil. Sources.
func WithRoles(r Roles) Option {
	return func(c *sourceConfig) {
		c.roles = RoleSplitter{Roles: Roles{Inputs: slices.Clone(r.Inputs), Labels: slices.Clone(r.Labels)}}
		c.note("WithRoles", nil)
	}
}

// WithLabels names the label columns (Y). The default is none (Y is nil).
// Sources.
func WithLabels(names ...string) Option {
	return func(c *sourceConfig) { c.roles.Labels = slices.Clone(names); c.note("WithLabels", nil) }
}

// WithInputs names the input columns (X), in order. The default is every
// column that is not a label. Sources.
func WithInputs(names ...string) Option {
	return func(c *sourceConfig) { c.roles.Inputs = slices.Clone(names); c.note("WithInputs", nil) }
}

// WithBatchRows sets the number of rows per batch; the last batch may be
// shorter. The default is DefaultBatchRows (1024). CSV and Parquet; the IPC
// sources keep the batches as they were written (re-batch them with
// NewRebatcher if needed). Epochs re-batches to n rows.
func WithBatchRows(n int) Option {
	return func(c *sourceConfig) { c.batchRows = n; c.note("WithBatchRows", nil) }
}

// WithMaxBatchBytes bounds the size in bytes of one IPC record batch (or
// dictionary batch): both its message body as stored and the sum of its
// buffers after decompression (for a stream, with the dictionary batches
// read before it), and its number of rows. A larger batch is an error
// naming the batch and the bound. The default is DefaultMaxBatchBytes
// (256 MiB). IPC.
func WithMaxBatchBytes(n int64) Option {
	return func(c *sourceConfig) { c.maxBatchBytes = n; c.note("WithMaxBatchBytes", nil) }
}

// WithMaxRowBytes bounds the length in bytes of one CSV record (a line, or
// the lines of a record whose quoted field spans lines); a longer record is
// an error naming the line. The default is DefaultMaxRowBytes (1 MiB).
// CSV.
func WithMaxRowBytes(n int) Option {
	return func(c *sourceConfig) { c.maxRowBytes = n; c.note("WithMaxRowBytes", nil) }
}

// WithMaxInputBytes bounds the decompressed size of gzip-compressed CSV
// input; more is an error. The default is DefaultMaxInputBytes (4 GiB).
// CSV.
func WithMaxInputBytes(n int64) Option {
	return func(c *sourceConfig) { c.maxInputBytes = n; c.note("WithMaxInputBytes", nil) }
}

// WithName sets the name used in error messages for a source made from an
// io.Reader. The default is the path for sources opened from a path, and
// "<reader>" otherwise. Sources.
func WithName(name string) Option {
	return func(c *sourceConfig) { c.name = name; c.note("WithName", nil) }
}

// WithHeader says whether the first CSV line is a header of column names.
// The default is true, except that a first line whose every field is a
// number is then an error (the file likely has no header); WithHeader(true)
// accepts it as names. Without a header, the names come from
// WithColumnNames, else from WithSchema, else they are "c0", "c1", …. CSV.
func WithHeader(has bool) Option {
	return func(c *sourceConfig) { c.header, c.headerSet = has, true; c.note("WithHeader", nil) }
}

// WithColumnNames names the CSV columns, overriding a header (which is then
// skipped). The default is the header's names. CSV.
func WithColumnNames(names ...string) Option {
	return func(c *sourceConfig) { c.colNames = slices.Clone(names); c.note("WithColumnNames", nil) }
}

// WithSchema gives the CSV columns' names and types instead of inferring
// them. Supported types: bool, int8–int64, uint8–uint64, float32, float64,
// string. A field that is not nullable rejects null values. The default is
// inference over the first WithInferRows rows. CSV.
func WithSchema(schema *arrow.Schema) Option {
	return func(c *sourceConfig) { c.schema = schema; c.note("WithSchema", nil) }
}

// WithNullValues sets the CSV field values read as null. The default is
// DefaultNullValues ("", "NA", "N/A", "null", "NULL"). CSV.
func WithNullValues(values ...string) Option {
	return func(c *sourceConfig) { c.nullValues = slices.Clone(values); c.note("WithNullValues", nil) }
}

// WithInferRows sets how many CSV rows are read, and held in memory, to
// infer column types when no schema is given. The default is
// DefaultInferRows (1000). CSV.
func WithInferRows(n int) Option {
	return func(c *sourceConfig) { c.inferRows = n; c.note("WithInferRows", nil) }
}

// WithComma sets the CSV field delimiter. The default is ','. NUL, '"',
// '\r', '\n' and utf8.RuneError (or an invalid rune) cannot be delimiters:
// the CSV source's constructor rejects them. CSV.
func WithComma(r rune) Option {
	return func(c *sourceConfig) { c.comma = r; c.note("WithComma", nil) }
}

// WithRowGroups restricts a Parquet source (package minibatch/parquet) to
// the given row groups, read in this order. The default is every row
// group. Parquet.
func WithRowGroups(groups ...int) Option {
	return func(c *sourceConfig) { c.rowGroups = slices.Clone(groups); c.note("WithRowGroups", nil) }
}

// WithSeed sets the seed of the PCG generator (math/rand/v2) of a seeded
// constructor (default 0): the same seed over the same input gives the
// same output in every run; a different seed gives, with overwhelming
// probability, a different one. Shuffle, Permute, Holdout, KFold,
// NewResampler, Epochs (its shuffle).
func WithSeed(seed uint64) Option {
	return func(c *sourceConfig) { c.seed = seed; c.note("WithSeed", nil) }
}

// WithClassLabel names the column whose values are the classes, for
// stratified splitting and for re-sampling. It is looked up in Y and,
// where Y has no column of that name, in X (a tabular source may keep its
// label among the inputs). The default is the first column of Y. Naming a
// column makes every batch need it. Holdout, KFold, NewResampler.
func WithClassLabel(name string) Option {
	return func(c *sourceConfig) { c.classLabel = name; c.note("WithClassLabel", nil) }
}

// WithStratify turns stratification on or off. By default a split is
// stratified when the batches carry a label (Y, or the column named by
// WithClassLabel) and plain random otherwise. WithStratify(true) makes a
// missing label an error; WithStratify(false) ignores labels and reads only
// row counts in the planning pass. Holdout, KFold.
func WithStratify(on bool) Option {
	return func(c *sourceConfig) {
		c.stratify = -1
		if on {
			c.stratify = 1
		}
		c.note("WithStratify", nil)
	}
}

// WithTrainWindow makes the train window of WalkForward slide: each fold
// trains on at most rows rows just before its validation block (and its
// gap). Zero, the default, is an expanding window that always starts at row
// 0; a negative value is an error. WalkForward.
func WithTrainWindow(rows int64) Option {
	return func(c *sourceConfig) {
		c.window = rows
		c.note("WithTrainWindow", nonNegative("WithTrainWindow", rows, "want 0 (an expanding window) or more rows"))
	}
}

// WithValidationRows sets the number of rows in every validation block of
// WalkForward. The default, 0, means rows/(folds+1), rounded down; a
// negative value is an error. WalkForward.
func WithValidationRows(rows int64) Option {
	return func(c *sourceConfig) {
		c.validation = rows
		c.note("WithValidationRows", nonNegative("WithValidationRows", rows, "want 0 (automatic) or more rows"))
	}
}

// WithGap leaves rows rows out between the end of each train window of
// WalkForward and the start of its validation block (default 0), so that
// targets that look ahead do not leak from train into validation.
// WalkForward.
func WithGap(rows int64) Option {
	return func(c *sourceConfig) {
		c.gap = rows
		c.note("WithGap", nonNegative("WithGap", rows, "want 0 or more rows"))
	}
}

func nonNegative(name string, v int64, want string) error {
	if v < 0 {
		return fmt.Errorf("%s(%d): %s", name, v, want)
	}
	return nil
}

// WithWindowRows sets how many output rows an Ordered source gathers per
// pass over a source that is not a *Memory (default DefaultWindowRows,
// rounded up to a multiple of the batch size). A larger window means fewer
// passes over the source and more memory held: window × row width. It is
// ignored for a *Memory source, whose rows are read in place. rows < 1 is
// an error. Permute, Curriculum.
func WithWindowRows(rows int) Option {
	return func(c *sourceConfig) {
		c.windowRows = rows
		var err error
		if rows < 1 {
			err = fmt.Errorf("WithWindowRows(%d): want at least 1 row", rows)
		}
		c.note("WithWindowRows", err)
	}
}

// WithMaxBytes bounds the bytes of Arrow buffers that a Cache holds
// (default DefaultCacheBytes, 1 GiB); a source larger than that is an
// error. n < 1 is an error. NewCache.
func WithMaxBytes(n int64) Option {
	return func(c *sourceConfig) {
		c.maxBytes = n
		var err error
		if n < 1 {
			err = fmt.Errorf("WithMaxBytes(%d): want at least 1 byte", n)
		}
		c.note("WithMaxBytes", err)
	}
}
