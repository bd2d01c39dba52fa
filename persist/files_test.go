package persist_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// crash makes the next save stop between writing a temporary file and
// renaming it over name, as a crash would there, leaving the temporary
// file behind.
func crash(t *testing.T, name string) {
	t.Helper()
	errCrash := errors.New("simulated crash")
	restore := persist.SetBeforeRename(func(tmp, final string) error {
		if filepath.Base(final) != name {
			return nil
		}
		// Keep what was written, as a crash would.
		b, err := os.ReadFile(tmp)
		if err != nil {
			return err
		}
		if err := os.WriteFile(tmp+".kept", b, 0o644); err != nil {
			return err
		}
		return errCrash
	})
	t.Cleanup(restore)
}

func selectStep(t *testing.T, names ...string) flow.Step {
	return must[*steps.SelectColumns](t)(steps.NewSelectColumns(names...))
}

func columnsOf(t *testing.T, m *persist.Model) []string {
	t.Helper()
	return m.Step.(*steps.SelectColumns).Columns()
}

// TestCrashLeavesOldFile: a save that stops between write and rename
// leaves the old file, which loads as before.
func TestCrashLeavesOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.pnst")
	if err := persist.SaveFile(path, selectStep(t, "old")); err != nil {
		t.Fatal(err)
	}
	crash(t, "model.pnst")
	if err := persist.SaveFile(path, selectStep(t, "new")); err == nil || !strings.Contains(err.Error(), "simulated crash") {
		t.Fatalf("save: %v; want the simulated crash", err)
	}
	m := must[*persist.Model](t)(persist.LoadFile(path))
	if got := columnsOf(t, m); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("after the crash the file holds %v; want the old model [old]", got)
	}
	persist.SetBeforeRename(nil)
	if err := persist.SaveFile(path, selectStep(t, "new")); err != nil {
		t.Fatal(err)
	}
	if got := columnsOf(t, must[*persist.Model](t)(persist.LoadFile(path))); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("after a save the file holds %v; want [new]", got)
	}
}

// TestCrashLeavesOldDir: in a directory the manifest is the commit point;
// a crash before its rename leaves the old manifest and its blobs, and the
// next save removes what the crash left.
func TestCrashLeavesOldDir(t *testing.T) {
	mem := checkedMem(t)
	dir := filepath.Join(t.TempDir(), "model")
	old := fittedScaler(t, mem)
	if err := persist.SaveDir(dir, old); err != nil {
		t.Fatal(err)
	}
	before := must[[]string](t)(filepath.Glob(filepath.Join(dir, "blobs", "*")))
	newer := fittedScaler(t, mem)
	in := tensorBatch(mem, 2, 4)
	if err := newer.Fit(flow.WithAllocator(testCtx(t), mem), in); err != nil {
		t.Fatal(err)
	}
	in.Release()
	crash(t, persist.ManifestName)
	if err := persist.SaveDir(dir, newer); err == nil {
		t.Fatal("save: no error; want the simulated crash")
	}
	m := must[*persist.Model](t)(persist.LoadDir(dir))
	if got := m.Step.(*steps.StandardScaler).Count(); got != 3 {
		t.Fatalf("after the crash the directory holds a scaler fitted on %d rows; want the old one, 3", got)
	}
	persist.SetBeforeRename(nil)
	if err := persist.SaveDir(dir, newer); err != nil {
		t.Fatal(err)
	}
	m = must[*persist.Model](t)(persist.LoadDir(dir))
	if got := m.Step.(*steps.StandardScaler).Count(); got != 5 {
		t.Fatalf("after a save: fitted on %d rows; want 5", got)
	}
	after := must[[]string](t)(filepath.Glob(filepath.Join(dir, "blobs", "*")))
	if len(after) != 2 || slices.Equal(after, before) {
		t.Fatalf("blobs after the save: %v; want the 2 new ones only (before: %v)", after, before)
	}
	left := must[[]string](t)(filepath.Glob(filepath.Join(dir, ".*")))
	for _, f := range left {
		if !strings.HasSuffix(f, ".kept") {
			t.Errorf("the save left %s", f)
		}
	}
}

// TestTruncatedFile: a prefix of a saved file that cuts a member is
// refused (the tar archive's end: the last member's padding to 512 bytes
// and the end-of-archive marker, 1024 zero bytes, hold no data, and a file
// cut within them has all it needs).
func TestTruncatedFile(t *testing.T) {
	mem := checkedMem(t)
	b := must[[]byte](t)(persist.Marshal(fittedScaler(t, mem)))
	for n := 0; n < len(b)-1024-512; n += 97 {
		m, err := persist.Unmarshal(b[:n], persist.WithAllocator(mem))
		if err == nil {
			t.Fatalf("%d of %d bytes loaded a %T; want an error", n, len(b), m.Step)
		}
		if !errors.Is(err, persist.ErrFormat) {
			t.Errorf("%d bytes: %v; want an ErrFormat", n, err)
		}
	}
	if _, err := persist.Unmarshal(b, persist.WithAllocator(mem)); err != nil {
		t.Fatal(err)
	}
	// The same through a file (read as a stream, not sliced).
	path := filepath.Join(t.TempDir(), "cut.pnst")
	if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := persist.LoadFile(path, persist.WithAllocator(mem)); !errors.Is(err, persist.ErrFormat) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("a file cut in half: %v; want a truncated ErrFormat", err)
	}
}

// TestSaveRefusesUnregistered: a step whose type is not registered is an
// error that names its path and type.
func TestSaveRefusesUnregistered(t *testing.T) {
	p := must[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{flow.Named("mine", mystery{})}))
	_, err := persist.Marshal(p)
	if !errors.Is(err, persist.ErrUnknownType) || !strings.Contains(err.Error(), `step "mine" (persist_test.mystery)`) {
		t.Fatalf("error %v; want ErrUnknownType naming step \"mine\" and its type", err)
	}
}

type mystery struct{}

func (mystery) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}
