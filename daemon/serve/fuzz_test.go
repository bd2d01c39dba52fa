package serve

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/source"
)

var fuzzFields = arrow.NewSchema([]arrow.Field{
	{Name: "f", Type: arrow.PrimitiveTypes.Float32},
	{Name: "i", Type: arrow.PrimitiveTypes.Int64},
	{Name: "u", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// FuzzJSONRows: any body is rows or a 400/422 error (422 naming a column),
// never a panic or a leak.
func FuzzJSONRows(f *testing.F) {
	for _, s := range []string{
		`[{"f":1.5,"i":-3,"u":7,"b":true,"s":"a"}]`,
		`{"rows":[{"f":1e3,"i":0,"u":null,"b":false,"s":null},{"s":"é","b":true,"u":255,"i":9007199254740993,"f":-0}]}`,
		`[{"f":1,"i":1.5,"u":1,"b":true,"s":""}]`,
		`[{"f":1,"i":1,"u":256,"b":true,"s":""}]`,
		`[{"f":1,"i":1,"u":1,"b":true}]`,
		`[{"f":1,"i":1,"u":1,"b":true,"s":"","z":1}]`,
		`{"rows":[]}`, `[]`, `[1]`, `{"rows":{}}`, `[{"f":[1]}]`, `[{"f":1,"f":2}]`, "", "[", `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		rec, _, err := decodeJSONRows(body, fuzzFields, mem)
		if err != nil {
			var se *statusError
			if !errors.As(err, &se) || (se.code != http.StatusBadRequest && se.code != http.StatusUnprocessableEntity) {
				t.Fatalf("error %v: want a 400 or 422 status error", err)
			}
			var sch *source.SchemaError
			if se.code == http.StatusUnprocessableEntity && !errors.As(err, &sch) {
				t.Fatalf("422 %v does not name a column", err)
			}
			return
		}
		defer rec.Release()
		if rec.NumRows() < 1 || !rec.Schema().Equal(fuzzFields) {
			t.Fatalf("decoded %d rows of %v; want ≥ 1 of %v", rec.NumRows(), rec.Schema(), fuzzFields)
		}
		for i, c := range rec.Columns() {
			if int64(c.Len()) != rec.NumRows() {
				t.Fatalf("column %d has %d values; want %d", i, c.Len(), rec.NumRows())
			}
		}
	})
}

// FuzzPredictIPC: any IPC body gets an answer (200, or a 4xx naming what
// is wrong), never a panic or a leak.
func FuzzPredictIPC(f *testing.F) {
	good := ipcBody(f, inSchema.Fields, 2, 3, 1, 2, 3)
	f.Add(good)
	f.Add(good[:len(good)/2])
	other, _, err := decodeJSONRows([]byte(`[{"f":1.5,"i":-3,"u":7,"b":true,"s":"a"}]`), fuzzFields, memory.NewGoAllocator())
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeIPC(&buf, other); err != nil {
		f.Fatal(err)
	}
	other.Release()
	f.Add(buf.Bytes()) // another schema: 422
	f.Add([]byte("ARROW1"))
	m := NewModels(ModelOptions{Pool: 1, Log: quiet})
	if err := m.Publish(newPipe(f, nil, 1, 8), 1); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = m.Close() })
	f.Fuzz(func(t *testing.T, body []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		h := NewPredictor(m, inSchema, PredictOptions{Alloc: mem, Log: quiet, MaxBody: 1 << 20})
		req := httptest.NewRequest(http.MethodPost, "/v1/predict", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", ContentTypeIPC)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d %s", w.Code, w.Body)
		}
	})
}
