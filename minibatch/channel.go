package minibatch

import (
	"context"
	"errors"
	"io"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/penstock-ml/penstock/flow"
)

// ChannelSource is a source fed through a Go channel, for daemons whose
// batches come from elsewhere (a network listener, another pipeline). It is
// not replayable: it has no Rewind.
type ChannelSource struct {
	ch     <-chan flow.Batch
	seq    int64
	schema *arrow.Schema // X's schema of the first batch received
	closed bool
}

var (
	_ flow.Source = (*ChannelSource)(nil)
	_ io.Closer   = (*ChannelSource)(nil)
)

// FromChannel returns a source that reads batches from ch until the sender
// closes it. The sender owns ch and closes it at the end of the stream.
//
// Ownership: each batch received is handed to the caller of Next, who
// releases it. Batches still in the channel when the reader stops (after an
// error or a cancellation) were never handed over: they remain the
// sender's, who drains and releases them after it stops sending.
func FromChannel(ch <-chan flow.Batch) *ChannelSource {
	return &ChannelSource{ch: ch}
}

// Next receives the next batch, numbering it Seq 0, 1, 2, … and Epoch 0
// whatever the sender set. It blocks until a batch arrives, the channel is
// closed (io.EOF) or ctx is done (ctx's cause). Its cost is one channel
// receive.
func (s *ChannelSource) Next(ctx context.Context) (flow.Batch, error) {
	if s.closed {
		return flow.Batch{}, errors.New("minibatch: channel: Next after Close")
	}
	if err := ctx.Err(); err != nil {
		return flow.Batch{}, context.Cause(ctx)
	}
	select {
	case b, ok := <-s.ch:
		if !ok {
			return flow.Batch{}, io.EOF
		}
		b.Seq, b.Epoch = s.seq, 0
		if s.schema == nil && b.X != nil {
			s.schema = b.X.Schema()
		}
		s.seq++
		return b, nil
	case <-ctx.Done():
		return flow.Batch{}, context.Cause(ctx)
	}
}

// Replayable reports false: a channel cannot be read twice.
func (s *ChannelSource) Replayable() bool { return false }

// Schema returns the schema of X of the first batch received: nil until
// then, since a channel announces no schema.
func (s *ChannelSource) Schema() *arrow.Schema { return s.schema }

// Close stops the reader: Next fails afterwards. It receives nothing more
// and does not drain the channel: batches still in it remain the
// sender's, who closes the channel and releases them. Calling it twice is
// safe.
func (s *ChannelSource) Close() error {
	s.closed = true
	return nil
}
