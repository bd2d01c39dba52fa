package ckpt

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// bigModel returns a StandardScaler fitted on 65536 columns of random
// values: 1 MiB of state (mean and M2, float64), which zstd cannot shrink.
func bigModel(b *testing.B) *flow.Pipeline {
	b.Helper()
	const cols = 1 << 16
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(b, 0)
	scale, err := steps.NewStandardScaler()
	if err != nil {
		b.Fatal(err)
	}
	p, err := flow.NewPipeline([]flow.Node{flow.Named("scale", scale)})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	m := minibatch.NewMatrix(mem, 3, cols)
	for i := range m.Data {
		m.Data[i] = rng.Float32()
	}
	in := flow.Batch{X: m.Record("x")}
	m.Release()
	defer in.Release()
	if err := p.Fit(flow.WithAllocator(b.Context(), mem), in); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkSave saves a 1 MiB model to a Store on the real file system:
// marshal, write, fsync, rename, fsync of the directory, prune.
func BenchmarkSave(b *testing.B) {
	p := bigModel(b)
	st, err := Open(b.TempDir(), Options{Log: discardLog()})
	if err != nil {
		b.Fatal(err)
	}
	meta := Meta{Positions: map[string][]byte{"http": []byte(`{"record":123456,"batch":0}`)}}
	var bytes int64
	b.ReportAllocs()
	for b.Loop() {
		meta.Batches++
		info, err := st.Save(b.Context(), p, meta)
		if err != nil {
			b.Fatal(err)
		}
		bytes += info.Bytes
	}
	b.ReportMetric(float64(bytes)/float64(b.N), "file-bytes")
	b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/save")
}

// BenchmarkLatest loads that model back (read, checksums, decode).
func BenchmarkLatest(b *testing.B) {
	p := bigModel(b)
	st, err := Open(b.TempDir(), Options{Log: discardLog()})
	if err != nil {
		b.Fatal(err)
	}
	info, err := st.Save(b.Context(), p, Meta{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Latest(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(info.Bytes)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/load")
}

// BenchmarkSaveParts splits a Save of the 1 MiB model into its marshal
// (CPU) and the rest (write and two fsyncs), to show where the time goes.
func BenchmarkSaveParts(b *testing.B) {
	p := bigModel(b)
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := persist.Marshal(p); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/op")
	})
	b.Run("write-fsync-rename-fsync", func(b *testing.B) {
		data, err := persist.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		st, err := Open(b.TempDir(), Options{Log: discardLog()})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			seq := int64(i + 1)
			if err := st.commit(filepath.Join(st.dir, tmpName(seq)), filepath.Join(st.dir, fileName(seq)), data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(data))*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
		b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/op")
	})
}
