package persist_test

// An adversarial audit of the promises of persist's doc comments: saves
// and loads from several goroutines at once, hostile manifests and
// archives, and corruption reported with the file and the step.

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// auditTree is a fitted pipeline with state in several steps and a choice
// whose inactive branch holds state too.
func auditTree(t *testing.T) *flow.Pipeline {
	t.Helper()
	mem := checkedMem(t)
	scale := fittedScaler(t, mem)
	noise := must[*steps.GaussianNoise](t)(steps.NewGaussianNoise("x", 0.5, 7))
	enc := must[*steps.LabelEncoder](t)(steps.NewLabelEncoder("y", steps.KnownClasses("a", "b")))
	choose := must[*steps.ChooseOneOf](t)(steps.NewChooseOneOf(flow.Named("noise", noise), flow.Named("enc", enc)))
	return must[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{
		flow.Named("scale", scale), flow.Named("pick", choose, flow.Replicas(2)),
	}))
}

// Every blob of a saved model with one byte flipped is refused with an
// error that names the file, the blob and the step and tensor it holds,
// from a directory, a file and bytes.
func TestAuditFlippedBlobNamesFileAndStep(t *testing.T) {
	p := auditTree(t)
	dir := savedDir(t, p)
	for _, blob := range blobFiles(t, dir) {
		orig := must[[]byte](t)(os.ReadFile(blob))
		b := bytes.Clone(orig)
		b[len(b)/2] ^= 0x10
		if err := os.WriteFile(blob, b, 0o644); err != nil {
			t.Fatal(err)
		}
		mem := checkedMem(t)
		m, err := persist.LoadDir(dir, persist.WithAllocator(mem))
		if m != nil || !errors.Is(err, persist.ErrFormat) {
			t.Fatalf("%s flipped: %v, %v; want no model and an ErrFormat", filepath.Base(blob), m, err)
		}
		for _, w := range []string{dir, filepath.Base(blob), "checksum mismatch", "tensor ", `step "`} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		if err := os.WriteFile(blob, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The same in a file: flip a byte inside each member's content.
	b := must[[]byte](t)(persist.Marshal(p))
	path := filepath.Join(t.TempDir(), "model.pnst")
	for _, r := range tarRegions(t, b) {
		if r.kind != "blob" {
			continue
		}
		bad := bytes.Clone(b)
		bad[(r.from+r.to)/2] ^= 0x10
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		mem := checkedMem(t)
		_, err := persist.LoadFile(path, persist.WithAllocator(mem))
		if !errors.Is(err, persist.ErrFormat) {
			t.Fatalf("a blob flipped in the file: %v; want an ErrFormat", err)
		}
		for _, w := range []string{path, "checksum mismatch", "tensor ", `step "`} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	}
}

// A manifest edited to hold hostile names, paths and shapes, sealed again
// so that the checks after the checksum see it, is refused with no model,
// no panic and nothing left allocated.
func TestAuditHostileManifest(t *testing.T) {
	child := func(m map[string]any, i int) map[string]any {
		return m["root"].(map[string]any)["children"].([]any)[i].(map[string]any)
	}
	anyTensor := func(n map[string]any) map[string]any {
		for _, v := range n["tensors"].(map[string]any) {
			return v.(map[string]any)
		}
		return nil
	}
	cases := []struct {
		name string
		edit func(m map[string]any)
	}{
		{"parent in a step name", func(m map[string]any) { child(m, 0)["name"] = "../x" }},
		{"slash in a step name", func(m map[string]any) { child(m, 0)["name"] = "a/b" }},
		{"separator in a step name", func(m map[string]any) { child(m, 0)["name"] = "a__b" }},
		{"empty step name", func(m map[string]any) { child(m, 0)["name"] = "" }},
		{"repeated step name", func(m map[string]any) { child(m, 1)["name"] = child(m, 0)["name"] }},
		{"blob path out of the directory", func(m map[string]any) {
			for _, v := range m["blobs"].(map[string]any) {
				v.(map[string]any)["path"] = "../../../etc/passwd"
			}
		}},
		{"absolute blob path", func(m map[string]any) {
			for _, v := range m["blobs"].(map[string]any) {
				v.(map[string]any)["path"] = "/etc/passwd"
			}
		}},
		{"negative blob size", func(m map[string]any) {
			for _, v := range m["blobs"].(map[string]any) {
				v.(map[string]any)["size"] = -1
			}
		}},
		{"tensor of an undeclared blob", func(m map[string]any) { anyTensor(child(m, 0))["blob"] = strings.Repeat("ab", 32) }},
		{"tensor blob not hex", func(m map[string]any) { anyTensor(child(m, 0))["blob"] = "../../manifest.json" }},
		{"negative shape", func(m map[string]any) { anyTensor(child(m, 0))["shape"] = []any{-4} }},
		{"shape of another size", func(m map[string]any) { anyTensor(child(m, 0))["shape"] = []any{2, 3} }},
		{"unknown dtype", func(m map[string]any) { anyTensor(child(m, 0))["dtype"] = "complex128" }},
		{"dtype of another kind", func(m map[string]any) { anyTensor(child(m, 0))["dtype"] = "string" }},
		{"type with a path", func(m map[string]any) { child(m, 0)["type"] = "../steps.StandardScaler" }},
		{"children of a leaf", func(m map[string]any) { child(m, 0)["children"] = []any{child(m, 1)} }},
		{"negative replicas", func(m map[string]any) { child(m, 1)["settings"] = map[string]any{"replicas": -2} }},
		{"unknown barrier", func(m map[string]any) { child(m, 1)["settings"] = map[string]any{"barrier": "../x"} }},
		{"choice of no branch", func(m map[string]any) {
			child(m, 1)["params"].(map[string]any)["choice"] = map[string]any{"string": "nothing"}
		}},
		{"extra of an undeclared blob", func(m map[string]any) { m["extra"] = map[string]any{"pos": strings.Repeat("cd", 32)} }},
		{"scalar of two kinds", func(m map[string]any) {
			child(m, 0)["scalars"].(map[string]any)["n"] = map[string]any{"int": 3, "string": "3"}
		}},
	}
	p := auditTree(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := savedDir(t, p)
			editManifest(t, dir, c.edit)
			mem := checkedMem(t)
			m, err := persist.LoadDir(dir, persist.WithAllocator(mem))
			if err == nil || m != nil {
				t.Fatalf("loaded %v, error %v; want an error and no model", m, err)
			}
			if !errors.Is(err, persist.ErrFormat) && !errors.Is(err, persist.ErrLimit) && !errors.Is(err, persist.ErrUnknownType) {
				t.Errorf("error %q wraps none of ErrFormat, ErrLimit, ErrUnknownType", err)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the directory", err)
			}
		})
	}
}

// An archive whose members climb out of it, are links, or are not the
// declared blobs is refused, and nothing is written anywhere.
func TestAuditHostileArchive(t *testing.T) {
	b := must[[]byte](t)(persist.Marshal(auditTree(t)))
	rewrite := func(t *testing.T, change func(i int, h *tar.Header, data []byte) (*tar.Header, []byte)) []byte {
		t.Helper()
		tr := tar.NewReader(bytes.NewReader(b))
		var out bytes.Buffer
		tw := tar.NewWriter(&out)
		for i := 0; ; i++ {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data := must[[]byte](t)(io.ReadAll(tr))
			h, data = change(i, h, data)
			if h == nil {
				continue
			}
			h.Size = int64(len(data))
			if h.Typeflag != tar.TypeReg {
				h.Size = 0
				data = nil
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(data); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	cases := []struct {
		name   string
		change func(i int, h *tar.Header, data []byte) (*tar.Header, []byte)
	}{
		{"member climbs out", func(i int, h *tar.Header, d []byte) (*tar.Header, []byte) {
			if i == 1 {
				h.Name = "../../" + h.Name
			}
			return h, d
		}},
		{"absolute member", func(i int, h *tar.Header, d []byte) (*tar.Header, []byte) {
			if i == 1 {
				h.Name = "/tmp/" + h.Name
			}
			return h, d
		}},
		{"member is a symlink", func(i int, h *tar.Header, d []byte) (*tar.Header, []byte) {
			if i == 1 {
				h.Typeflag, h.Linkname = tar.TypeSymlink, "/etc/passwd"
			}
			return h, d
		}},
		{"member repeated", func(i int, h *tar.Header, d []byte) (*tar.Header, []byte) {
			if i == 2 {
				h.Name = "blobs/" + strings.Repeat("0", 64) + ".arrows"
			}
			return h, d
		}},
		{"manifest not first", func(i int, h *tar.Header, d []byte) (*tar.Header, []byte) {
			if i == 0 {
				h.Name = "blobs/manifest.json"
			}
			return h, d
		}},
		{"member missing", func(i int, h *tar.Header, d []byte) (*tar.Header, []byte) {
			if i == 1 {
				return nil, nil
			}
			return h, d
		}},
		{"member grown", func(i int, h *tar.Header, d []byte) (*tar.Header, []byte) {
			if i == 1 {
				d = append(d, 0)
			}
			return h, d
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := checkedMem(t)
			bad := rewrite(t, c.change)
			m, err := persist.Unmarshal(bad, persist.WithAllocator(mem))
			if err == nil || m != nil {
				t.Fatalf("loaded %v, error %v; want an error and no model", m, err)
			}
			if !errors.Is(err, persist.ErrFormat) {
				t.Errorf("error %q does not wrap ErrFormat", err)
			}
			cwd := t.TempDir()
			path := filepath.Join(cwd, "m.pnst")
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := persist.LoadFile(path, persist.WithAllocator(mem)); !errors.Is(err, persist.ErrFormat) || !strings.Contains(err.Error(), path) {
				t.Errorf("LoadFile: %v; want an ErrFormat naming %s", err, path)
			}
			if entries := must[[]os.DirEntry](t)(os.ReadDir(cwd)); len(entries) != 1 {
				t.Errorf("the load wrote %d entries next to the file; want none", len(entries)-1)
			}
		})
	}
}

// Saves and loads of one tree from several goroutines at once, through
// the shared Default registry and a registry registered into meanwhile,
// all give the same bytes, and every loaded model saves to them again.
func TestAuditConcurrentSaveLoad(t *testing.T) {
	p := auditTree(t)
	want := must[[]byte](t)(persist.Marshal(p))
	reg := persist.NewRegistry()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			mem := checkedMem(t)
			if g == 0 {
				if err := steps.Register(reg); err != nil {
					errs <- err
				}
				return
			}
			for range 4 {
				b, err := persist.Marshal(p)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(b, want) {
					errs <- errors.New("a save made at the same time as others differs")
					return
				}
				m, err := persist.Unmarshal(b, persist.WithAllocator(mem))
				if err != nil {
					errs <- err
					return
				}
				again, err := persist.Marshal(m.Step)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(again, want) {
					errs <- errors.New("a loaded model saves to other bytes")
					return
				}
				_, _ = reg.Lookup("steps.StandardScaler")
				_ = reg.Names()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A step value held at several places of a tree is saved at each and
// loaded as independent steps: a later fit of one changes none of the
// others; the loaded tree transforms as the saved one, to the bit.
func TestAuditSharedStepLoadsIndependent(t *testing.T) {
	mem := checkedMem(t)
	ctx := flow.WithAllocator(testCtx(t), mem)
	scale := fittedScaler(t, mem)
	u := must[*flow.Union](t)(flow.NewUnion(flow.Named("a", scale), flow.Named("b", scale)))
	p := must[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{flow.Named("u", u)}))
	m := must[*persist.Model](t)(persist.Unmarshal(must[[]byte](t)(persist.Marshal(p)), persist.WithAllocator(mem)))
	lp, ok := m.Step.(*flow.Pipeline)
	if !ok {
		t.Fatalf("loaded a %T; want a *flow.Pipeline", m.Step)
	}
	in := tensorBatch(mem, 3, 4)
	defer in.Release()
	transform := func(s flow.Step) string {
		t.Helper()
		out, err := s.Transform(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Release()
		return fmt.Sprint(out.X)
	}
	if got, want := transform(lp), transform(p); got != want {
		t.Fatalf("the loaded tree transforms as\n%s\nwant\n%s", got, want)
	}
	lu := lp.Children()[0].Step.(flow.Composite)
	a, b := lu.Children()[0].Step, lu.Children()[1].Step
	if a == b {
		t.Fatal("the two places hold one step after the load; want independent steps")
	}
	before := transform(b)
	more := tensorBatch(mem, 5, 4)
	defer more.Release()
	if err := a.(flow.Fitter).Fit(ctx, more); err != nil {
		t.Fatal(err)
	}
	if got := transform(b); got != before {
		t.Errorf("fitting one place changed the other: %s; want %s", got, before)
	}
}

// A FileSaver given a context cancelled with a cause reports the cause
// (and context.Canceled), and writes nothing.
func TestAuditFileSaverCause(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.pnst")
	cause := errors.New("audit: the search was stopped")
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(cause)
	err := persist.FileSaver{}.Save(ctx, path, auditTree(t))
	if !errors.Is(err, cause) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want an error wrapping the cause and context.Canceled", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a cancelled save left %s (%v)", path, err)
	}
}

// A manifest whose node settings would make a run start more goroutines
// or allocate more queue slots than Limits allow (a hostile file asking
// for 2⁴⁰ replicas, or a queue of 2⁴⁰ batches that the streaming engine
// would make at once) is refused with ErrLimit naming the step.
func TestAuditSettingsBeyondLimits(t *testing.T) {
	child := func(m map[string]any, i int) map[string]any {
		return m["root"].(map[string]any)["children"].([]any)[i].(map[string]any)
	}
	huge := int64(1) << 40
	for _, c := range []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"replicas", func(m map[string]any) { child(m, 1)["settings"] = map[string]any{"replicas": huge} }, "Limits.MaxReplicas"},
		{"queue capacity", func(m map[string]any) { child(m, 1)["settings"] = map[string]any{"queue_capacity": huge} }, "Limits.MaxQueueCapacity"},
		{"pipeline default queue", func(m map[string]any) {
			root := m["root"].(map[string]any)
			sc, _ := root["scalars"].(map[string]any)
			if sc == nil {
				sc = map[string]any{}
				root["scalars"] = sc
			}
			sc["queue_capacity"] = map[string]any{"int": huge}
		}, "Limits.MaxQueueCapacity"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := savedDir(t, auditTree(t))
			editManifest(t, dir, c.edit)
			mem := checkedMem(t)
			m, err := persist.LoadDir(dir, persist.WithAllocator(mem))
			if m != nil || !errors.Is(err, persist.ErrLimit) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("loaded %v, %v; want an ErrLimit naming %s", m, err, c.want)
			}
			// Within a raised limit it loads.
			lim := persist.Limits{MaxReplicas: 1 << 41, MaxQueueCapacity: 1 << 41}
			if _, err := persist.LoadDir(dir, persist.WithAllocator(mem), persist.WithLimits(lim)); err != nil {
				t.Errorf("with Limits %+v: %v; want it loaded", lim, err)
			}
		})
	}
}
