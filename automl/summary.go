package automl

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// WriteTable writes the trials as a table, one row per trial in step
// order: step, rung, status, score ± spread, epochs, duration, each
// hyperparameter, and the first line of the error; the best trial is
// marked with "*".
func (r Result) WriteTable(w io.Writer) error {
	keys := paramKeys(r.Trials)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := append([]string{"", "step", "rung", "status", r.Metric, "±", "epochs", "duration"}, keys...)
	head = append(head, "error")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, t := range r.Trials {
		mark := ""
		if r.Best.Status == Done && t.ID == r.Best.ID && t.Step == r.Best.Step {
			mark = "*"
		}
		row := []string{mark, strconv.Itoa(t.Step), strconv.Itoa(t.Rung), string(t.Status),
			formatScore(t.Score), formatScore(t.Spread), strconv.Itoa(t.Epochs), t.Duration.Round(time.Millisecond).String()}
		for _, k := range keys {
			row = append(row, formatParam(t.Params, k))
		}
		msg, _, _ := strings.Cut(t.Error, "\n")
		row = append(row, msg)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// WriteCSV writes the trials as CSV with a header: study, step, id, rung,
// status, score, spread, the score of each split, epochs, duration in
// seconds, start time (RFC 3339), each hyperparameter, and the error.
func (r Result) WriteCSV(w io.Writer) error {
	keys := paramKeys(r.Trials)
	splits := 0
	for _, t := range r.Trials {
		splits = max(splits, len(t.Scores))
	}
	cw := csv.NewWriter(w)
	head := []string{"study", "step", "id", "rung", "status", "score", "spread"}
	for i := range splits {
		head = append(head, fmt.Sprintf("split%d", i+1))
	}
	head = append(head, "epochs", "duration_s", "started")
	head = append(head, keys...)
	head = append(head, "error")
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, t := range r.Trials {
		row := []string{t.Study, strconv.Itoa(t.Step), t.ID, strconv.Itoa(t.Rung), string(t.Status),
			strconv.FormatFloat(t.Score, 'g', -1, 64), strconv.FormatFloat(t.Spread, 'g', -1, 64)}
		for i := range splits {
			if i < len(t.Scores) {
				row = append(row, strconv.FormatFloat(t.Scores[i], 'g', -1, 64))
			} else {
				row = append(row, "")
			}
		}
		row = append(row, strconv.Itoa(t.Epochs), strconv.FormatFloat(t.Duration.Seconds(), 'f', 6, 64), t.Started.Format(time.RFC3339Nano))
		for _, k := range keys {
			row = append(row, formatParam(t.Params, k))
		}
		row = append(row, t.Error)
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeCSVFile writes r's CSV to path atomically (a temporary file in the
// same directory, synced, renamed).
func writeCSVFile(path string, r Result) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("automl: write CSV: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := r.WriteCSV(f); err != nil {
		return fmt.Errorf("automl: write CSV %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("automl: write CSV %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("automl: write CSV %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("automl: write CSV: %w", err)
	}
	return nil
}

func paramKeys(trials []Trial) []string {
	seen := map[string]bool{}
	for _, t := range trials {
		for k := range t.Params {
			seen[k] = true
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func formatParam(v map[string]any, k string) string {
	x, ok := v[k]
	if !ok {
		return ""
	}
	if f, ok := x.(float64); ok {
		return strconv.FormatFloat(f, 'g', 6, 64)
	}
	return fmt.Sprint(x)
}

func formatScore(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return strconv.FormatFloat(f, 'f', 4, 64)
}

// progress reports a running search: a bar redrawn in place on a
// terminal, a line per trial elsewhere, and the table at the end.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	total    int // 0: unknown
	done     int
	metric   string
	maximize bool
	begin    time.Time
}

func newProgress(w io.Writer, total int, metric string, maximize bool) *progress {
	return &progress{w: w, tty: isTerminal(w), total: total, metric: metric, maximize: maximize, begin: time.Now()}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) start(loaded int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = loaded
	if p.tty {
		p.bar(Trial{})
		return
	}
	if loaded > 0 {
		fmt.Fprintf(p.w, "automl: resuming with %d trials recorded\n", loaded)
	}
}

func (p *progress) trial(t Trial, best Trial) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.tty {
		p.bar(best)
		return
	}
	of := ""
	if p.total > 0 {
		of = fmt.Sprintf("/%d", p.total)
	}
	if t.Status == Done {
		fmt.Fprintf(p.w, "automl: trial %d (%d%s) done in %v: %s %s ± %s %v\n", t.Step, p.done, of,
			t.Duration.Round(time.Millisecond), p.metric, formatScore(t.Score), formatScore(t.Spread), t.Params)
		return
	}
	msg, _, _ := strings.Cut(t.Error, "\n")
	fmt.Fprintf(p.w, "automl: trial %d (%d%s) failed after %v: %s %v\n", t.Step, p.done, of, t.Duration.Round(time.Millisecond), msg, t.Params)
}

// bar redraws the progress bar on its line.
func (p *progress) bar(best Trial) {
	const width = 30
	filled := 0
	count := strconv.Itoa(p.done)
	if p.total > 0 {
		filled = min(width, p.done*width/p.total)
		count += "/" + strconv.Itoa(p.total)
	}
	line := fmt.Sprintf("\r[%s%s] %s trials, %v", strings.Repeat("#", filled), strings.Repeat(".", width-filled), count, time.Since(p.begin).Round(time.Second))
	if best.Status == Done {
		line += fmt.Sprintf(", best %s %s (trial %d)", p.metric, formatScore(best.Score), best.Step)
	}
	fmt.Fprint(p.w, line+"\x1b[K")
}

func (p *progress) finish(r Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintln(p.w)
	}
	r.WriteTable(p.w)
	if r.Best.Status == Done {
		fmt.Fprintf(p.w, "best: trial %d, %s %s ± %s, %v\n", r.Best.Step, r.Metric, formatScore(r.Best.Score), formatScore(r.Best.Spread), r.Best.Params)
	}
}
