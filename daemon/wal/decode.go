package wal

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// errNoBatches is a body that holds a schema but no record batch.
var errNoBatches = errors.New("the stream holds no record batch")

// decodeBody reads the Arrow IPC stream body with minibatch's bounded,
// validating reader (buffers from o.Alloc, a batch at most 8×MaxBody
// bytes), checks its schema against o.Schema and calls each for every
// record batch, in order, split into X (Inputs) and Y (Labels); each owns
// the batch. A schema mismatch is a *source.SchemaError (wrapped), any
// other error a decode error naming the batch. each's error stops the
// read and is returned as is.
func decodeBody(ctx context.Context, o *Options, body []byte, each func(i int, b flow.Batch) error) error {
	src, err := minibatch.NewIPCStream(bytes.NewReader(body),
		minibatch.WithAllocator(o.Alloc), minibatch.WithMaxBatchBytes(8*o.MaxBody), minibatch.WithName("body"))
	if err != nil {
		return err
	}
	defer src.Close()
	if err := o.Schema.Check(src.TableSchema()); err != nil {
		return err
	}
	for i := 0; ; i++ {
		b, err := src.Next(ctx)
		if err == io.EOF {
			if i == 0 {
				return errNoBatches
			}
			return nil
		}
		if err != nil {
			return err
		}
		split, err := o.Schema.Split(b.X) // X is the whole record: no roles were given
		b.Release()
		if err != nil {
			return err
		}
		split.Seq = int64(i)
		if err := each(i, split); err != nil {
			return err
		}
	}
}
