package natsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/internal/ipcguard"
	"github.com/penstock-ml/penstock/minibatch"
)

// rejection is why a message is skipped.
type rejection struct {
	reason source.Reason
	err    error
}

func (r *rejection) Error() string { return r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

// decode reads a message body, an Arrow IPC stream, wholly: every record
// batch checked against the schema and split into X and Y, owned by the
// caller. what names the message in errors ("stream \"S\" seq 7"). An
// error is a *rejection, unless ctx is done.
func (s *Source) decode(ctx context.Context, data []byte, what string) (_ []flow.Batch, err error) {
	fail := func(reason source.Reason, err error) error {
		return &rejection{reason: reason, err: fmt.Errorf("natsource %q: %s: %w", s.o.Name, what, err)}
	}
	if len(data) > s.o.MaxMsgBytes {
		return nil, fail(source.ReasonTooBig, fmt.Errorf("%d bytes, over MaxMsgBytes %d", len(data), s.o.MaxMsgBytes))
	}
	src, err := minibatch.NewIPCStream(bytes.NewReader(data),
		minibatch.WithAllocator(s.o.Alloc), minibatch.WithName(what),
		minibatch.WithMaxBatchBytes(int64(s.o.MaxMsgBytes)))
	if err != nil {
		return nil, fail(reasonOf(err), err)
	}
	defer src.Close()
	if err := s.o.Schema.Check(src.TableSchema()); err != nil {
		return nil, fail(source.ReasonSchema, err)
	}
	var batches []flow.Batch
	defer func() {
		if err != nil {
			for _, b := range batches {
				b.Release()
			}
		}
	}()
	for i := 0; ; i++ {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return batches, nil
		}
		if ctx.Err() != nil {
			b.Release()
			return nil, context.Cause(ctx)
		}
		if err != nil {
			return nil, fail(reasonOf(err), err)
		}
		split, err := s.o.Schema.Split(b.X)
		b.Release()
		if err != nil {
			return nil, fail(source.ReasonSchema, fmt.Errorf("batch %d: %w", i, err))
		}
		split.Seq = int64(i)
		batches = append(batches, split)
	}
}

func reasonOf(err error) source.Reason {
	if _, ok := errors.AsType[*ipcguard.LimitError](err); ok {
		return source.ReasonTooBig
	}
	if errors.Is(err, source.ErrSchema) {
		return source.ReasonSchema
	}
	return source.ReasonDecode
}
