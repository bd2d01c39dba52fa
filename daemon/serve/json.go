package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
)

// jsonColumnsErr says why JSON rows cannot carry the columns of in, or nil
// when they can: numbers for the floating-point and integer columns,
// booleans, strings.
func jsonColumnsErr(in source.Schema) error {
	if in.Fields == nil {
		return errors.New("no input schema")
	}
	for _, f := range in.Fields.Fields() {
		if !jsonType(f.Type) {
			return fmt.Errorf("JSON rows cannot carry column %q of type %s (only numbers, booleans and strings)", f.Name, f.Type)
		}
	}
	return nil
}

func jsonType(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.FLOAT32, arrow.FLOAT64,
		arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.BOOL, arrow.STRING:
		return true
	}
	return false
}

func (p *predictor) predictJSON(ctx context.Context, v *Version, body []byte) (answer, error) {
	rec, wrapped, err := decodeJSONRows(body, p.in.Fields, p.mem)
	if err != nil {
		return answer{}, err
	}
	x, err := p.in.Split(rec)
	rec.Release()
	if err != nil { // the rows were built from p.in: not expected
		return answer{}, &statusError{code: http.StatusUnprocessableEntity, err: fmt.Errorf("serve: predict: %w", err)}
	}
	out, err := p.run(ctx, v, []flow.Batch{x})
	if err != nil {
		return answer{}, err
	}
	defer releaseAll(out)
	enc, err := encodeJSONRows(out, wrapped)
	if err != nil {
		return answer{}, fmt.Errorf("serve: predict: version %d: encoding the answer: %w", v.ID(), err)
	}
	return answer{contentType: ContentTypeJSON, body: enc}, nil
}

// decodeJSONRows reads JSON rows, an array of objects or an object
// {"rows": [...]} (wrapped), into a record of schema fields (in its order),
// allocated from mem. Each object has every field of the schema as a key,
// and no other: a number for a numeric column (one without a fraction or
// an exponent for an integer column, in its range), true or false for a
// boolean one, a string for a string one, null for a nullable one. A
// column that does not match is a 422 error wrapping a
// *source.SchemaError that names it (with the row); anything else that is
// not such JSON a 400 error.
func decodeJSONRows(body []byte, fields *arrow.Schema, mem memory.Allocator) (rec arrow.RecordBatch, wrapped bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	bad := func(format string, args ...any) error {
		return fail(http.StatusBadRequest, "serve: predict: JSON rows: "+format, args...)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, false, bad("%v", err)
	}
	switch tok {
	case json.Delim('['):
	case json.Delim('{'):
		wrapped = true
		key, err := dec.Token()
		if err != nil {
			return nil, false, bad("%v", err)
		}
		if key != "rows" {
			return nil, false, bad("key %v; want an object with the one key \"rows\"", key)
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return nil, false, bad("\"rows\" is not an array (%v)", orTok(tok, err))
		}
	default:
		return nil, false, bad("the body begins with %v; want an array of objects or {\"rows\": [...]}", tok)
	}

	n := fields.NumFields()
	index := make(map[string]int, n)
	builders := make([]array.Builder, n)
	for i, f := range fields.Fields() {
		index[f.Name] = i
		builders[i] = array.NewBuilder(mem, f.Type)
	}
	defer func() {
		for _, b := range builders {
			b.Release()
		}
	}()
	seen := make([]int, n) // the last row that set each column, +1
	rows := 0
	for dec.More() {
		rows++
		row := rows - 1
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return nil, false, bad("row %d: not an object (%v)", row, orTok(tok, err))
		}
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return nil, false, bad("row %d: %v", row, err)
			}
			name, _ := key.(string)
			i, ok := index[name]
			if !ok {
				return nil, false, &statusError{code: http.StatusUnprocessableEntity,
					err: fmt.Errorf("serve: predict: JSON row %d: %w", row, &source.SchemaError{Column: name, Want: "no such column", Got: "a value"})}
			}
			if seen[i] == rows {
				return nil, false, bad("row %d: column %q twice", row, name)
			}
			seen[i] = rows
			val, err := dec.Token()
			if err != nil {
				return nil, false, bad("row %d: column %q: %v", row, name, err)
			}
			if err := appendJSON(builders[i], fields.Field(i), val); err != nil {
				if d, ok := val.(json.Delim); ok && (d == '[' || d == '{') {
					err = &source.SchemaError{Column: name, Want: fields.Field(i).Type.String(), Got: "an array or object"}
				}
				return nil, false, &statusError{code: http.StatusUnprocessableEntity,
					err: fmt.Errorf("serve: predict: JSON row %d: %w", row, err)}
			}
		}
		if _, err := dec.Token(); err != nil { // '}'
			return nil, false, bad("row %d: %v", row, err)
		}
		for i, s := range seen {
			if s != rows {
				f := fields.Field(i)
				return nil, false, &statusError{code: http.StatusUnprocessableEntity,
					err: fmt.Errorf("serve: predict: JSON row %d: %w", row, &source.SchemaError{Column: f.Name, Want: f.Type.String(), Got: "missing"})}
			}
		}
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, false, bad("%v", err)
	}
	if wrapped {
		if dec.More() {
			return nil, false, bad("a key after \"rows\"; want an object with the one key \"rows\"")
		}
		if _, err := dec.Token(); err != nil { // '}'
			return nil, false, bad("%v", err)
		}
	}
	if tok, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false, bad("data after the rows (%v)", orTok(tok, err))
	}
	if rows == 0 {
		return nil, false, bad("no rows; send at least one")
	}
	cols := make([]arrow.Array, n)
	for i, b := range builders {
		cols[i] = b.NewArray()
	}
	rec = array.NewRecordBatch(fields, cols, int64(rows))
	for _, c := range cols {
		c.Release()
	}
	return rec, wrapped, nil
}

func orTok(tok json.Token, err error) any {
	if err != nil {
		return err
	}
	return tok
}

// appendJSON appends one JSON value to b, the builder of field f. The
// error is a *source.SchemaError.
func appendJSON(b array.Builder, f arrow.Field, val json.Token) error {
	mismatch := func(got string) error {
		return &source.SchemaError{Column: f.Name, Want: f.Type.String(), Got: got}
	}
	if val == nil {
		if !f.Nullable {
			return mismatch("null")
		}
		b.AppendNull()
		return nil
	}
	switch b := b.(type) {
	case *array.BooleanBuilder:
		v, ok := val.(bool)
		if !ok {
			return mismatch(jsonKind(val))
		}
		b.Append(v)
		return nil
	case *array.StringBuilder:
		v, ok := val.(string)
		if !ok {
			return mismatch(jsonKind(val))
		}
		b.Append(v)
		return nil
	}
	num, ok := val.(json.Number)
	if !ok {
		return mismatch(jsonKind(val))
	}
	s := string(num)
	switch b := b.(type) {
	case *array.Float32Builder:
		v, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return mismatch("number " + s + " (out of float32 range)")
		}
		b.Append(float32(v))
	case *array.Float64Builder:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return mismatch("number " + s + " (out of float64 range)")
		}
		b.Append(v)
	case *array.Int8Builder:
		v, err := parseInt(s, 8)
		if err != nil {
			return mismatch(err.Error())
		}
		b.Append(int8(v))
	case *array.Int16Builder:
		v, err := parseInt(s, 16)
		if err != nil {
			return mismatch(err.Error())
		}
		b.Append(int16(v))
	case *array.Int32Builder:
		v, err := parseInt(s, 32)
		if err != nil {
			return mismatch(err.Error())
		}
		b.Append(int32(v))
	case *array.Int64Builder:
		v, err := parseInt(s, 64)
		if err != nil {
			return mismatch(err.Error())
		}
		b.Append(v)
	case *array.Uint8Builder:
		v, err := parseUint(s, 8)
		if err != nil {
			return mismatch(err.Error())
		}
		b.Append(uint8(v))
	case *array.Uint16Builder:
		v, err := parseUint(s, 16)
		if err != nil {
			return mismatch(err.Error())
		}
		b.Append(uint16(v))
	case *array.Uint32Builder:
		v, err := parseUint(s, 32)
		if err != nil {
			return mismatch(err.Error())
		}
		b.Append(uint32(v))
	case *array.Uint64Builder:
		v, err := parseUint(s, 64)
		if err != nil {
			return mismatch(err.Error())
		}
		b.Append(v)
	default:
		return mismatch("a number") // not reached: jsonColumnsErr refuses other types
	}
	return nil
}

func parseInt(s string, bits int) (int64, error) {
	v, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("number %s (not an int%d)", s, bits)
	}
	return v, nil
}

func parseUint(s string, bits int) (uint64, error) {
	if s == "-0" { // JSON's negative zero is zero
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("number %s (not a uint%d)", s, bits)
	}
	return v, nil
}

func jsonKind(val json.Token) string {
	switch v := val.(type) {
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "number " + string(v)
	case json.Delim:
		return "an array or object"
	}
	return fmt.Sprintf("%T", val)
}

// encodeJSONRows writes the answers of out as JSON rows, one object per
// row with the output columns (see outputRecord) as keys, in an array,
// itself in {"rows": ...} when wrapped. Numbers are numbers (NaN and
// infinities null), a FixedSizeList or List column (a tensor) an array of
// its values, nulls null; other types as arrow-go marshals them.
func encodeJSONRows(out []flow.Batch, wrapped bool) ([]byte, error) {
	var buf []byte
	if wrapped {
		buf = append(buf, `{"rows":`...)
	}
	buf = append(buf, '[')
	first := true
	for _, b := range out {
		rec := outputRecord(b)
		var err error
		buf, err = appendRows(buf, rec, &first)
		rec.Release()
		if err != nil {
			return nil, err
		}
	}
	buf = append(buf, ']')
	if wrapped {
		buf = append(buf, '}')
	}
	buf = append(buf, '\n')
	return buf, nil
}

func appendRows(buf []byte, rec arrow.RecordBatch, first *bool) ([]byte, error) {
	n := int(rec.NumCols())
	keys := make([][]byte, n)
	for i, f := range rec.Schema().Fields() {
		k, _ := json.Marshal(f.Name)
		keys[i] = append(k, ':')
	}
	for r := 0; r < int(rec.NumRows()); r++ {
		if !*first {
			buf = append(buf, ',')
		}
		*first = false
		buf = append(buf, '{')
		for c := 0; c < n; c++ {
			if c > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, keys[c]...)
			var err error
			buf, err = appendValue(buf, rec.Column(c), r)
			if err != nil {
				return nil, fmt.Errorf("column %q, row %d: %w", rec.Schema().Field(c).Name, r, err)
			}
		}
		buf = append(buf, '}')
	}
	return buf, nil
}

func appendFloat(buf []byte, v float64, bits int) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(buf, "null"...)
	}
	return strconv.AppendFloat(buf, v, 'g', -1, bits)
}

// appendValue appends element i of a as JSON.
func appendValue(buf []byte, a arrow.Array, i int) ([]byte, error) {
	if a.IsNull(i) {
		return append(buf, "null"...), nil
	}
	switch a := a.(type) {
	case *array.Float32:
		return appendFloat(buf, float64(a.Value(i)), 32), nil
	case *array.Float64:
		return appendFloat(buf, a.Value(i), 64), nil
	case *array.Int8:
		return strconv.AppendInt(buf, int64(a.Value(i)), 10), nil
	case *array.Int16:
		return strconv.AppendInt(buf, int64(a.Value(i)), 10), nil
	case *array.Int32:
		return strconv.AppendInt(buf, int64(a.Value(i)), 10), nil
	case *array.Int64:
		return strconv.AppendInt(buf, a.Value(i), 10), nil
	case *array.Uint8:
		return strconv.AppendUint(buf, uint64(a.Value(i)), 10), nil
	case *array.Uint16:
		return strconv.AppendUint(buf, uint64(a.Value(i)), 10), nil
	case *array.Uint32:
		return strconv.AppendUint(buf, uint64(a.Value(i)), 10), nil
	case *array.Uint64:
		return strconv.AppendUint(buf, a.Value(i), 10), nil
	case *array.Boolean:
		return strconv.AppendBool(buf, a.Value(i)), nil
	case *array.FixedSizeList:
		start, end := a.ValueOffsets(i)
		return appendList(buf, a.ListValues(), int(start), int(end))
	case *array.List:
		start, end := a.ValueOffsets(i)
		return appendList(buf, a.ListValues(), int(start), int(end))
	}
	v, err := json.Marshal(a.GetOneForMarshal(i))
	if err != nil {
		return nil, err
	}
	return append(buf, v...), nil
}

func appendList(buf []byte, values arrow.Array, start, end int) ([]byte, error) {
	buf = append(buf, '[')
	for j := start; j < end; j++ {
		if j > start {
			buf = append(buf, ',')
		}
		var err error
		buf, err = appendValue(buf, values, j)
		if err != nil {
			return nil, err
		}
	}
	return append(buf, ']'), nil
}
