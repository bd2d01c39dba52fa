package automl

import (
	"math"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/hparams"
)

// FuzzDecodeTrial: a trial file from outside decodes or fails with an
// error, never panics, and what decodes encodes and decodes again to the
// same trial.
func FuzzDecodeTrial(f *testing.F) {
	seed, err := encodeTrial(Trial{Study: "s", Search: "x", ID: "1", Step: 2, Epochs: 1, Status: Done,
		Params: hparams.Values{"a": 0.5, "b": 3, "c": true, "d": "e", "f": math.Inf(1)},
		Score:  1, Spread: math.NaN(), Scores: []float64{1}, Started: time.Unix(0, 0).UTC()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{"format":1,"study":"s","search":"x","id":"1","status":"done","params":{"a":"NaN"},"types":{"a":"float"},"score":"NaN"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := decodeTrial(data)
		if err != nil {
			return
		}
		again, err := encodeTrial(tr)
		if err != nil {
			t.Fatalf("decoded %+v, which does not encode: %v", tr, err)
		}
		back, err := decodeTrial(again)
		if err != nil {
			t.Fatalf("re-encoded trial does not decode: %v\n%s", err, again)
		}
		if back.ID != tr.ID || back.Params.String() != tr.Params.String() || back.Status != tr.Status {
			t.Fatalf("round trip changed the trial: %+v, then %+v", tr, back)
		}
	})
}
