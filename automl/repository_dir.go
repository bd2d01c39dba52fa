package automl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/penstock-ml/penstock/hparams"
)

// DirRepository is a Repository in a directory: one JSON file per trial,
// which any tool can read.
//
// Save writes each trial atomically: to a new temporary file (created with
// O_EXCL), synced, then linked under its final name, which fails rather
// than replace a file that exists (so no two searches ever overwrite each
// other's trials, whatever their names), then the directory is synced. A
// search killed during Save leaves at most a temporary file (".…tmp"),
// which Trials ignores; a trial file is whole or absent. File names are
// "<study>-<step>-<id>-<random>.json", the study's and the ID's
// characters outside [A-Za-z0-9_.-] replaced by "_" (so that every file is
// in the directory, whatever the ID of a trial copied from elsewhere), and
// a study's leading "." too (a trial file is never a dot file);
// Trials reads the study and the ID from each file, not from its name.
//
// A DirRepository is safe for concurrent use, by several goroutines and
// several processes (on a file system with hard links). Trials reads every
// trial file of the directory: O(trials) per call, once per search.
type DirRepository struct {
	dir string
}

var _ Repository = (*DirRepository)(nil)

// OpenDir returns the repository in the directory dir, creating it (and
// its parents) where it does not exist.
func OpenDir(dir string) (*DirRepository, error) {
	if dir == "" {
		return nil, errors.New("automl: open directory repository: empty path")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("automl: open directory repository: %w", err)
	}
	return &DirRepository{dir: dir}, nil
}

// Dir returns the repository's directory.
func (d *DirRepository) Dir() string { return d.dir }

// Save writes t to a new file of the directory (see DirRepository).
func (d *DirRepository) Save(ctx context.Context, t Trial) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.Study == "" || t.ID == "" {
		return fmt.Errorf("automl: directory repository %s: trial of step %d has no study or no ID", d.dir, t.Step)
	}
	data, err := encodeTrial(t)
	if err != nil {
		return fmt.Errorf("automl: directory repository %s: trial %s (step %d): %w", d.dir, t.ID, t.Step, err)
	}
	if len(data) > maxTrialFile {
		return fmt.Errorf("automl: directory repository %s: trial %s (step %d): %d bytes of JSON, over the %d of a trial file", d.dir, t.ID, t.Step, len(data), maxTrialFile)
	}
	for range 8 {
		nonce, err := randomHex(4)
		if err != nil {
			return err
		}
		study := fileSafe(t.Study)
		if strings.HasPrefix(study, ".") { // a dot file is what Trials skips
			study = "_" + study[1:]
		}
		name := fmt.Sprintf("%s-%06d-%s-%s.json", study, t.Step, fileSafe(t.ID), nonce)
		err = d.write(name, data)
		if errors.Is(err, fs.ErrExist) {
			continue // another search drew the same name: draw again
		}
		return err
	}
	return fmt.Errorf("automl: directory repository %s: trial %s (step %d): could not find a file name that is not taken", d.dir, t.ID, t.Step)
}

// write writes data to the file name of the directory, which must not
// exist: temporary file, sync, link (no replace), remove the temporary
// file, sync the directory.
func (d *DirRepository) write(name string, data []byte) (err error) {
	tmp := filepath.Join(d.dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("automl: directory repository: %w", err)
	}
	defer func() {
		if rerr := os.Remove(tmp); rerr != nil && err == nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("automl: directory repository: remove the temporary file: %w", rerr)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("automl: directory repository: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("automl: directory repository: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("automl: directory repository: close %s: %w", tmp, err)
	}
	final := filepath.Join(d.dir, name)
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("automl: directory repository: link %s: %w", final, err)
	}
	return syncDir(d.dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("automl: directory repository: sync the directory: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("automl: directory repository: sync the directory %s: %w", dir, err)
	}
	return nil
}

// Trials reads every trial file of the directory and returns those of
// study. A file that cannot be read or decoded is an error naming it, and
// so is a "*.json" entry that is not a regular file (a named pipe, whose
// read would wait for a writer) or that is over 16 MiB (a trial file is a
// few kilobytes; Save refuses to write one that big).
func (d *DirRepository) Trials(ctx context.Context, study string) ([]Trial, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("automl: directory repository: %w", err)
	}
	var out []Trial
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path := filepath.Join(d.dir, name)
		data, err := readTrialFile(path)
		if err != nil {
			return nil, fmt.Errorf("automl: directory repository: %w", err)
		}
		t, err := decodeTrial(data)
		if err != nil {
			return nil, fmt.Errorf("automl: directory repository: %s: %w", path, err)
		}
		if t.Study == study {
			out = append(out, t)
		}
	}
	return out, nil
}

// maxTrialFile is the size of the largest trial file that Save writes and
// Trials reads: a trial's file is a few kilobytes (its error's stack
// included), so a bigger one is not a trial file.
const maxTrialFile = 16 << 20

// readTrialFile reads the trial file at path, refusing what is not a
// regular file (a named pipe or a device, whose read could wait forever
// or never end) and what is over maxTrialFile, without reading it whole.
func readTrialFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%v)", path, st.Mode().Type())
	}
	if st.Size() > maxTrialFile {
		return nil, fmt.Errorf("%s: %d bytes, over the %d of a trial file", path, st.Size(), maxTrialFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTrialFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxTrialFile {
		return nil, fmt.Errorf("%s: over the %d bytes of a trial file", path, maxTrialFile)
	}
	return data, nil
}

func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("automl: random file name: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// trialFormat is the version of the trial files.
const trialFormat = 1

// trialRecord is a Trial as a JSON file.
type trialRecord struct {
	Format     int               `json:"format"`
	Study      string            `json:"study"`
	Search     string            `json:"search"`
	ID         string            `json:"id"`
	Step       int               `json:"step"`
	Rung       int               `json:"rung"`
	Epochs     int               `json:"epochs"`
	Params     map[string]any    `json:"params"`
	Types      map[string]string `json:"types"`
	Status     Status            `json:"status"`
	Score      number            `json:"score"`
	Spread     number            `json:"spread"`
	Scores     []number          `json:"scores"`
	EpochsRun  []int             `json:"epochs_run,omitempty"`
	Error      string            `json:"error,omitempty"`
	Started    time.Time         `json:"started"`
	DurationNS int64             `json:"duration_ns"`
}

// number is a float64 that JSON carries also when it is NaN or infinite
// (as the strings "NaN", "+Inf", "-Inf").
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte(strconv.Quote(strconv.FormatFloat(f, 'g', -1, 64))), nil
	}
	return []byte(strconv.FormatFloat(f, 'g', -1, 64)), nil
}

func (n *number) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return err
		}
		switch s {
		case "NaN", "+Inf", "-Inf":
			f, _ := strconv.ParseFloat(s, 64)
			*n = number(f)
			return nil
		}
		return fmt.Errorf("number %q: want a JSON number, \"NaN\", \"+Inf\" or \"-Inf\"", s)
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("number %s: %w", b, err)
	}
	*n = number(f)
	return nil
}

func encodeTrial(t Trial) ([]byte, error) {
	r := trialRecord{
		Format: trialFormat, Study: t.Study, Search: t.Search, ID: t.ID, Step: t.Step, Rung: t.Rung, Epochs: t.Epochs,
		Params: map[string]any{}, Types: map[string]string{}, Status: t.Status,
		Score: number(t.Score), Spread: number(t.Spread), EpochsRun: t.EpochsRun, Error: t.Error,
		Started: t.Started, DurationNS: int64(t.Duration),
	}
	for k, v := range t.Params {
		typ, ok := hparams.TypeOf(v)
		if !ok {
			return nil, fmt.Errorf("parameter %q is %T, want a float, int, bool or string", k, v)
		}
		c, _ := hparams.Convert(v, typ)
		if f, isFloat := c.(float64); isFloat && (math.IsNaN(f) || math.IsInf(f, 0)) {
			c = strconv.FormatFloat(f, 'g', -1, 64)
		}
		r.Params[k], r.Types[k] = c, typ.String()
	}
	for _, s := range t.Scores {
		r.Scores = append(r.Scores, number(s))
	}
	return json.MarshalIndent(r, "", "  ")
}

// decodeTrial reads a trial file, checking what it can: the format, the
// fields a trial needs, each parameter's type.
func decodeTrial(data []byte) (Trial, error) {
	var r trialRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return Trial{}, fmt.Errorf("not a trial file: %w", err)
	}
	if r.Format != trialFormat {
		return Trial{}, fmt.Errorf("trial file format %d, want %d", r.Format, trialFormat)
	}
	if r.Study == "" || r.ID == "" || r.Search == "" {
		return Trial{}, errors.New("trial file without study, search or id")
	}
	if r.Step < 0 || r.Rung < 0 || r.Epochs < 0 || r.DurationNS < 0 {
		return Trial{}, fmt.Errorf("trial file: step %d, rung %d, epochs %d, duration %d: want none negative", r.Step, r.Rung, r.Epochs, r.DurationNS)
	}
	for i, e := range r.EpochsRun {
		if e < 0 {
			return Trial{}, fmt.Errorf("trial file: split %d ran %d epochs, want 0 or more", i+1, e)
		}
	}
	if r.Status != Done && r.Status != Failed {
		return Trial{}, fmt.Errorf("trial file: status %q, want %q or %q", r.Status, Done, Failed)
	}
	t := Trial{
		Study: r.Study, Search: r.Search, ID: r.ID, Step: r.Step, Rung: r.Rung, Epochs: r.Epochs,
		Params: hparams.Values{}, Status: r.Status, Score: float64(r.Score), Spread: float64(r.Spread),
		EpochsRun: r.EpochsRun, Error: r.Error, Started: r.Started, Duration: time.Duration(r.DurationNS),
	}
	if len(r.Types) != len(r.Params) {
		return Trial{}, fmt.Errorf("trial file: %d parameters and %d types, want one type per parameter", len(r.Params), len(r.Types))
	}
	for k, v := range r.Params {
		typ, err := parseType(r.Types[k])
		if err != nil {
			return Trial{}, fmt.Errorf("trial file: parameter %q: %w", k, err)
		}
		if s, ok := v.(string); ok && typ == hparams.Float {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return Trial{}, fmt.Errorf("trial file: parameter %q: %q is not a float", k, s)
			}
			v = f
		}
		c, err := hparams.Convert(v, typ)
		if err != nil {
			return Trial{}, fmt.Errorf("trial file: parameter %q: %w", k, err)
		}
		t.Params[k] = c
	}
	for _, s := range r.Scores {
		t.Scores = append(t.Scores, float64(s))
	}
	return t, nil
}

func parseType(s string) (hparams.Type, error) {
	for _, t := range []hparams.Type{hparams.Float, hparams.Int, hparams.Bool, hparams.String} {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("type %q, want float, int, bool or string", s)
}
