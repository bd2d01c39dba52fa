package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/internal/httpx"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// The content types that a Predictor takes and answers with.
const (
	ContentTypeIPC  = "application/vnd.apache.arrow.stream"
	ContentTypeJSON = "application/json"
)

// VersionHeader is the response header that carries the model version a
// prediction ran on ("0" where none did: before the first publish).
const VersionHeader = "Penstock-Model-Version"

// DefaultMaxBody is PredictOptions.MaxBody's default: 8 MiB.
const DefaultMaxBody = 8 << 20

// PredictOptions configure NewPredictor.
type PredictOptions struct {
	// MaxBody is the largest request body taken, in bytes; a larger one is
	// answered 413. Default (0) DefaultMaxBody.
	MaxBody int64
	// Alloc allocates the decoded request, every batch that the pipeline
	// makes (it is the run's allocator, flow.Allocator) and the encoded
	// answer's buffers; all of it is released before the handler returns.
	// Default (nil) memory.DefaultAllocator.
	Alloc memory.Allocator
	// Metrics, if not nil, counts every answer
	// (penstock_predict_requests_total{code},
	// penstock_predict_duration_seconds, penstock_predict_in_flight_requests).
	Metrics *Metrics
	// Log hears of failed predictions (one line each: Warn for 500, Debug
	// for the client's mistakes); nil means slog.Default().
	Log *slog.Logger
}

// predictor is the http.Handler of NewPredictor.
type predictor struct {
	models  *Models
	in      source.Schema
	maxBody int64
	mem     memory.Allocator
	metrics *Metrics
	log     *slog.Logger
	jsonErr error // why JSON rows cannot carry in's columns, or nil
}

// NewPredictor returns the handler of prediction requests (mount it at
// POST /v1/predict), run on m's current version. in is the schema of a
// request's body: its Fields are the pipeline's inputs (source.Schema's
// InputsOnly). See the package documentation for the formats and the
// status codes.
func NewPredictor(m *Models, in source.Schema, o PredictOptions) http.Handler {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Alloc == nil {
		o.Alloc = memory.DefaultAllocator
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &predictor{
		models: m, in: in, maxBody: o.MaxBody, mem: o.Alloc, metrics: o.Metrics, log: o.Log,
		jsonErr: jsonColumnsErr(in),
	}
}

// statusError is an error with the status code that answers it.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func fail(code int, format string, args ...any) error {
	return &statusError{code: code, err: fmt.Errorf(format, args...)}
}

// answer is a prediction's encoded body.
type answer struct {
	contentType string
	body        []byte
}

func (p *predictor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	inFlight := p.metrics != nil
	if inFlight {
		p.metrics.predictInFlight.Inc()
		defer func() { // on a panic; else done below
			if inFlight {
				p.metrics.predictInFlight.Dec()
			}
		}()
	}
	v, err := p.models.Acquire()
	version := int64(0)
	if v != nil {
		version = v.ID()
		// Deferred, so that a panic (recovered by net/http) releases it too;
		// it runs after the answer is flushed below, since the release may
		// tear the version down.
		defer v.Release(r.Context())
	}
	w.Header().Set(VersionHeader, strconv.FormatInt(version, 10))
	var ans answer
	if err != nil {
		err = &statusError{code: http.StatusServiceUnavailable, err: fmt.Errorf("serve: predict: %w", err)}
	} else {
		ans, err = p.predict(r, w, v)
	}
	code := http.StatusOK
	if err != nil {
		code = http.StatusInternalServerError
		var se *statusError
		if errors.As(err, &se) {
			code = se.code
		}
		switch code {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", http.MethodPost)
		case http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", "1")
		}
		lvl := slog.LevelDebug
		if code >= 500 && code != http.StatusServiceUnavailable {
			lvl = slog.LevelWarn
		}
		p.log.Log(r.Context(), lvl, "predict", "version", version, "code", code, "err", err)
		ans = answer{contentType: "text/plain; charset=utf-8", body: []byte(err.Error() + "\n")}
	}
	w.Header().Set("Content-Type", ans.contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(ans.body)))
	w.WriteHeader(code)
	_, _ = w.Write(ans.body)
	// Counted before the flush, so that a client that has read the whole
	// answer finds it counted.
	if p.metrics != nil {
		p.metrics.Predicted(code, time.Since(start))
		p.metrics.predictInFlight.Dec()
		inFlight = false
	}
	if v != nil {
		_ = http.NewResponseController(w).Flush()
	}
}

// predict reads, runs and encodes one request on v.
func (p *predictor) predict(r *http.Request, w http.ResponseWriter, v *Version) (answer, error) {
	if r.Method != http.MethodPost {
		return answer{}, fail(http.StatusMethodNotAllowed, "serve: predict: method %s; use POST", r.Method)
	}
	ct := r.Header.Get("Content-Type")
	media, _, err := mime.ParseMediaType(ct)
	if err != nil && ct != "" {
		return answer{}, fail(http.StatusUnsupportedMediaType, "serve: predict: content type %q: %v; want %s or %s", ct, err, ContentTypeIPC, ContentTypeJSON)
	}
	if media != ContentTypeIPC && media != ContentTypeJSON {
		return answer{}, fail(http.StatusUnsupportedMediaType, "serve: predict: content type %q; want %s or %s", ct, ContentTypeIPC, ContentTypeJSON)
	}
	if ce := r.Header.Get("Content-Encoding"); !httpx.NoCoding(ce) {
		return answer{}, fail(http.StatusUnsupportedMediaType, "serve: predict: Content-Encoding %q; want none (bodies are not decompressed)", ce)
	}
	if media == ContentTypeJSON && p.jsonErr != nil {
		return answer{}, &statusError{code: http.StatusUnsupportedMediaType, err: fmt.Errorf("serve: predict: %w; post Arrow IPC (%s)", p.jsonErr, ContentTypeIPC)}
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, p.maxBody), r.ContentLength, p.maxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return answer{}, fail(http.StatusRequestEntityTooLarge, "serve: predict: body over %d bytes", p.maxBody)
		}
		return answer{}, fail(http.StatusBadRequest, "serve: predict: reading the body: %v", err)
	}
	ctx := flow.WithAllocator(r.Context(), p.mem)
	if media == ContentTypeJSON {
		return p.predictJSON(ctx, v, body)
	}
	return p.predictIPC(ctx, v, body)
}

// run transforms every batch of in on a copy of v's pipeline. It releases
// in; the caller releases the outputs.
func (p *predictor) run(ctx context.Context, v *Version, in []flow.Batch) ([]flow.Batch, error) {
	defer releaseAll(in)
	pipe, err := v.Take(ctx)
	if err != nil {
		if ctx.Err() != nil { // every copy busy until the request ended
			return nil, &statusError{code: http.StatusServiceUnavailable, err: err}
		}
		return nil, err
	}
	defer v.Put(pipe)
	out := make([]flow.Batch, 0, len(in))
	for i, b := range in {
		o, err := pipe.Transform(ctx, b)
		if err != nil {
			releaseAll(out)
			return nil, fmt.Errorf("serve: predict: version %d: batch %d: %w", v.ID(), i, err)
		}
		out = append(out, o)
	}
	return out, nil
}

func releaseAll(bs []flow.Batch) {
	for _, b := range bs {
		b.Release()
	}
}

func (p *predictor) predictIPC(ctx context.Context, v *Version, body []byte) (answer, error) {
	in, err := p.decodeIPC(ctx, body)
	if err != nil {
		return answer{}, err
	}
	out, err := p.run(ctx, v, in)
	if err != nil {
		return answer{}, err
	}
	defer releaseAll(out)
	enc, err := encodeIPC(out, p.mem)
	if err != nil {
		return answer{}, fmt.Errorf("serve: predict: version %d: encoding the answer: %w", v.ID(), err)
	}
	return answer{contentType: ContentTypeIPC, body: enc}, nil
}

// decodeIPC reads the record batches of an IPC stream, checked against
// p.in and split into X (p.in.Inputs, in this order).
func (p *predictor) decodeIPC(ctx context.Context, body []byte) ([]flow.Batch, error) {
	src, err := minibatch.NewIPCStream(bytes.NewReader(body), minibatch.WithAllocator(p.mem), minibatch.WithName("predict body"))
	if err != nil {
		return nil, fail(http.StatusBadRequest, "serve: predict: %v", err)
	}
	defer src.Close()
	if err := p.in.Check(src.TableSchema()); err != nil {
		return nil, &statusError{code: http.StatusUnprocessableEntity, err: fmt.Errorf("serve: predict: %w", err)}
	}
	var batches []flow.Batch
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			releaseAll(batches)
			return nil, fail(http.StatusBadRequest, "serve: predict: %v", err)
		}
		x, err := p.in.Split(b.X)
		b.Release()
		if err != nil { // the stream's schema was checked: not expected
			releaseAll(batches)
			return nil, &statusError{code: http.StatusUnprocessableEntity, err: fmt.Errorf("serve: predict: batch %d: %w", len(batches), err)}
		}
		x.Seq = int64(len(batches))
		batches = append(batches, x)
	}
	if len(batches) == 0 {
		return nil, fail(http.StatusBadRequest, "serve: predict: the stream has no record batch; send at least one")
	}
	rows := int64(0)
	for _, b := range batches {
		rows += b.X.NumRows()
	}
	if rows == 0 {
		releaseAll(batches)
		return nil, fail(http.StatusBadRequest, "serve: predict: the stream's %d record batches have no rows; send at least one", len(batches))
	}
	return batches, nil
}

// outputRecord is a batch's answer: X's columns, then those of Y that X
// has no column of the same name for. The record is the caller's.
func outputRecord(b flow.Batch) arrow.RecordBatch {
	if b.Y == nil {
		b.X.Retain()
		return b.X
	}
	fields := append([]arrow.Field(nil), b.X.Schema().Fields()...)
	cols := append([]arrow.Array(nil), b.X.Columns()...)
	for i, f := range b.Y.Schema().Fields() {
		if b.X.Schema().HasField(f.Name) {
			continue
		}
		fields = append(fields, f)
		cols = append(cols, b.Y.Column(i))
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, b.X.NumRows())
}

// encodeIPC writes the answers of out as one IPC stream.
func encodeIPC(out []flow.Batch, mem memory.Allocator) ([]byte, error) {
	var buf bytes.Buffer
	var wr *ipc.Writer
	var schema *arrow.Schema
	for i, b := range out {
		rec := outputRecord(b)
		if wr == nil {
			schema = rec.Schema()
			wr = ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
		} else if !rec.Schema().Equal(schema) {
			rec.Release()
			_ = wr.Close()
			return nil, fmt.Errorf("batch %d: the pipeline's output schema %v differs from batch 0's %v", i, rec.Schema(), schema)
		}
		err := wr.Write(rec)
		rec.Release()
		if err != nil {
			_ = wr.Close()
			return nil, fmt.Errorf("batch %d: %w", i, err)
		}
	}
	if err := wr.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// readBody reads r to its end into one buffer, sized at once from the
// request's Content-Length where it is known and within max (r is bounded
// by max anyway).
func readBody(r io.Reader, length, max int64) ([]byte, error) {
	if length <= 0 || length > max {
		return io.ReadAll(r)
	}
	var buf bytes.Buffer
	buf.Grow(int(length) + bytes.MinRead)
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}
