package serve

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func get(h http.Handler, target string) (int, string) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	return w.Code, w.Body.String()
}

func TestHealth(t *testing.T) {
	h := NewHealth()
	type probe struct {
		target string
		code   int
		body   string
	}
	steps := []struct {
		name   string
		set    func()
		ready  bool
		probes []probe
	}{
		{"no checks", func() {}, true, []probe{
			{"/readyz", 200, "ok"},
			{"/readyz?verbose", 200, "readyz check passed\n"},
		}},
		{"no model yet", func() {
			h.Set(CheckModel, errors.New("no model yet"))
			h.Set(CheckDraining, nil)
		}, false, []probe{
			{"/readyz", 503, "readyz check failed\n"},
			{"/readyz?verbose", 503, "[+]draining ok\n[-]model failed: no model yet\nreadyz check failed\n"},
			{"/readyz?verbose=1", 503, "[+]draining ok\n[-]model failed: no model yet\nreadyz check failed\n"},
		}},
		{"serving", func() { h.Set(CheckModel, nil) }, true, []probe{
			{"/readyz", 200, "ok"},
			{"/readyz?verbose", 200, "[+]draining ok\n[+]model ok\nreadyz check passed\n"},
		}},
		{"draining", func() { h.Set(CheckDraining, errors.New("draining\nsince SIGTERM")) }, false, []probe{
			{"/readyz", 503, "readyz check failed\n"},
			{"/readyz?verbose", 503, "[-]draining failed: draining since SIGTERM\n[+]model ok\nreadyz check failed\n"},
		}},
	}
	for _, st := range steps {
		st.set()
		if err := h.Ready(); (err == nil) != st.ready {
			t.Errorf("%s: Ready() = %v; want ready %v", st.name, err, st.ready)
		}
		for _, p := range st.probes {
			code, body := get(h.Readyz(), p.target)
			if code != p.code || body != p.body {
				t.Errorf("%s: GET %s = %d %q; want %d %q", st.name, p.target, code, body, p.code, p.body)
			}
		}
		// Liveness does not depend on the checks.
		if code, body := get(h.Livez(), "/livez"); code != 200 || body != "ok" {
			t.Errorf("%s: GET /livez = %d %q; want 200 \"ok\"", st.name, code, body)
		}
	}
}
