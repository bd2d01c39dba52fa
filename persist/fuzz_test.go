package persist_test

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// fuzzLimits keep a fuzzed load small.
var fuzzLimits = persist.Limits{MaxManifestBytes: 1 << 20, MaxBlobBytes: 1 << 20, MaxTensorBytes: 1 << 20, MaxTotalBytes: 4 << 20, MaxNodes: 1 << 10}

// fuzzSeeds are saved models of several kinds of step, for the fuzzer to
// start from (the corpus in testdata/fuzz/FuzzLoad holds more: these two,
// a prefix of the second, the first with a scalar edited and resealed, a
// version-1 file of the first, with no manifest checksum, and two inputs
// that are no archive).
func fuzzSeeds(t testing.TB) [][]byte {
	mem := memory.NewGoAllocator()
	ctx := flow.WithAllocator(t.Context(), mem)
	scale, _ := steps.NewStandardScaler()
	in := tensorBatch(mem, 3, 2)
	defer in.Release()
	if err := scale.Fit(ctx, in); err != nil {
		t.Fatal(err)
	}
	enc, _ := steps.NewLabelEncoder("y", steps.KnownClasses("a", "b"))
	noise, _ := steps.NewGaussianNoise("x", 0.5, 1)
	choose, _ := steps.NewChooseOneOf(flow.Named("a", noise), flow.Named("b", enc))
	union, _ := flow.NewUnion(flow.Named("s", scale), flow.Named("c", choose, flow.Replicas(2)))
	p, _ := flow.NewPipeline([]flow.Node{flow.Named("u", union, flow.FitEpochs(1))}, flow.QueueCapacity(2))
	var out [][]byte
	for _, s := range []flow.Step{scale, p} {
		b, err := persist.Marshal(s, persist.WithExtra("pos", []byte("42")))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzLoad loads arbitrary bytes as a saved model: an error, never a
// panic, a hang or a leak; and what loads saves and loads again. With
// reseal, the manifest's checksum is computed again after the mutation
// (persist.ResealArchive), so that a mutated manifest reaches the
// manifest's decoder and the checks after it; without, the checksum must
// refuse every mutated manifest first.
func FuzzLoad(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, reseal bool) {
		if reseal {
			b = bytes.Clone(b) // the fuzzer's input is not to be changed
			persist.ResealArchive(b)
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		m, err := persist.Unmarshal(b, persist.WithLimits(fuzzLimits), persist.WithAllocator(mem))
		if err != nil {
			if m != nil {
				t.Fatalf("a model and an error: %v", err)
			}
			return
		}
		again, err := persist.Marshal(m.Step, persist.WithAllocator(mem))
		if err != nil {
			t.Fatalf("a loaded model does not save: %v", err)
		}
		if _, err := persist.Unmarshal(again, persist.WithAllocator(mem)); err != nil {
			t.Fatalf("a loaded model, saved again, does not load: %v", err)
		}
	})
}
