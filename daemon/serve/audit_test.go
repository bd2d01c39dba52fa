package serve

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// auditServe answers one request through the predictor without a network.
func auditServe(t *testing.T, h http.Handler, ctx context.Context, ctype string, body []byte, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/predict", bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code, w.Body.String(), w.Header()
}

// Every truncation and flipped byte of a good IPC request is answered 200,
// 400 or 422 with the version header, and leaks nothing.
func TestAuditPredictHostileIPC(t *testing.T) {
	ctx := deadline(t)
	m := NewModels(ModelOptions{Pool: 2, Log: quiet})
	srv := server(t, m, PredictOptions{MaxBody: 1 << 16})
	if err := m.Publish(newPipe(t, nil, 3, 0), 3); err != nil {
		t.Fatal(err)
	}
	h := srv.Config.Handler
	good := ipcBody(t, inSchema.Fields, 2, 3, 1, 2, 3)
	var bodies [][]byte
	for n := range len(good) {
		bodies = append(bodies, good[:n])
	}
	for i := range good {
		for _, x := range []byte{0x01, 0x80, 0xFF} {
			b := bytes.Clone(good)
			b[i] ^= x
			bodies = append(bodies, b)
		}
	}
	for i, b := range bodies {
		code, msg, hdr := auditServe(t, h, ctx, ContentTypeIPC, b, nil)
		if code != 200 && code != 400 && code != 422 {
			t.Fatalf("body %d: %d %q; want 200, 400 or 422", i, code, msg)
		}
		if hdr.Get(VersionHeader) != "3" {
			t.Errorf("body %d: %s %q; want 3", i, VersionHeader, hdr.Get(VersionHeader))
		}
	}
}

// A request whose batches hold no rows has no rows: 400, as for JSON.
func TestAuditPredictZeroRows(t *testing.T) {
	ctx := deadline(t)
	m := NewModels(ModelOptions{Pool: 2, Log: quiet})
	srv := server(t, m, PredictOptions{})
	if err := m.Publish(newPipe(t, nil, 3, 0), 3); err != nil {
		t.Fatal(err)
	}
	code, msg, _ := auditServe(t, srv.Config.Handler, ctx, ContentTypeIPC, ipcBody(t, inSchema.Fields, 2, 0, 1), nil)
	if code != 400 || !strings.Contains(msg, "no rows") {
		t.Errorf("two batches of 0 rows: %d %q; want 400 saying no rows", code, msg)
	}
}

// Hostile JSON rows: huge numbers, deep nesting, NaN, huge exponents,
// integers where floats go and vice versa, a row that is no object. Each
// is 400 or 422, never 500, with the version header; nothing leaks.
func TestAuditPredictHostileJSON(t *testing.T) {
	ctx := deadline(t)
	m := NewModels(ModelOptions{Pool: 2, Log: quiet})
	srv := server(t, m, PredictOptions{MaxBody: 1 << 20})
	if err := m.Publish(newPipe(t, nil, 3, 0), 3); err != nil {
		t.Fatal(err)
	}
	h := srv.Config.Handler
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"NaN", `[{"x0":NaN,"x1":1}]`, 400, "JSON rows"},
		{"Infinity", `[{"x0":Infinity,"x1":1}]`, 400, "JSON rows"},
		{"huge exponent", `[{"x0":1e999999999,"x1":1}]`, 422, `column "x0"`},
		{"huge mantissa", `[{"x0":` + strings.Repeat("9", 5000) + `,"x1":1}]`, 422, `column "x0"`},
		{"tiny", `[{"x0":1e-99999,"x1":1}]`, 200, ""},
		{"deep value", `[{"x0":` + deep + `,"x1":1}]`, 422, `column "x0"`},
		{"deep rows", deep, 400, "JSON rows"},
		{"deep wrapped", `{"rows":` + deep + `}`, 400, "JSON rows"},
		{"bool", `[{"x0":true,"x1":1}]`, 422, `column "x0"`},
		{"row is a number", `[1]`, 400, "row 0"},
		{"row is null", `[null]`, 400, "row 0"},
		{"rows null", `{"rows":null}`, 400, "JSON rows"},
		{"empty key", `[{"":1,"x0":1,"x1":1}]`, 422, `column ""`},
		{"utf8 garbage", "[{\"x0\xff\":1,\"x1\":1}]", 422, "no such column"},
		{"empty body", ``, 400, "JSON rows"},
		{"only whitespace", "  \n ", 400, "JSON rows"},
		{"wrapped twice", `{"rows":[{"x0":1,"x1":1}],"rows":[]}`, 400, "rows"},
	} {
		code, msg, hdr := auditServe(t, h, ctx, ContentTypeJSON, []byte(tc.body), nil)
		if code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %.200q; want %d containing %q", tc.name, code, msg, tc.code, tc.want)
		}
		if hdr.Get(VersionHeader) != "3" {
			t.Errorf("%s: %s %q; want 3", tc.name, VersionHeader, hdr.Get(VersionHeader))
		}
	}
}

// A Content-Encoding is not decoded: 415, whatever the body, never
// inflated.
func TestAuditPredictContentEncoding(t *testing.T) {
	ctx := deadline(t)
	m := NewModels(ModelOptions{Pool: 2, Log: quiet})
	srv := server(t, m, PredictOptions{})
	if err := m.Publish(newPipe(t, nil, 3, 0), 3); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte(`[` + strings.Repeat(`{"x0":1,"x1":2},`, 1000) + `{"x0":1,"x1":2}]`))
	zw.Close()
	for _, ct := range []string{ContentTypeJSON, ContentTypeIPC} {
		code, msg, _ := auditServe(t, srv.Config.Handler, ctx, ct, z.Bytes(), map[string]string{"Content-Encoding": "gzip"})
		if code != 415 || !strings.Contains(msg, "Content-Encoding") {
			t.Errorf("%s, gzip: %d %q; want 415 naming Content-Encoding", ct, code, msg)
		}
	}
	// Content codings are case-insensitive (RFC 9110, 8.4.1): Identity is
	// no coding, like identity.
	for _, enc := range []string{"Identity", " IDENTITY "} {
		code, msg, _ := auditServe(t, srv.Config.Handler, ctx, ContentTypeJSON, []byte(`[{"x0":1,"x1":2}]`), map[string]string{"Content-Encoding": enc})
		if code != 200 {
			t.Errorf("JSON, Content-Encoding %q: %d %q; want 200", enc, code, msg)
		}
	}
}

// A body that stalls does not hold the version's only copy: requests
// that came after it are answered while it waits, and it is answered
// once it ends.
func TestAuditPredictStalledBody(t *testing.T) {
	ctx := deadline(t)
	m := NewModels(ModelOptions{Pool: 1, Log: quiet})
	srv := server(t, m, PredictOptions{})
	if err := m.Publish(newPipe(t, nil, 3, 0), 3); err != nil {
		t.Fatal(err)
	}
	good := ipcBody(t, inSchema.Fields, 1, 2, 1, 2)
	pr, pw := io.Pipe()
	stalled := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, pr)
		req.Header.Set("Content-Type", ContentTypeIPC)
		resp, err := srv.Client().Do(req)
		if err != nil {
			stalled <- reply{code: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		stalled <- reply{code: resp.StatusCode, body: b}
	}()
	if _, err := pw.Write(good[:len(good)/2]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			r, err := post(ctx, srv.Client(), srv.URL, ContentTypeIPC, good)
			if err != nil || r.code != 200 {
				t.Errorf("request %d behind a stalled one: %v %d %q; want 200", i, err, r.code, r.body)
			}
		})
	}
	wg.Wait()
	pw.Write(good[len(good)/2:])
	pw.Close()
	select {
	case r := <-stalled:
		if r.code != 200 {
			t.Errorf("the stalled request: %d %q; want 200", r.code, r.body)
		}
	case <-ctx.Done():
		t.Fatal("the stalled request was never answered")
	}
}

func init() { _ = fmt.Sprint }
