package persist_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// fittedScaler returns a StandardScaler fitted on a few rows of width 4.
func fittedScaler(t *testing.T, mem memory.Allocator) *steps.StandardScaler {
	t.Helper()
	s := must[*steps.StandardScaler](t)(steps.NewStandardScaler())
	ctx := flow.WithAllocator(testCtx(t), mem)
	in := tensorBatch(mem, 3, 4)
	defer in.Release()
	if err := s.Fit(ctx, in); err != nil {
		t.Fatal(err)
	}
	return s
}

// savedDir saves s to a new directory and returns it with its manifest,
// decoded as generic JSON.
func savedDir(t *testing.T, s flow.Step, opts ...persist.Option) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	if err := persist.SaveDir(dir, s, opts...); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readManifest(t *testing.T, dir string) string {
	t.Helper()
	return string(must[[]byte](t)(os.ReadFile(filepath.Join(dir, persist.ManifestName))))
}

// writeManifest writes m as the manifest of dir, sealed with its checksum
// (persist.SealManifest), so that the load checks what comes after it.
func writeManifest(t *testing.T, dir, m string) {
	t.Helper()
	sealed := must[[]byte](t)(persist.SealManifest([]byte(m)))
	if err := os.WriteFile(filepath.Join(dir, persist.ManifestName), sealed, 0o644); err != nil {
		t.Fatal(err)
	}
}

// blobFiles returns the paths of the blobs of the saved directory.
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	files := must[[]string](t)(filepath.Glob(filepath.Join(dir, "blobs", "*.arrows")))
	if len(files) == 0 {
		t.Fatal("no blobs")
	}
	return files
}

// replaceBlob stores data in place of the blob file (by its path) and
// updates the manifest: checksum and size, so that only the content is
// wrong.
func replaceBlob(t *testing.T, dir, file string, data []byte) {
	t.Helper()
	old := strings.TrimSuffix(filepath.Base(file), ".arrows")
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	if err := os.WriteFile(filepath.Join(dir, "blobs", sum+".arrows"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	writeManifest(t, dir, strings.ReplaceAll(readManifest(t, dir), old, sum))
	editManifest(t, dir, func(m map[string]any) {
		m["blobs"].(map[string]any)[sum].(map[string]any)["size"] = len(data)
	})
}

// editManifest changes the manifest of dir with edit, on its JSON, and
// seals it again.
func editManifest(t *testing.T, dir string, edit func(m map[string]any)) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(readManifest(t, dir)), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "manifest_sha256") // sealed again by writeManifest
	edit(m)
	writeManifest(t, dir, string(must[[]byte](t)(json.Marshal(m))))
}

// root returns the root node of a manifest's JSON, and one of its members.
func root(m map[string]any, member string) map[string]any {
	return m["root"].(map[string]any)[member].(map[string]any)
}

// TestLoadRefuses checks each way a load refuses, with its error, and that
// nothing is returned and nothing stays allocated.
func TestLoadRefuses(t *testing.T) {
	type tc struct {
		name  string
		setup func(t *testing.T, mem memory.Allocator) (dir string, opts []persist.Option)
		is    error
		want  []string // substrings of the error
	}
	cases := []tc{
		{"unknown type", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			return savedDir(t, fittedScaler(t, mem)), []persist.Option{persist.WithRegistry(persist.NewRegistry())}
		}, persist.ErrUnknownType, []string{`"steps.StandardScaler"`, "registered: flow.Pipeline, flow.Union, minibatch.PackStep"}},
		{"newer format", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			dir := savedDir(t, fittedScaler(t, mem))
			editManifest(t, dir, func(m map[string]any) { m["format_version"] = 3 })
			return dir, nil
		}, persist.ErrNewerFormat, []string{"format version 3", "up to 2"}},
		{"newer step version", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			dir := savedDir(t, fittedScaler(t, mem))
			editManifest(t, dir, func(m map[string]any) { m["root"].(map[string]any)["version"] = 3 })
			return dir, nil
		}, persist.ErrNewerFormat, []string{"version 3 of steps.StandardScaler", "registers version 1"}},
		{"checksum mismatch", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			dir := savedDir(t, fittedScaler(t, mem))
			f := blobFiles(t, dir)[0]
			b := must[[]byte](t)(os.ReadFile(f))
			b[len(b)/2] ^= 0x40
			if err := os.WriteFile(f, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return dir, nil
		}, persist.ErrFormat, []string{"checksum mismatch"}},
		{"truncated blob", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			dir := savedDir(t, fittedScaler(t, mem))
			f := blobFiles(t, dir)[0]
			b := must[[]byte](t)(os.ReadFile(f))
			if err := os.WriteFile(f, b[:len(b)-9], 0o644); err != nil {
				t.Fatal(err)
			}
			return dir, nil
		}, persist.ErrFormat, []string{"truncated"}},
		{"missing blob", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			dir := savedDir(t, fittedScaler(t, mem))
			if err := os.Remove(blobFiles(t, dir)[0]); err != nil {
				t.Fatal(err)
			}
			return dir, nil
		}, persist.ErrFormat, []string{"no such file"}},
		{"truncated stream, checksum right", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			dir := savedDir(t, fittedScaler(t, mem))
			f := blobFiles(t, dir)[0]
			b := must[[]byte](t)(os.ReadFile(f))
			replaceBlob(t, dir, f, b[:len(b)-40])
			return dir, nil
		}, persist.ErrFormat, []string{"tensor"}},
		{"blob over its limit", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			return savedDir(t, fittedScaler(t, mem)), []persist.Option{persist.WithLimits(persist.Limits{MaxBlobBytes: 100})}
		}, persist.ErrLimit, []string{"Limits.MaxBlobBytes"}},
		{"tensor over its limit", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			return savedDir(t, fittedScaler(t, mem)), []persist.Option{persist.WithLimits(persist.Limits{MaxTensorBytes: 16})}
		}, persist.ErrLimit, []string{"Limits.MaxTensorBytes"}},
		{"declared shape beyond the limit", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			dir := savedDir(t, fittedScaler(t, mem))
			editManifest(t, dir, func(m map[string]any) { root(m, "tensors")["mean"].(map[string]any)["shape"] = []int64{4000000000000} })
			return dir, nil
		}, persist.ErrLimit, []string{"4000000000000", "Limits.MaxTensorBytes"}},
		{"manifest over its limit", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			return savedDir(t, fittedScaler(t, mem)), []persist.Option{persist.WithLimits(persist.Limits{MaxManifestBytes: 64})}
		}, persist.ErrLimit, []string{"manifest.json"}},
		{"nested too deep", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			var s flow.Step = fittedScaler(t, mem)
			for range 70 {
				s = must[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{flow.Named("p", s)}))
			}
			return savedDir(t, s), nil
		}, persist.ErrLimit, []string{"Limits.MaxDepth"}},
		{"manifest nested deeply", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			dir := savedDir(t, fittedScaler(t, mem))
			writeManifest(t, dir, strings.Repeat(`{"root":`, 100000)+strings.Repeat("}", 100000))
			return dir, nil
		}, persist.ErrLimit, []string{"nested deeper"}},
		{"not JSON", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			dir := savedDir(t, fittedScaler(t, mem))
			writeManifest(t, dir, `{"format": "penstock-model", "format_version": 1, "root": {"type": "steps.StandardScaler", "version": 1, "surprise": 1}}`)
			return dir, nil
		}, persist.ErrFormat, []string{"surprise"}},
		{"bad hyperparameter", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			dir := savedDir(t, fittedScaler(t, mem))
			editManifest(t, dir, func(m map[string]any) { root(m, "params")["with_mean"] = map[string]any{"string": "yes"} })
			return dir, nil
		}, persist.ErrFormat, []string{"with_mean"}},
		{"bad state", func(t *testing.T, mem memory.Allocator) (string, []persist.Option) {
			dir := savedDir(t, fittedScaler(t, mem))
			editManifest(t, dir, func(m map[string]any) { root(m, "scalars")["n"] = map[string]any{"int": -3} })
			return dir, nil
		}, persist.ErrFormat, []string{"count -3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := checkedMem(t)
			dir, opts := c.setup(t, mem)
			opts = append(opts, persist.WithAllocator(mem))
			m, err := persist.LoadDir(dir, opts...)
			if err == nil {
				t.Fatalf("loaded %T; want an error", m.Step)
			}
			t.Log(err)
			if m != nil {
				t.Errorf("a model came back with the error %v", err)
			}
			if !errors.Is(err, c.is) {
				t.Errorf("error %q does not wrap %q", err, c.is)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// tensorBlob returns the file of the blob of the root step's tensor name.
func tensorBlob(t *testing.T, dir, name string) string {
	t.Helper()
	var m struct {
		Root struct {
			Tensors map[string]struct{ Blob string }
		}
	}
	if err := json.Unmarshal([]byte(readManifest(t, dir)), &m); err != nil {
		t.Fatal(err)
	}
	sum := m.Root.Tensors[name].Blob
	if sum == "" {
		t.Fatalf("no tensor %q in the manifest", name)
	}
	return filepath.Join(dir, "blobs", sum+".arrows")
}

// largest is an allocator that records the largest allocation asked of it.
type largest struct {
	memory.Allocator
	max int
}

func (l *largest) Allocate(n int) []byte {
	l.max = max(l.max, n)
	return l.Allocator.Allocate(n)
}

func (l *largest) Reallocate(n int, b []byte) []byte {
	l.max = max(l.max, n)
	return l.Allocator.Reallocate(n, b)
}

// TestDecompressionBomb replaces the blob of a 4-value tensor by a valid,
// checksummed one of 8 Mi zeros (64 MiB decoded, a few KiB stored): the
// load refuses before it asks for the memory.
func TestDecompressionBomb(t *testing.T) {
	mem := checkedMem(t)
	dir := savedDir(t, fittedScaler(t, mem))
	f := tensorBlob(t, dir, "mean")
	md := arrow.NewMetadata([]string{"penstock.shape"}, []string{"[4]"})
	schema := arrow.NewSchema([]arrow.Field{{Name: "mean", Type: arrow.PrimitiveTypes.Float64}}, &md)
	b := array.NewFloat64Builder(mem)
	b.AppendValues(make([]float64, 8<<20), nil)
	col := b.NewArray()
	b.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
	col.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithZstd(), ipc.WithAllocator(mem))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > 64<<10 {
		t.Fatalf("the bomb has %d bytes; want a small one", buf.Len())
	}
	replaceBlob(t, dir, f, buf.Bytes())
	spy := &largest{Allocator: mem}
	m, err := persist.LoadDir(dir, persist.WithAllocator(spy))
	if err == nil {
		t.Fatalf("loaded %T; want an error", m.Step)
	}
	if !errors.Is(err, persist.ErrFormat) || !strings.Contains(err.Error(), "decompression") || !strings.Contains(err.Error(), `tensor "mean"`) {
		t.Errorf("error %q; want one that names the tensor and the decompression limit", err)
	}
	if spy.max > 1<<20 {
		t.Errorf("the load asked for %d bytes at once; want the limit to refuse first", spy.max)
	}
}

// tensorBatch returns a batch whose X is a tensor "x" of rows × cols,
// row r holding r·cols + j + 0.5 at j.
func tensorBatch(mem memory.Allocator, rows, cols int) flow.Batch {
	m := minibatch.NewMatrix(mem, rows, cols)
	defer m.Release()
	for i := range m.Data {
		m.Data[i] = float32(i) + 0.5
	}
	return flow.Batch{X: m.Record("x")}
}
