package bench_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// weights is a test-only step that holds a large float32 weight matrix,
// as a network's layer does; it saves it as one tensor.
type weights struct{ w []float32 }

func (s *weights) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

func (s *weights) MarshalState(w *persist.StateWriter) error {
	w.Float32s("w", s.w, len(s.w)/1024, 1024)
	return nil
}

func (s *weights) UnmarshalState(r *persist.StateReader) error {
	w, err := r.Float32s("w")
	s.w = w
	return err
}

// BenchmarkSaveLoad saves and loads a pipeline (StandardScaler → a step
// with 100 MB of float32 weights, drawn like a network's initial weights:
// N(0, 0.05²)), to bytes and to a file. It reports MB/s of weights saved
// and loaded, and the stored size over the raw size (zstd gains little on
// random weights; trained weights and zero-heavy tensors shrink more).
func BenchmarkSaveLoad(b *testing.B) {
	const n = 100 << 20 / 4
	r := rand.New(rand.NewPCG(1, 2))
	big := &weights{w: make([]float32, n)}
	for i := range big.w {
		big.w[i] = float32(0.05 * r.NormFloat64())
	}
	reg := persist.NewRegistry()
	if err := steps.Register(reg); err != nil {
		b.Fatal(err)
	}
	if err := reg.Register(persist.Type{Name: "bench.weights", Version: 1, Of: (*weights)(nil),
		New: func(persist.Spec) (flow.Step, error) { return &weights{}, nil }}); err != nil {
		b.Fatal(err)
	}
	scale, err := steps.NewStandardScaler()
	if err != nil {
		b.Fatal(err)
	}
	p, err := flow.NewPipeline([]flow.Node{flow.Named("scale", scale), flow.Named("layer", big)})
	if err != nil {
		b.Fatal(err)
	}
	raw := float64(n * 4)
	mb := raw / 1e6
	check := func(m *persist.Model) {
		q, err := m.Pipeline()
		if err != nil {
			b.Fatal(err)
		}
		if got := q.Step("layer").(*weights).w; len(got) != n || got[n-1] != big.w[n-1] {
			b.Fatal("the loaded weights differ")
		}
	}
	b.Run("bytes", func(b *testing.B) {
		var saved []byte
		var save, load float64
		for b.Loop() {
			t0 := time.Now()
			var err error
			if saved, err = persist.Marshal(p, persist.WithRegistry(reg)); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			m, err := persist.Unmarshal(saved, persist.WithRegistry(reg))
			if err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			save += t1.Sub(t0).Seconds()
			load += t2.Sub(t1).Seconds()
			b.StopTimer()
			check(m)
			b.StartTimer()
		}
		b.ReportMetric(mb*float64(b.N)/save, "save-MB/s")
		b.ReportMetric(mb*float64(b.N)/load, "load-MB/s")
		b.ReportMetric(float64(len(saved))/raw, "stored/raw")
		b.ReportMetric(0, "ns/op")
	})
	b.Run("file", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "model.pnst")
		var save, load float64
		for b.Loop() {
			t0 := time.Now()
			if err := persist.SaveFile(path, p, persist.WithRegistry(reg)); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			m, err := persist.LoadFile(path, persist.WithRegistry(reg))
			if err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			save += t1.Sub(t0).Seconds()
			load += t2.Sub(t1).Seconds()
			b.StopTimer()
			check(m)
			b.StartTimer()
		}
		st, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(mb*float64(b.N)/save, "save-MB/s")
		b.ReportMetric(mb*float64(b.N)/load, "load-MB/s")
		b.ReportMetric(float64(st.Size())/raw, "stored/raw")
		b.ReportMetric(0, "ns/op")
	})
}
