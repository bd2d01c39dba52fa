package persist_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// arrowJS returns the directory whose node_modules hold apache-arrow and
// fzstd ($PENSTOCK_ARROWJS, default /tmp/arrowjs: `npm install
// apache-arrow fzstd` there), and node; the test skips without them.
func arrowJS(t *testing.T) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	dir = os.Getenv("PENSTOCK_ARROWJS")
	if dir == "" {
		dir = "/tmp/arrowjs"
	}
	for _, pkg := range []string{"apache-arrow", "fzstd"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			t.Skipf("npm package %s is not installed in %s (npm install apache-arrow fzstd there, or set PENSTOCK_ARROWJS)", pkg, dir)
		}
	}
	return node, dir
}

// TestArrowJSReads checks the format with an independent reader: a fitted
// digits pipeline, saved to a directory and a file, read by Apache
// Arrow's JavaScript implementation (testdata/read_model.cjs), which
// checks the checksums and the tar archive and decodes every tensor; the
// values must be the fitted ones, to the bit; and it refuses a manifest
// with one bit flipped.
func TestArrowJSReads(t *testing.T) {
	node, modules := arrowJS(t)
	mem := checkedMem(t)
	ctx := testCtx(t)
	train, _ := digits(ctx, t, mem)
	p := digitsPipeline(t)
	if _, err := (flow.Runner{Allocator: mem}).Fit(ctx, p, train); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := persist.SaveDir(filepath.Join(dir, "model"), p); err != nil {
		t.Fatal(err)
	}
	if err := persist.SaveFile(filepath.Join(dir, "model.pnst"), p); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "read_model.cjs"), modules, filepath.Join(dir, "model"), filepath.Join(dir, "model.pnst"))
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("the JavaScript reader failed: %v", err)
	}
	var got map[string]struct {
		DType  string
		Shape  []int
		Values []any
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	floats := func(key string) []float64 {
		t.Helper()
		e, ok := got[key]
		if !ok {
			t.Fatalf("the reader found no tensor %q (it found %d)", key, len(got))
		}
		out := make([]float64, len(e.Values))
		for i, v := range e.Values {
			out[i] = v.(float64)
		}
		return out
	}
	scale := p.Step("scale").(*steps.StandardScaler)
	if m := floats("scale|mean"); !slices.Equal(m, scale.Mean()) {
		t.Errorf("scale|mean: JavaScript read %v; want %v", m, scale.Mean())
	}
	model := p.Step("logreg").(*steps.LogisticRegression)
	w := floats("logreg|weights")
	if e := got["logreg|weights"]; !slices.Equal(e.Shape, []int{10, 65}) || e.DType != "float64" {
		t.Errorf("logreg|weights: %s of shape %v; want float64 [10 65]", e.DType, e.Shape)
	}
	for k := range 10 {
		row := w[k*65 : (k+1)*65]
		if !slices.Equal(row[:64], model.Coef(k)) || row[64] != model.Intercept(k) {
			t.Fatalf("logreg|weights row %d: JavaScript read other values than the model's", k)
		}
	}
	cols := got["pack|cols"]
	if cols.DType != "utf8" || len(cols.Values) != 64 || cols.Values[63] != "px63" {
		t.Errorf("pack|cols: %s %v; want 64 utf8 names px0 … px63", cols.DType, cols.Values)
	}
	// The reader checks the manifest's checksum as Load does: one bit of
	// the manifest flipped, it refuses.
	path := filepath.Join(dir, "model", persist.ManifestName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.CommandContext(ctx, node, filepath.Join("testdata", "read_model.cjs"), modules, filepath.Join(dir, "model"), filepath.Join(dir, "model.pnst"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "manifest checksum mismatch") {
		t.Errorf("the JavaScript reader on a flipped manifest: %v, %s; want a manifest checksum mismatch", err, stderr.String())
	}
}
