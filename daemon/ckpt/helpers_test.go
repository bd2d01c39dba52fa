package ckpt

import (
	"io"
	"log/slog"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/daemon/internal/srctest"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fitted returns a pipeline of one StandardScaler fitted on two rows of
// cols columns, base and base+2: every column's mean is base+1.
func fitted(t testing.TB, base float32, cols int) *flow.Pipeline {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	scale, err := steps.NewStandardScaler()
	if err != nil {
		t.Fatal(err)
	}
	p, err := flow.NewPipeline([]flow.Node{flow.Named("scale", scale)})
	if err != nil {
		t.Fatal(err)
	}
	m := minibatch.NewMatrix(mem, 2, cols)
	for c := range cols {
		m.Data[c], m.Data[cols+c] = base, base+2
	}
	in := flow.Batch{X: m.Record("x")}
	m.Release()
	defer in.Release()
	if err := p.Fit(flow.WithAllocator(t.Context(), mem), in); err != nil {
		t.Fatal(err)
	}
	return p
}

// meanOf returns the mean of the first column of a model from fitted,
// and its number of columns.
func meanOf(t testing.TB, m *persist.Model) (float64, int) {
	t.Helper()
	p, err := m.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	nodes := p.Nodes()
	if len(nodes) != 1 {
		t.Fatalf("loaded pipeline has %d nodes; want 1", len(nodes))
	}
	s, ok := nodes[0].Step.(*steps.StandardScaler)
	if !ok {
		t.Fatalf("loaded step is %T; want *steps.StandardScaler", nodes[0].Step)
	}
	mean := s.Mean()
	if len(mean) == 0 {
		t.Fatal("loaded scaler has no mean")
	}
	return mean[0], len(mean)
}

func newLog() (*slog.Logger, *srctest.LogBuffer) {
	b := &srctest.LogBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
