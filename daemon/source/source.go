package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/penstock-ml/penstock/flow"
)

// Input is one batch of a source with the source's position just after it.
// The receiver owns the batch. Pos is opaque to the daemon: it is saved in
// checkpoints and given back to Source.Run on restart, and to
// Source.Durable once a durable checkpoint covers it.
type Input struct {
	Batch flow.Batch
	Pos   []byte
}

// Source is one of the daemon's inputs.
type Source interface {
	// Name is the source's name in the configuration, unique among the
	// daemon's sources: the key of its position in checkpoints and the
	// "source" label of its metrics.
	Name() string
	// Run sends every input after position from (nil: from the start) to
	// out, in order, each with its position. It returns nil once drain is
	// closed and it has sent every input that it accepted before (it takes
	// no new ones after drain), context.Cause(ctx) when ctx is done (it
	// then sends nothing more), or an error that stops the daemon. Run is
	// called once; the daemon reads out until Run returns.
	Run(ctx context.Context, from []byte, drain <-chan struct{}, out chan<- Input) error
	// Durable says that a checkpoint that covers every input up to and
	// including pos (a position that Run sent) is on disk, durably. It is
	// called from one goroutine, with positions in the order Run sent them,
	// possibly while Run runs, and also after Run has returned.
	Durable(pos []byte) error
}

// Reason is why an input was rejected: the value of the "reason" label
// of penstock_ingest_rejected_total. The set is closed so that the label
// stays bounded.
type Reason string

// The reasons to reject an input.
const (
	ReasonSchema  Reason = "schema"    // a column missing, of another type, or unexpected
	ReasonDecode  Reason = "decode"    // not a valid file or body of its format
	ReasonTooBig  Reason = "too_large" // over a size limit
	ReasonType    Reason = "type"      // a content or file type that is not taken
	ReasonIO      Reason = "io"        // could not be read
	ReasonDup     Reason = "duplicate" // already taken (an idempotency key seen before)
	ReasonDrained Reason = "draining"  // refused while the daemon drains
	ReasonFull    Reason = "full"      // refused while the daemon's queue is full
)

// Reporter hears of rejected inputs; the daemon counts them in its metrics
// and logs each one. Its methods are called from any goroutine.
type Reporter interface {
	Rejected(source string, reason Reason, err error)
}

// LogReporter is a Reporter that only logs: for tests and programs
// without metrics.
type LogReporter struct{ Log *slog.Logger }

// Rejected logs the rejection.
func (r LogReporter) Rejected(source string, reason Reason, err error) {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	log.Warn("reject", "source", source, "reason", string(reason), "err", err)
}

// Schema is what every input must look like: Fields, in any order, with
// these names and types (extra columns are an error), of which Inputs are
// the pipeline's X and Labels its Y (both in this order). Labels may be
// empty (inference only).
type Schema struct {
	Fields *arrow.Schema
	Inputs []string
	Labels []string
}

// ErrSchema is wrapped by every schema mismatch.
var ErrSchema = errors.New("schema mismatch")

// SchemaError is a schema mismatch: the column and what was expected.
type SchemaError struct {
	Column string // the column that does not match
	Want   string // what the schema says ("float32", "no such column")
	Got    string // what the input has ("int64", "missing")
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("schema mismatch: column %q: want %s, got %s", e.Column, e.Want, e.Got)
}

// Unwrap makes a SchemaError match ErrSchema.
func (e *SchemaError) Unwrap() error { return ErrSchema }

// Validate checks the schema itself: every input and label is a field, no
// column is both, and there is at least one input.
func (s Schema) Validate() error {
	if s.Fields == nil || s.Fields.NumFields() == 0 {
		return errors.New("schema: no fields")
	}
	if len(s.Inputs) == 0 {
		return errors.New("schema: no input columns")
	}
	seen := map[string]string{}
	for _, f := range s.Fields.Fields() {
		if _, dup := seen[f.Name]; dup {
			return fmt.Errorf("schema: field %q twice", f.Name)
		}
		seen[f.Name] = ""
	}
	// Inputs, then labels: in this order, so that the error is the same
	// from one call to the next.
	for _, g := range []struct {
		role string
		cols []string
	}{{"input", s.Inputs}, {"label", s.Labels}} {
		for _, c := range g.cols {
			switch r, ok := seen[c]; {
			case !ok:
				return fmt.Errorf("schema: %s column %q is not a field", g.role, c)
			case r == g.role:
				return fmt.Errorf("schema: %s column %q is listed twice", g.role, c)
			case r != "":
				return fmt.Errorf("schema: column %q is an input and a label", c)
			}
			seen[c] = g.role
		}
	}
	return nil
}

// Check compares got, an input's schema, with s: every field of s must be
// in got with the same type, and got has no other column. The error is a
// *SchemaError that names the first column that does not match.
func (s Schema) Check(got *arrow.Schema) error {
	if got == nil {
		return &SchemaError{Column: "", Want: "a schema", Got: "none"}
	}
	for _, f := range s.Fields.Fields() {
		idx := got.FieldIndices(f.Name)
		if len(idx) == 0 {
			return &SchemaError{Column: f.Name, Want: f.Type.String(), Got: "missing"}
		}
		if len(idx) > 1 {
			return &SchemaError{Column: f.Name, Want: "one column", Got: fmt.Sprintf("%d columns", len(idx))}
		}
		if g := got.Field(idx[0]).Type; !arrow.TypeEqual(g, f.Type) {
			return &SchemaError{Column: f.Name, Want: f.Type.String(), Got: g.String()}
		}
	}
	for _, f := range got.Fields() {
		if !s.Fields.HasField(f.Name) {
			return &SchemaError{Column: f.Name, Want: "no such column", Got: f.Type.String()}
		}
	}
	return nil
}

// Split checks rec against s and splits it into a batch: X holds the
// Inputs, Y the Labels (nil when there are none), each column retained.
// rec stays the caller's.
func (s Schema) Split(rec arrow.RecordBatch) (flow.Batch, error) {
	if err := s.Check(rec.Schema()); err != nil {
		return flow.Batch{}, err
	}
	x := project(rec, s.Inputs)
	var y arrow.RecordBatch
	if len(s.Labels) > 0 {
		y = project(rec, s.Labels)
	}
	return flow.Batch{X: x, Y: y}, nil
}

// InputsOnly is s without labels: what a prediction's body must be.
func (s Schema) InputsOnly() Schema {
	fields := make([]arrow.Field, 0, len(s.Inputs))
	for _, c := range s.Inputs {
		idx := s.Fields.FieldIndices(c)
		fields = append(fields, s.Fields.Field(idx[0]))
	}
	return Schema{Fields: arrow.NewSchema(fields, nil), Inputs: s.Inputs}
}

// project makes a record of rec's columns cols, in this order (retained).
func project(rec arrow.RecordBatch, cols []string) arrow.RecordBatch {
	fields := make([]arrow.Field, len(cols))
	arrs := make([]arrow.Array, len(cols))
	sc := rec.Schema()
	for i, c := range cols {
		j := sc.FieldIndices(c)[0]
		fields[i] = sc.Field(j)
		arrs[i] = rec.Column(j)
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, rec.NumRows())
}
