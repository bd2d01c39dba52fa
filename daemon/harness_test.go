package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
	"go.uber.org/goleak"
)

// The tests run the daemon in child processes (this test binary, re-run
// with PENSTOCK_DAEMON_CHILD set to a configuration file) so that they can
// kill it with SIGKILL, and in this process where they need no kill.
func TestMain(m *testing.M) {
	if cfg := os.Getenv("PENSTOCK_DAEMON_CHILD"); cfg != "" {
		os.Exit(childMain(cfg))
	}
	goleak.VerifyTestMain(m)
}

const (
	features = 32
	classes  = 4
)

// childMain is the daemon of the tests' child processes: the test registry
// (with rowCount), a fault hook that kills the process between a
// checkpoint's write and its rename, and a drain on SIGTERM.
func childMain(path string) int {
	cfg, err := daemon.LoadConfig(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var opts []daemon.Option
	if n, _ := strconv.Atoi(os.Getenv("PENSTOCK_KILL_BEFORE_RENAME")); n > 0 {
		saves := 0
		opts = append(opts, daemon.WithBeforeRename(func(tmp, final string) error {
			saves++
			if saves == n {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute)
			}
			return nil
		}))
	}
	if d, err := time.ParseDuration(os.Getenv("PENSTOCK_BATCH_DELAY")); err == nil {
		batchDelay = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err = daemon.Run(ctx, cfg, testRegistry(), append(opts, daemon.WithLogger(daemon.NewLogger(os.Stderr, "json")))...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		if errors.Is(err, daemon.ErrHardStop) {
			return 2
		}
		return 1
	}
	return 0
}

// batchDelay slows rowCount's fit in child processes, so that the kills
// land in the middle of the work.
var batchDelay time.Duration

// rowCount counts the rows that it is fitted on: the exact-resume tests
// check that every row was fitted exactly once.
type rowCount struct{ n int64 }

func (c *rowCount) Fit(_ context.Context, b flow.Batch) error {
	c.n += b.Rows()
	if batchDelay > 0 {
		time.Sleep(batchDelay)
	}
	return nil
}

func (c *rowCount) Transform(_ context.Context, b flow.Batch) (flow.Batch, error) {
	b.Retain()
	return b, nil
}

func (c *rowCount) Copy() flow.Step { return &rowCount{n: c.n} }

func (c *rowCount) MarshalState(w *persist.StateWriter) error {
	w.Int64("rows", c.n)
	return w.Err()
}

func (c *rowCount) UnmarshalState(r *persist.StateReader) error {
	n, err := r.Int64("rows")
	c.n = n
	return err
}

func testRegistry() *persist.Registry {
	reg := persist.NewRegistry()
	if err := steps.Register(reg); err != nil {
		panic(err)
	}
	if err := reg.Register(persist.Type{Name: "test.RowCount", Version: 1, Of: (*rowCount)(nil),
		New: func(persist.Spec) (flow.Step, error) { return &rowCount{}, nil }}); err != nil {
		panic(err)
	}
	return reg
}

func featureNames() []string {
	names := make([]string, features)
	for i := range names {
		names[i] = fmt.Sprintf("x%d", i)
	}
	return names
}

// newPipeline is the pipeline that the daemon starts from: count the rows,
// pack the features, standardize them, fit a seeded logistic regression.
func newPipeline(t testing.TB) *flow.Pipeline {
	t.Helper()
	scale, err := steps.NewStandardScaler()
	if err != nil {
		t.Fatal(err)
	}
	lr, err := steps.NewLogisticRegression("label", classes, steps.LearningRate(0.05), steps.Momentum(0.9), steps.Seed(7))
	if err != nil {
		t.Fatal(err)
	}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("count", &rowCount{}),
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: featureNames()}),
		flow.Named("scale", scale),
		flow.Named("model", lr),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fields is the inputs' schema: 32 float32 features and an int64 label.
func fields() *arrow.Schema {
	fs := make([]arrow.Field, 0, features+1)
	for _, n := range featureNames() {
		fs = append(fs, arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Float32})
	}
	return arrow.NewSchema(append(fs, arrow.Field{Name: "label", Type: arrow.PrimitiveTypes.Int64}), nil)
}

// records makes n records of rows rows each from seed: features from a
// Gaussian per class.
func records(mem memory.Allocator, seed uint64, n, rows int) []arrow.RecordBatch {
	rng := rand.New(rand.NewPCG(seed, 1))
	sc := fields()
	out := make([]arrow.RecordBatch, n)
	for i := range out {
		b := array.NewRecordBuilder(mem, sc)
		labels := make([]int64, rows)
		for r := range labels {
			labels[r] = int64(rng.IntN(classes))
		}
		for f := range features {
			fb := b.Field(f).(*array.Float32Builder)
			for r := range rows {
				fb.Append(float32(rng.NormFloat64() + float64(labels[r]*int64(f%3))))
			}
		}
		b.Field(features).(*array.Int64Builder).AppendValues(labels, nil)
		out[i] = b.NewRecordBatch()
		b.Release()
	}
	return out
}

// ipcStream encodes records as one Arrow IPC stream.
func ipcStream(t testing.TB, recs []arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(fields()))
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeFiles writes files IPC files of batches record batches of rows rows
// into dir, each written aside and renamed in; it returns their paths in
// lexical order.
func writeFiles(t testing.TB, dir string, files, batches, rows int) []string {
	t.Helper()
	stage := t.TempDir()
	var paths []string
	for i := range files {
		recs := records(memory.DefaultAllocator, uint64(i), batches, rows)
		name := fmt.Sprintf("part-%04d.arrow", i)
		tmp := filepath.Join(stage, name)
		f, err := os.Create(tmp)
		if err != nil {
			t.Fatal(err)
		}
		w, err := ipc.NewFileWriter(f, ipc.WithSchema(fields()))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
			r.Release()
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		final := filepath.Join(dir, name)
		if err := os.Rename(tmp, final); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, final)
	}
	return paths
}

// chain reads sources one after the other.
type chain struct {
	srcs []flow.Source
	cur  int
}

func (c *chain) Next(ctx context.Context) (flow.Batch, error) {
	for c.cur < len(c.srcs) {
		b, err := c.srcs[c.cur].Next(ctx)
		if errors.Is(err, io.EOF) {
			c.cur++
			continue
		}
		return b, err
	}
	return flow.Batch{}, io.EOF
}

// referenceFit fits a fresh pipeline on the files, in order, through the
// library: what an uninterrupted daemon must end with.
func referenceFit(t testing.TB, paths []string) *flow.Pipeline {
	t.Helper()
	p := newPipeline(t)
	var srcs []flow.Source
	for _, path := range paths {
		s, err := minibatch.OpenIPCFile(path, minibatch.WithInputs(featureNames()...), minibatch.WithLabels("label"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		srcs = append(srcs, s)
	}
	if _, err := (flow.Runner{}).Fit(t.Context(), p, &chain{srcs: srcs}); err != nil {
		t.Fatal(err)
	}
	return p
}

// config writes a daemon configuration for dir, with the given sources,
// and returns its path.
type testEnv struct {
	root, inbox, ckpt, wal, pipeline string
}

func newEnv(t testing.TB) testEnv {
	t.Helper()
	root := t.TempDir()
	e := testEnv{root: root, inbox: filepath.Join(root, "inbox"), ckpt: filepath.Join(root, "ckpt"),
		wal: filepath.Join(root, "wal"), pipeline: filepath.Join(root, "model.pst")}
	for _, d := range []string{e.inbox, e.ckpt, e.wal} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := persist.SaveFile(e.pipeline, newPipeline(t), persist.WithRegistry(testRegistry())); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e testEnv) config(t testing.TB, sources []map[string]any, extra map[string]any) string {
	t.Helper()
	fs := []map[string]any{}
	for _, n := range featureNames() {
		fs = append(fs, map[string]any{"name": n, "type": "float32"})
	}
	fs = append(fs, map[string]any{"name": "label", "type": "int64"})
	cfg := map[string]any{
		"pipeline":   e.pipeline,
		"schema":     map[string]any{"fields": fs, "inputs": featureNames(), "labels": []string{"label"}},
		"sources":    sources,
		"checkpoint": map[string]any{"dir": e.ckpt, "every": "150ms", "keep": 3},
		"address":    "127.0.0.1:0",
		"log":        "json",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.root, "penstockd.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// child is a daemon in a child process.
type child struct {
	cmd  *exec.Cmd
	addr chan string
	mu   sync.Mutex
	log  bytes.Buffer
	done chan error
}

func startChild(t testing.TB, cfg string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "PENSTOCK_DAEMON_CHILD="+cfg), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, addr: make(chan string, 1), done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.log.WriteString(line + "\n")
			c.mu.Unlock()
			var ev struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "listening" {
				select {
				case c.addr <- ev.Addr:
				default:
				}
			}
		}
		c.done <- cmd.Wait()
	}()
	return c
}

func (c *child) logs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

// wait waits for the child's exit, at most d.
func (c *child) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case err := <-c.done:
		return err
	case <-time.After(d):
		c.cmd.Process.Kill()
		<-c.done
		t.Fatalf("child did not exit within %v; its log:\n%s", d, tail(c.logs(), 40))
		return nil
	}
}

func (c *child) kill(t testing.TB) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("killed child did not exit")
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// marshalModel is the fitted state of a pipeline as bytes, to compare two
// fits bit for bit.
func marshalModel(t testing.TB, s flow.Step) []byte {
	t.Helper()
	b, err := persist.Marshal(s, persist.WithRegistry(testRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func countedRows(t testing.TB, p *flow.Pipeline) int64 {
	t.Helper()
	for _, n := range p.Nodes() {
		if c, ok := n.Step.(*rowCount); ok {
			return c.n
		}
	}
	t.Fatal("no rowCount step")
	return 0
}
