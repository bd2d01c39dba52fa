package mlp_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/metrics"
	"github.com/penstock-ml/penstock/steps/mlp"
	"github.com/penstock-ml/penstock/steps/nn"
)

// digitsSpec is the scikit-learn reference: MLPClassifier(hidden_layer_
// sizes=(64,), solver="adam", batch_size=64, max_iter=50) reaches 0.973.
func digitsSpec() nn.Spec {
	s := nn.Default(nn.CrossEntropy)
	s.Hidden = []int{64}
	return s
}

// TestDigits fits one hidden layer of 64 with Adam, batches of 64, 50
// epochs on the standardized digits, in both engines, and scores the
// holdout: at least 0.963 (scikit-learn: 0.973).
func TestDigits(t *testing.T) {
	if testing.Short() {
		t.Skip("fits 50 epochs")
	}
	defer goleak.VerifyNone(t)
	d := loadDigits(t)
	for _, engine := range []flow.Engine{flow.Sequential, flow.Streaming} {
		t.Run(engine.String(), func(t *testing.T) {
			mem := checked(t)
			ctx := deadline(t, 60*time.Second)
			train := memorySource(t, mem, d.trainX, d.trainY)
			defer train.Close()
			test := memorySource(t, mem, d.testX, d.testY)
			defer test.Close()
			perm, stream := epochs(t, train, 64, 50)
			defer perm.Close()
			defer stream.Close()

			clf, err := mlp.NewClassifier(10, digitsSpec())
			if err != nil {
				t.Fatal(err)
			}
			p, err := flow.NewPipeline([]flow.Node{flow.Named("mlp", clf)})
			if err != nil {
				t.Fatal(err)
			}
			r := flow.Runner{Engine: engine, Allocator: mem}
			start := time.Now()
			if _, err := r.Fit(ctx, p, stream); err != nil {
				t.Fatal(err)
			}
			fit := time.Since(start)
			if got, want := clf.Steps(), int64(50*22); got != want {
				t.Errorf("got %d optimizer steps; want %d (22 batches × 50 epochs)", got, want)
			}
			scores, err := metrics.Score(ctx, r, p, test, mlp.ClassColumn, "y", metrics.Accuracy(), metrics.MacroF1())
			if err != nil {
				t.Fatal(err)
			}
			if acc := scores["accuracy"]; acc < 0.963 {
				t.Errorf("test accuracy %.3f; want at least 0.963 (scikit-learn: 0.973)", acc)
			}
			t.Logf("%s: test accuracy %.3f, macro F1 %.3f, fit %v (1347 rows, 50 epochs)", engine, scores["accuracy"], scores["macro_f1"], fit.Round(time.Millisecond))
		})
	}
}
