package automl

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// On a terminal the progress is one bar redrawn in place; a buffer and a
// regular file are not terminals.
func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, 4, "mse", false)
	if p.tty {
		t.Fatal("a bytes.Buffer taken for a terminal")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file taken for a terminal")
	}
	p.tty = true
	p.start(1)
	p.trial(Trial{Step: 1, Status: Done, Score: 0.5, Duration: time.Millisecond}, Trial{Step: 1, Status: Done, Score: 0.5})
	out := buf.String()
	if strings.Count(out, "\r[") != 2 || strings.Contains(out, "\n") {
		t.Errorf("bar output %q; want two redraws of one line", out)
	}
	if !strings.Contains(out, "[###############...............] 2/4 trials") || !strings.Contains(out, "best mse 0.5000 (trial 1)") {
		t.Errorf("bar output %q; want half full, 2/4 trials, best mse 0.5000 (trial 1)", out)
	}
}
