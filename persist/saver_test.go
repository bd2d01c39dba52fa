package persist_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

var _ automl.Saver = persist.FileSaver{}

// keepingSaver saves through a FileSaver and keeps a copy of what it
// saved last.
type keepingSaver struct {
	persist.FileSaver
	mu    sync.Mutex
	last  *flow.Pipeline
	saves int
}

func (k *keepingSaver) Save(ctx context.Context, path string, p *flow.Pipeline) error {
	if err := k.FileSaver.Save(ctx, path, p); err != nil {
		return err
	}
	c, err := flow.Copy(p)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.last, k.saves = c.(*flow.Pipeline), k.saves+1
	return nil
}

// TestFileSaverCheckpoint runs a small search with automl.BestCheckpoint
// through a FileSaver: the file holds the last best model saved, which
// LoadFile reads back into a pipeline that transforms to the bit as the
// saved one does.
func TestFileSaverCheckpoint(t *testing.T) {
	mem := checkedMem(t)
	ctx := testCtx(t)
	a, y := make([]float64, 200), make([]float64, 200)
	for i := range a {
		a[i] = float64(i%20)/10 - 1
		y[i] = 3*a[i] - 1
	}
	data := must[*minibatch.Memory](t)(minibatch.FromSlices(10, []minibatch.Column{minibatch.Float64s("a", a)},
		[]minibatch.Column{minibatch.Float64s("y", y)}, minibatch.WithAllocator(mem)))
	defer data.Close()
	p := must[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: []string{"a"}}),
		flow.Named("linear", must[*steps.LinearRegression](t)(steps.NewLinearRegression("y"))),
	}))
	path := filepath.Join(t.TempDir(), "best.penstock")
	saver := &keepingSaver{}
	ckpt := automl.BestCheckpoint(saver, path)
	_, err := automl.Search(ctx, automl.Config{
		Pipeline: p,
		Runner:   flow.Runner{Allocator: mem},
		Override: hparams.Space{
			"linear__learning_rate": hparams.Choice(0.01, 0.1),
			"linear__penalty":       hparams.Fixed(steps.PenaltyNone),
			"linear__alpha":         hparams.Fixed(1e-4),
			"linear__momentum":      hparams.Fixed(0.0),
		},
		Sampler:    &automl.Grid{},
		Splitter:   automl.KFold(2, minibatch.WithStratify(false)),
		Metric:     metrics.MSE,
		Prediction: "pred", Truth: "y",
		Epochs:    3,
		Callbacks: []automl.Callback{ckpt},
	}, data)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, saves, ok := ckpt.Best()
	if !ok || saves == 0 || saves != saver.saves {
		t.Fatalf("checkpoint: %d saves (ok %v), the saver %d; want at least one, the same", saves, ok, saver.saves)
	}
	m, err := persist.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	loaded := must[*flow.Pipeline](t)(m.Pipeline())
	for _, engine := range engines {
		r := flow.Runner{Engine: engine, Allocator: mem}
		want := outputs(ctx, t, r, saver.last, data)
		if len(want) == 0 {
			t.Fatalf("%s: no output batches", engine)
		}
		if got := outputs(ctx, t, r, loaded, data); !slices.Equal(got, want) {
			t.Errorf("%s: the checkpoint file transforms otherwise than the last best model saved", engine)
		}
	}
}

// TestFileSaverContext: a done context is an error, and nothing is
// written; a nil pipeline is refused.
func TestFileSaverContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.penstock")
	p := must[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{
		flow.Named("scale", must[*steps.StandardScaler](t)(steps.NewStandardScaler())),
	}))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := (persist.FileSaver{}).Save(ctx, path, p); !errors.Is(err, context.Canceled) {
		t.Fatalf("save with a cancelled context: %v; want context.Canceled", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a cancelled save left %s (%v)", path, err)
	}
	if err := (persist.FileSaver{}).Save(t.Context(), path, nil); err == nil {
		t.Fatal("save of a nil pipeline: no error")
	}
	reg := persist.NewRegistry() // knows no steps.StandardScaler
	err := persist.FileSaver{Options: []persist.Option{persist.WithRegistry(reg)}}.Save(t.Context(), path, p)
	if !errors.Is(err, persist.ErrUnknownType) {
		t.Fatalf("save through a registry without the scaler: %v; want ErrUnknownType (the Options are used)", err)
	}
	if err := (persist.FileSaver{}).Save(t.Context(), path, p); err != nil {
		t.Fatal(err)
	}
	m, err := persist.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Pipeline(); err != nil {
		t.Fatal(err)
	}
}
