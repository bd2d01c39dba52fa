package minibatch

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// csvAppender parses a field's text and appends the value to its builder;
// it returns false when the text is not a valid value.
type csvAppender func(v string) bool

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
// what it expects; nil for an unsupported type. Null values are nulls in a
// nullable field and rejected in another. Numbers are parsed first and checked for null only
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
			if !utf8.ValidString(v) {
				return false
			}
			sb.Append(v)
			return true
		}, "string (valid UTF-8)"
	default:
		return nil, ""
	}
	if !field.Nullable {
		// A null value is an error here, even where it would parse (the
		// empty string or "NA" of a string column, "NaN" given as a null
		// value of a float column): parseError names it.
		return func(v string) bool { return !isNull(v) && value(v) }, want
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

func (s *CSVSource) parseError(col int, v string, line int) error {
	c := &s.cols[col]
	if !c.field.Nullable && slices.Contains(s.cfg.nullValues, v) {
		return s.errorf("line %d: column %q: null value %q in a column that is not nullable (WithNullValues sets the values read as null)", line, c.field.Name, v)
	}
	if c.field.Type.ID() == arrow.STRING {
		return s.errorf("line %d: column %q: %s is not valid UTF-8", line, c.field.Name, quoteField(v))
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
