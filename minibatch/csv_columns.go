package minibatch

import (
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
)

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
		if err := s.checkHeader(rec); err != nil {
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
		if err := s.readPending(names); err != nil {
			return err
		}
		if names == nil {
			if len(s.pending) == 0 {
				return s.errorf("empty input: no header and no rows")
			}
			names = make([]string, len(s.pending[0].fields))
			for i := range names {
				names[i] = "c" + strconv.Itoa(i)
			}
		}
		fields = s.infer(names)
	}
	return s.setColumns(fields)
}

// checkHeader rejects a header that is likely the first row of a file
// without one, and names that are not unique or not UTF-8.
func (s *CSVSource) checkHeader(rec []string) error {
	if !s.cfg.headerSet && allNumbers(rec) {
		return s.errorf("line 1: the header %s is all numbers: a file without a header? Give WithHeader(false) (and WithColumnNames or WithSchema to name the columns), or WithHeader(true) to use these names",
			quoteField(strings.Join(rec, string(s.cfg.comma))))
	}
	for i, n := range rec {
		if !utf8.ValidString(n) {
			return s.errorf("line 1: header column %d: name %s is not valid UTF-8", i+1, quoteField(n))
		}
	}
	if s.cfg.schema != nil || len(s.cfg.colNames) > 0 {
		return nil // the names given replace these, and are checked
	}
	if i, j, ok := duplicateName(rec); ok {
		return s.errorf("line 1: header columns %d and %d are both named %q; names must be unique (WithColumnNames renames the columns)", i+1, j+1, rec[i])
	}
	return nil
}

// allNumbers reports whether every field is a number, written as a number
// (not "NaN" or "Inf", which may be names).
func allNumbers(rec []string) bool {
	for _, f := range rec {
		if f == "" || !strings.ContainsAny(f[:1], "+-.0123456789") {
			return false
		}
		if _, err := strconv.ParseFloat(f, 64); err != nil {
			return false
		}
	}
	return len(rec) > 0
}

// duplicateName returns the positions of the first name that is given
// twice.
func duplicateName(names []string) (int, int, bool) {
	seen := make(map[string]int, len(names))
	for j, n := range names {
		if i, ok := seen[n]; ok {
			return i, j, true
		}
		seen[n] = j
	}
	return 0, 0, false
}

// readPending reads the rows for inference (copies: the reader reuses
// records); names, when known, give the number of fields.
func (s *CSVSource) readPending(names []string) error {
	for len(s.pending) < s.cfg.inferRows {
		rec, line, err := s.read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if names == nil && len(s.pending) > 0 {
			names = s.pending[0].fields
		}
		if names != nil && len(rec) != len(names) {
			return s.raggedError(line, len(rec), len(names))
		}
		s.pending = append(s.pending, csvRow{line: line, fields: cloneStrings(rec)})
	}
	return nil
}

// setColumns fixes the columns, the roles and the builders.
func (s *CSVSource) setColumns(fields []arrow.Field) error {
	s.schema = arrow.NewSchema(fields, nil)
	s.names = make([]string, 0, len(fields))
	for _, f := range fields {
		s.names = append(s.names, f.Name)
	}
	s.in.csv.FieldsPerRecord = len(fields)
	var err error
	if s.inputs, s.labels, err = s.cfg.roles.Columns(s.schema); err != nil {
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
