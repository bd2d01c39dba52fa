package minibatch

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
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
// stays owned by the caller. It looks the columns up on every call,
// O(columns); a source that splits batch after batch uses a RoleSplitter,
// which does that once per schema.
func (r Roles) Split(rec arrow.RecordBatch) (x, y arrow.RecordBatch, err error) {
	var s RoleSplitter
	s.Roles = r
	return s.Split(rec)
}

// RoleSplitter splits record batches by its Roles, building the column
// index (and the schemas of X and Y) once per schema rather than once per
// batch: a batch whose schema is the one seen last (the same pointer, or
// an equal schema) is split in O(columns of X and Y) with no lookup. Its
// zero value splits by Roles{}. Set Roles before the first Split; a
// RoleSplitter is used by one goroutine at a time (the source that owns
// it).
type RoleSplitter struct {
	Roles
	schema           *arrow.Schema // schema of the index below; nil before the first Split
	inputs, labels   []int
	xSchema, ySchema *arrow.Schema
}

// Split is Roles.Split with the index kept from the previous call when the
// schema has not changed.
func (s *RoleSplitter) Split(rec arrow.RecordBatch) (x, y arrow.RecordBatch, err error) {
	if err := s.bind(rec.Schema()); err != nil {
		return nil, nil, err
	}
	if s.xSchema == rec.Schema() { // X is the whole record
		rec.Retain()
		x = rec
	} else {
		x = projectWith(rec, s.xSchema, s.inputs)
	}
	if len(s.labels) > 0 {
		y = projectWith(rec, s.ySchema, s.labels)
	}
	return x, y, nil
}

// bind builds the index for schema unless it is the one already built.
func (s *RoleSplitter) bind(schema *arrow.Schema) error {
	if s.schema != nil && (s.schema == schema || s.schema.Equal(schema)) {
		return nil
	}
	inputs, labels, err := s.Columns(schema)
	if err != nil {
		return err
	}
	s.schema, s.inputs, s.labels = schema, inputs, labels
	s.xSchema = fieldsSchema(schema, inputs)
	s.ySchema = nil
	if len(labels) > 0 {
		s.ySchema = fieldsSchema(schema, labels)
	}
	return nil
}

// XSchema returns the schema of the X records that Split returns for
// batches of schema: the input columns, in order. It errors like Columns.
func (s *RoleSplitter) XSchema(schema *arrow.Schema) (*arrow.Schema, error) {
	if err := s.bind(schema); err != nil {
		return nil, err
	}
	return s.xSchema, nil
}

// identity reports whether idx is 0, 1, …, n-1.
func identity(idx []int, n int) bool {
	if len(idx) != n {
		return false
	}
	for i, j := range idx {
		if i != j {
			return false
		}
	}
	return true
}

// projectWith returns a new record of schema made of rec's columns at idx;
// the new record holds its own references to them.
func projectWith(rec arrow.RecordBatch, schema *arrow.Schema, idx []int) arrow.RecordBatch {
	cols := make([]arrow.Array, len(idx))
	for i, j := range idx {
		cols[i] = rec.Column(j)
	}
	return array.NewRecordBatch(schema, cols, rec.NumRows())
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

// fieldsSchema returns the schema of the fields of schema at idx, without
// metadata.
func fieldsSchema(schema *arrow.Schema, idx []int) *arrow.Schema {
	if identity(idx, schema.NumFields()) && !schema.HasMetadata() {
		return schema // every column, in order: building it again costs a name index per stream
	}
	fields := make([]arrow.Field, len(idx))
	for i, j := range idx {
		fields[i] = schema.Field(j)
	}
	return arrow.NewSchema(fields, nil)
}
