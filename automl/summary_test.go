package automl_test

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/automl"
	"github.com/penstock-ml/penstock/hparams"
)

// Off a terminal the search logs a line per trial, then the table; the CSV
// holds a header and a row per trial.
func TestSummary(t *testing.T) {
	ctx := deadline(t, 30*time.Second)
	cfg, src := bombConfig(t)
	var out bytes.Buffer
	path := filepath.Join(t.TempDir(), "trials.csv")
	cfg.Progress, cfg.CSV = &out, path
	res, err := automl.Search(ctx, cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if n := strings.Count(text, "automl: trial "); n != 4 {
		t.Errorf("%d progress lines; want 4:\n%s", n, text)
	}
	if strings.Contains(text, "\r") {
		t.Errorf("a progress bar off a terminal:\n%q", text)
	}
	for _, want := range []string{"step", "status", "mse", "bomb__at", "model__w", "failed", "panic: boom at 2", "*", "best: trial "} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(res.Trials)+1 {
		t.Fatalf("%d CSV rows; want %d (a header and one per trial)", len(rows), len(res.Trials)+1)
	}
	head := strings.Join(rows[0], ",")
	if head != "study,step,id,rung,status,score,spread,split1,epochs,duration_s,started,bomb__at,model__v,model__w,error" {
		t.Errorf("CSV header %q", head)
	}
	if rows[2][4] != "failed" || !strings.Contains(rows[2][14], "boom at 2") || rows[1][4] != "done" {
		t.Errorf("CSV rows %q, %q; want trial 0 done and trial 1 failed with its panic", rows[1], rows[2])
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(table.String(), "\n"); lines != 5 {
		t.Errorf("table of %d lines; want 5:\n%s", lines, table.String())
	}
}

// The default space is gathered from the steps; Space replaces it.
func TestSpaceGatheredOrGiven(t *testing.T) {
	mem := checkedMem(t)
	ctx := deadline(t, 10*time.Second)
	cfg := config(t, mem, newAffine())
	cfg.Trials = 2
	cfg.Space = hparams.Space{"model__w": hparams.Choice(4.0), "model__rate": hparams.Choice(0.5)}
	res, err := automl.Search(ctx, cfg, regression(t, mem, 100, 17))
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range res.Trials {
		if tr.Params.String() != "{model__rate: 0.5, model__w: 4}" {
			t.Errorf("trial %d: %v; want the given space's only values", tr.Step, tr.Params)
		}
	}
}
