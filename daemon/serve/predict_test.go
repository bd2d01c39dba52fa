package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
)

// server serves a Predictor over m with a checked allocator that ends at
// 0 (checked after the server, then m, close).
func server(t *testing.T, m *Models, o PredictOptions) *httptest.Server {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	o.Alloc = mem
	srv := httptest.NewServer(NewPredictor(m, inSchema, o))
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // t.Context() is done in Cleanup
		defer cancel()
		closeWithin(t, ctx, m)
		mem.AssertSize(t, 0)
	})
	return srv
}

func TestPredictIPC(t *testing.T) {
	ctx := deadline(t)
	tr := &tracker{}
	m := NewModels(ModelOptions{Pool: 2, Log: quiet})
	srv := server(t, m, PredictOptions{})
	if err := m.Publish(newPipe(t, tr, 7, 8), 7); err != nil {
		t.Fatal(err)
	}
	// Two batches of 3 rows: x0, x1 = 1, 2, 3, 4, 5, 6, ...
	body := ipcBody(t, inSchema.Fields, 2, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	r, err := post(ctx, srv.Client(), srv.URL, ContentTypeIPC, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusOK || r.version != 7 || r.ctype != ContentTypeIPC {
		t.Fatalf("answer %d, version %d, %q (%s); want 200, 7, %s", r.code, r.version, r.ctype, r.body, ContentTypeIPC)
	}
	got, err := tensorValues(r.body)
	if err != nil {
		t.Fatal(err)
	}
	// Row r of batch b: x0 = vals[b*3+r] (column 0 cycles the same values
	// as column 1), packed as [x0, x1].
	in := []float32{1, 2, 3, 4, 5, 6}
	var want []float32
	for _, x := range in {
		want = append(want, x+7, x+7)
	}
	if !equalFloats(got, want) {
		t.Fatalf("answer values %v; want %v", got, want)
	}
	srv.Client().CloseIdleConnections()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	tr.check(t)
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPredictJSON(t *testing.T) {
	ctx := deadline(t)
	m := NewModels(ModelOptions{Pool: 2, Log: quiet})
	srv := server(t, m, PredictOptions{})
	if err := m.Publish(newPipe(t, nil, 3, 8), 3); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body, want string
	}{
		{"array", `[{"x0": 1.5, "x1": -2}, {"x1": 0, "x0": 1e2}]`, `[{"x":[4.5,1]},{"x":[103,3]}]` + "\n"},
		{"wrapped", `{"rows": [{"x0": 0.25, "x1": 1}]}`, `{"rows":[{"x":[3.25,4]}]}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := post(ctx, srv.Client(), srv.URL, "application/json; charset=utf-8", []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if r.code != http.StatusOK || r.version != 3 || r.ctype != ContentTypeJSON {
				t.Fatalf("answer %d, version %d, %q (%s); want 200, 3, %s", r.code, r.version, r.ctype, r.body, ContentTypeJSON)
			}
			if string(r.body) != tc.want {
				t.Fatalf("answer %s; want %s", r.body, tc.want)
			}
			if !json.Valid(r.body) {
				t.Fatalf("answer %s is not valid JSON", r.body)
			}
		})
	}
}

func TestPredictErrors(t *testing.T) {
	ctx := deadline(t)
	m := NewModels(ModelOptions{Pool: 2, Log: quiet})
	srv := server(t, m, PredictOptions{MaxBody: 4096})

	// Before a model: 503 with the version "0".
	r, err := post(ctx, srv.Client(), srv.URL, ContentTypeJSON, []byte(`[{"x0":1,"x1":2}]`))
	if err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusServiceUnavailable || r.version != 0 || !strings.Contains(string(r.body), "no model") {
		t.Fatalf("before a model: %d, version %d, %q; want 503, 0, \"no model\"", r.code, r.version, r.body)
	}
	if err := m.Publish(newPipe(t, nil, 5, 8), 5); err != nil {
		t.Fatal(err)
	}

	other := arrow.NewSchema([]arrow.Field{
		{Name: "x0", Type: arrow.PrimitiveTypes.Float32},
		{Name: "x2", Type: arrow.PrimitiveTypes.Float32},
	}, nil)
	wrongType := arrow.NewSchema([]arrow.Field{
		{Name: "x0", Type: arrow.PrimitiveTypes.Float32},
		{Name: "x1", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	good := ipcBody(t, inSchema.Fields, 1, 2, 1, 2)
	for _, tc := range []struct {
		name, method, ctype string
		body                []byte
		code                int
		want                []string // in the body
	}{
		{"get", http.MethodGet, ContentTypeIPC, nil, 405, []string{"method GET", "POST"}},
		{"text", http.MethodPost, "text/plain", []byte("1,2"), 415, []string{`"text/plain"`, ContentTypeIPC, ContentTypeJSON}},
		{"no type", http.MethodPost, "", good, 415, []string{ContentTypeIPC}},
		{"bad type", http.MethodPost, "a/b/c;;", good, 415, []string{"content type"}},
		{"too big ipc", http.MethodPost, ContentTypeIPC, ipcBody(t, inSchema.Fields, 1, 1000, 1), 413, []string{"over 4096 bytes"}},
		{"too big json", http.MethodPost, ContentTypeJSON, []byte("[" + strings.Repeat(`{"x0":1,"x1":2},`, 400) + `{"x0":1,"x1":2}]`), 413, []string{"over 4096 bytes"}},
		{"ipc missing column", http.MethodPost, ContentTypeIPC, ipcBody(t, other, 1, 2, 1), 422, []string{`column "x1"`, "missing"}},
		{"ipc wrong type", http.MethodPost, ContentTypeIPC, ipcBodyAny(t, wrongType), 422, []string{`column "x1"`, "want float", "got float64"}},
		{"ipc garbage", http.MethodPost, ContentTypeIPC, []byte("not arrow at all"), 400, []string{"predict body"}},
		{"ipc truncated", http.MethodPost, ContentTypeIPC, good[:len(good)-20], 400, []string{"predict"}},
		{"ipc no batch", http.MethodPost, ContentTypeIPC, ipcBody(t, inSchema.Fields, 0, 0, 1), 400, []string{"no record batch"}},
		{"json unknown column", http.MethodPost, ContentTypeJSON, []byte(`[{"x0":1,"x1":2,"x9":3}]`), 422, []string{`row 0`, `column "x9"`, "no such column"}},
		{"json missing column", http.MethodPost, ContentTypeJSON, []byte(`[{"x0":1,"x1":2},{"x0":1}]`), 422, []string{`row 1`, `column "x1"`, "missing"}},
		{"json string value", http.MethodPost, ContentTypeJSON, []byte(`[{"x0":"1","x1":2}]`), 422, []string{`column "x0"`, "want float", "a string"}},
		{"json nested value", http.MethodPost, ContentTypeJSON, []byte(`[{"x0":[1],"x1":2}]`), 422, []string{`column "x0"`, "array or object"}},
		{"json null value", http.MethodPost, ContentTypeJSON, []byte(`[{"x0":null,"x1":2}]`), 422, []string{`column "x0"`, "null"}},
		{"json out of range", http.MethodPost, ContentTypeJSON, []byte(`[{"x0":1e60,"x1":2}]`), 422, []string{`column "x0"`, "out of float32 range"}},
		{"json syntax", http.MethodPost, ContentTypeJSON, []byte(`[{"x0":1,"x1":2}`), 400, []string{"JSON rows"}},
		{"json twice", http.MethodPost, ContentTypeJSON, []byte(`[{"x0":1,"x1":2,"x1":3}]`), 400, []string{`column "x1" twice`}},
		{"json no rows", http.MethodPost, ContentTypeJSON, []byte(`[]`), 400, []string{"no rows"}},
		{"json scalar", http.MethodPost, ContentTypeJSON, []byte(`3`), 400, []string{"array of objects"}},
		{"json other key", http.MethodPost, ContentTypeJSON, []byte(`{"data":[]}`), 400, []string{`"rows"`}},
		{"json trailing", http.MethodPost, ContentTypeJSON, []byte(`[{"x0":1,"x1":2}] []`), 400, []string{"after the rows"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, tc.method, srv.URL, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d (%s); want %d", resp.StatusCode, body.String(), tc.code)
			}
			if v := resp.Header.Get(VersionHeader); v != "5" {
				t.Errorf("%s = %q; want \"5\"", VersionHeader, v)
			}
			for _, w := range tc.want {
				if !strings.Contains(body.String(), w) {
					t.Errorf("body %q lacks %q", body.String(), w)
				}
			}
		})
	}

	// After Close: 503.
	srv.Client().CloseIdleConnections()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = post(ctx, srv.Client(), srv.URL, ContentTypeIPC, good)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusServiceUnavailable || r.version != 0 || !strings.Contains(string(r.body), "closed") {
		t.Fatalf("after Close: %d, version %d, %q; want 503, 0, \"closed\"", r.code, r.version, r.body)
	}
}

// ipcBodyAny is a one-row IPC stream of schema, every column 1.
func ipcBodyAny(t testing.TB, schema *arrow.Schema) []byte {
	t.Helper()
	var buf bytes.Buffer
	rows := `[{` + func() string {
		var s []string
		for _, f := range schema.Fields() {
			s = append(s, `"`+f.Name+`":1`)
		}
		return strings.Join(s, ",")
	}() + `}]`
	rec, _, err := decodeJSONRows([]byte(rows), schema, memory.NewGoAllocator())
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if err := writeIPC(&buf, rec); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// failStep fails every Transform.
type failStep struct{}

func (failStep) Transform(context.Context, flow.Batch) (flow.Batch, error) {
	return flow.Batch{}, errors.New("the model is broken")
}

func TestPredictTransformFails(t *testing.T) {
	ctx := deadline(t)
	m := NewModels(ModelOptions{Pool: 1, Log: quiet})
	var logs bytes.Buffer
	srv := server(t, m, PredictOptions{Log: newTextLog(&logs)})
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("model", newPipe(t, nil, 1, 8)),
		flow.Named("broken", failStep{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Publish(p, 9); err != nil {
		t.Fatal(err)
	}
	r, err := post(ctx, srv.Client(), srv.URL, ContentTypeJSON, []byte(`[{"x0":1,"x1":2}]`))
	if err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusInternalServerError || r.version != 9 || !contains(string(r.body), `"broken"`, "the model is broken", "version 9") {
		t.Fatalf("a failing pipeline: %d, version %d, %q; want 500, 9, naming the step and the cause", r.code, r.version, r.body)
	}
	if !contains(logs.String(), "level=WARN", "code=500", "the model is broken") || strings.Count(logs.String(), "\n") != 1 {
		t.Fatalf("log %q; want one WARN line with the code and the cause", logs.String())
	}
}

// A JSON request for inputs that JSON cannot carry is 415.
func TestPredictJSONUnsupportedColumn(t *testing.T) {
	ctx := deadline(t)
	m := NewModels(ModelOptions{Pool: 1, Log: quiet})
	defer m.Close()
	in := source.Schema{
		Fields: arrow.NewSchema([]arrow.Field{{Name: "when", Type: arrow.FixedWidthTypes.Timestamp_ms}}, nil),
		Inputs: []string{"when"},
	}
	h := NewPredictor(m, in, PredictOptions{})
	if err := m.Publish(newPipe(t, nil, 1, 8), 1); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/predict", strings.NewReader(`[{"when":1}]`))
	req.Header.Set("Content-Type", ContentTypeJSON)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusUnsupportedMediaType || !contains(w.Body.String(), `"when"`, ContentTypeIPC) {
		t.Fatalf("JSON for a timestamp column: %d %q; want 415 naming the column and IPC", w.Code, w.Body.String())
	}
}

// A request that finds every copy busy until its context ends is 503.
func TestPredictPoolBusy(t *testing.T) {
	ctx := deadline(t)
	m := NewModels(ModelOptions{Pool: 1, Log: quiet})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	defer closeWithin(t, ctx, m)
	if err := m.Publish(newPipe(t, nil, 4, 8), 4); err != nil {
		t.Fatal(err)
	}
	v, err := m.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	busy, err := v.Take(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := NewPredictor(m, inSchema, PredictOptions{Alloc: mem, Log: quiet})
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(short, http.MethodPost, "/v1/predict", strings.NewReader(`[{"x0":1,"x1":2}]`))
	req.Header.Set("Content-Type", ContentTypeJSON)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "free copy") || w.Header().Get("Retry-After") == "" {
		t.Fatalf("every copy busy: %d %q (Retry-After %q); want 503 waiting for a free copy, with Retry-After", w.Code, w.Body.String(), w.Header().Get("Retry-After"))
	}
	v.Put(busy)
	v.Release(ctx)
	// Free again: answered.
	req = httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/predict", strings.NewReader(`[{"x0":1,"x1":2}]`))
	req.Header.Set("Content-Type", ContentTypeJSON)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || w.Body.String() != `[{"x":[5,6]}]`+"\n" {
		t.Fatalf("copy free: %d %q; want 200 [{\"x\":[5,6]}]", w.Code, w.Body.String())
	}
}
