package natsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
)

// Defaults of Options.
const (
	DefaultName        = "nats"
	DefaultMaxMsgBytes = 8 << 20
	// Prefetch is how many messages the JetStream consumer (or a core
	// subscription) buffers ahead of Run: memory is bounded by Prefetch
	// messages of at most the server's max_payload bytes each.
	Prefetch = 64
)

// Options configure a Source.
type Options struct {
	// Name is the source's name (default "nats").
	Name string
	// URL is the NATS server's URL (default nats.DefaultURL,
	// "nats://127.0.0.1:4222"); several, comma-separated, for a cluster.
	URL string
	// Stream is the JetStream stream read. Empty: core NATS on Subject,
	// at most once.
	Stream string
	// Subject filters the stream's messages (JetStream, optional), or is
	// the subject subscribed to (core NATS, required).
	Subject string
	// Schema is what every message must hold.
	Schema source.Schema
	// MaxMsgBytes bounds a message body (default 8 MiB); a larger one is
	// rejected. The server's max_payload (1 MiB unless configured) bounds
	// what it delivers.
	MaxMsgBytes int
	// Alloc is the allocator of every batch (default memory.DefaultAllocator).
	Alloc memory.Allocator
	// Reporter hears of rejected messages (default a source.LogReporter).
	Reporter source.Reporter
	// Log is the logger (default slog.Default()).
	Log *slog.Logger
	// ConnectOptions are added to the options of nats.Connect (credentials,
	// TLS, reconnect policy). Run adds a name, an error handler and
	// reconnecting forever before them.
	ConnectOptions []nats.Option
}

// Source reads Arrow IPC streams from NATS messages: a JetStream stream,
// resumed at the position of the checkpoint, or a core-NATS subject.
type Source struct {
	o Options

	guard source.Guard // Run once, not after Close
}

var _ source.Source = (*Source)(nil)

// New checks o and makes a Source. It connects to nothing before Run.
func New(o Options) (*Source, error) {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.URL == "" {
		o.URL = nats.DefaultURL
	}
	if o.Stream == "" && o.Subject == "" {
		return nil, fmt.Errorf("natsource %q: neither Stream nor Subject is set; name a JetStream stream, or a subject for core NATS", o.Name)
	}
	if o.MaxMsgBytes == 0 {
		o.MaxMsgBytes = DefaultMaxMsgBytes
	}
	if o.MaxMsgBytes < 0 {
		return nil, fmt.Errorf("natsource %q: MaxMsgBytes %d is negative", o.Name, o.MaxMsgBytes)
	}
	if err := o.Schema.Validate(); err != nil {
		return nil, fmt.Errorf("natsource %q: %w", o.Name, err)
	}
	source.Defaults(&o.Alloc, &o.Log, &o.Reporter)
	return &Source{o: o}, nil
}

// Name returns the source's name.
func (s *Source) Name() string { return s.o.Name }

// Run connects, reads messages and sends one input per record batch of
// each; see the package doc. It closes its connection, and so every
// goroutine of the NATS client, before it returns.
func (s *Source) Run(ctx context.Context, from []byte, drain <-chan struct{}, out chan<- source.Input) error {
	if err := s.guard.Start(fmt.Sprintf("natsource %q", s.o.Name)); err != nil {
		return err
	}

	var resume *position
	if from != nil {
		if s.o.Stream == "" {
			return fmt.Errorf("natsource %q: a core-NATS source has no position; got %q", s.o.Name, from)
		}
		p, err := decodePosition(s.o.Name, s.o.Stream, from)
		if err != nil {
			return err
		}
		resume = &p
	}
	opts := append([]nats.Option{
		nats.Name("penstock " + s.o.Name),
		nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			s.o.Log.Warn("nats error", "source", s.o.Name, "subject", subj, "err", err)
		}),
	}, s.o.ConnectOptions...)
	nc, err := nats.Connect(s.o.URL, opts...)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("natsource %q: connect %s: %w", s.o.Name, s.o.URL, err)
	}
	defer nc.Close()

	// next is done when ctx is, or once drain closes: then no new message
	// is taken. The goroutine that watches drain ends before Run returns.
	next, stop := context.WithCancelCause(ctx)
	watched := make(chan struct{})
	defer func() { stop(nil); <-watched }()
	go func() {
		defer close(watched)
		select {
		case <-drain:
			stop(errDrained)
		case <-next.Done():
		}
	}()

	var recv func() (data []byte, seq uint64, err error)
	if s.o.Stream == "" {
		recv, err = s.subscribe(nc, next)
	} else {
		var it jetstream.MessagesContext
		it, recv, err = s.consume(ctx, nc, next, resume)
		if it != nil {
			defer it.Stop()
		}
	}
	if err != nil {
		if ctx.Err() != nil { // the consumer was made with ctx
			return context.Cause(ctx)
		}
		return err
	}
	s.o.Log.Info("reading", "source", s.o.Name, "stream", s.o.Stream, "subject", s.o.Subject, "from", string(from))
	for {
		data, seq, err := recv()
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		select {
		case <-drain: // also when the watcher has not stopped next yet
			return nil
		default:
		}
		if err != nil {
			return fmt.Errorf("natsource %q: %w", s.o.Name, err)
		}
		what := fmt.Sprintf("subject %q message", s.o.Subject)
		if s.o.Stream != "" {
			what = fmt.Sprintf("stream %q seq %d", s.o.Stream, seq)
		}
		batches, err := s.decode(ctx, data, what)
		if rej, ok := errors.AsType[*rejection](err); ok {
			s.o.Reporter.Rejected(s.o.Name, rej.reason, rej.err)
			continue
		}
		if err != nil {
			return err // ctx is done
		}
		first := 0
		if resume != nil {
			if resume.Seq == seq {
				first = min(resume.Batch+1, len(batches))
				for _, b := range batches[:first] {
					b.Release()
				}
			}
			resume = nil
		}
		if err := s.send(ctx, batches[first:], seq, len(batches), out); err != nil {
			return err
		}
	}
}

// errDrained is the cause of the receiving context once drain closes.
var errDrained = errors.New("natsource: draining")

// send sends the batches of the message seq (the last n-len(batches) of
// its n), releasing those not sent when ctx is done.
func (s *Source) send(ctx context.Context, batches []flow.Batch, seq uint64, n int, out chan<- source.Input) error {
	return source.Send(ctx, out, batches, func(i int) []byte {
		if s.o.Stream == "" {
			return nil // core NATS: at most once, no position
		}
		idx := n - len(batches) + i
		return position{Stream: s.o.Stream, Seq: seq, Batch: idx, Last: idx == n-1}.encode()
	})
}

// consume makes an ordered JetStream consumer from the message after
// resume (every message when nil) and returns its receiving function.
func (s *Source) consume(ctx context.Context, nc *nats.Conn, next context.Context, resume *position) (jetstream.MessagesContext, func() ([]byte, uint64, error), error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("natsource %q: jetstream: %w", s.o.Name, err)
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if resume != nil {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = resume.Seq
		if resume.Last {
			cfg.OptStartSeq++
		}
	}
	if s.o.Subject != "" {
		cfg.FilterSubjects = []string{s.o.Subject}
	}
	cons, err := js.OrderedConsumer(ctx, s.o.Stream, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("natsource %q: stream %q: consumer: %w", s.o.Name, s.o.Stream, err)
	}
	if resume != nil {
		s.warnPastEnd(ctx, js, cfg.OptStartSeq)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(Prefetch))
	if err != nil {
		return nil, nil, fmt.Errorf("natsource %q: stream %q: messages: %w", s.o.Name, s.o.Stream, err)
	}
	want := cfg.OptStartSeq
	return it, func() ([]byte, uint64, error) {
		msg, err := it.Next(jetstream.NextContext(next))
		if err != nil {
			return nil, 0, fmt.Errorf("stream %q: %w", s.o.Stream, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, 0, fmt.Errorf("stream %q: message metadata: %w", s.o.Stream, err)
		}
		seq := meta.Sequence.Stream
		if want > 0 && seq > want && s.o.Subject == "" {
			s.o.Log.Warn("messages gone from the stream (its limits removed them) were never read",
				"source", s.o.Name, "stream", s.o.Stream, "from_seq", want, "to_seq", seq-1)
		}
		want = 0
		return msg.Data(), seq, nil
	}, nil
}

// warnPastEnd logs a warning when the stream ends before from, the
// sequence the checkpoint resumes at: the stream was purged or made anew
// since, and its messages up to from are skipped without being read.
func (s *Source) warnPastEnd(ctx context.Context, js jetstream.JetStream, from uint64) {
	st, err := js.Stream(ctx, s.o.Stream)
	if err != nil {
		return // the consumer exists: its errors will say what is wrong
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.LastSeq+1 >= from {
		return
	}
	s.o.Log.Warn("the checkpoint resumes past the stream's end (was it purged or made anew?): its messages before from_seq will not be read",
		"source", s.o.Name, "stream", s.o.Stream, "last_seq", info.State.LastSeq, "from_seq", from)
}

// subscribe subscribes to the core-NATS subject and returns its receiving
// function. Messages that arrive while Prefetch are waiting are dropped
// by the client (a slow consumer, logged).
func (s *Source) subscribe(nc *nats.Conn, next context.Context) (func() ([]byte, uint64, error), error) {
	sub, err := nc.SubscribeSync(s.o.Subject)
	if err != nil {
		return nil, fmt.Errorf("natsource %q: subscribe %q: %w", s.o.Name, s.o.Subject, err)
	}
	if err := sub.SetPendingLimits(Prefetch, Prefetch*s.o.MaxMsgBytes); err != nil {
		return nil, fmt.Errorf("natsource %q: subscribe %q: %w", s.o.Name, s.o.Subject, err)
	}
	return func() ([]byte, uint64, error) {
		msg, err := sub.NextMsgWithContext(next)
		if err != nil {
			return nil, 0, fmt.Errorf("subject %q: %w", s.o.Subject, err)
		}
		return msg.Data, 0, nil
	}, nil
}

// Durable does nothing but check pos: the ordered consumer keeps no state
// on the server (nothing to acknowledge); the position lives in the
// daemon's checkpoint. The stream's own limits decide when messages go.
func (s *Source) Durable(pos []byte) error {
	if pos == nil || s.o.Stream == "" {
		return nil
	}
	_, err := decodePosition(s.o.Name, s.o.Stream, pos)
	return err
}

// Close ends the source: Run may not be called after it. Run closes its
// connection before it returns, so Close has nothing else to release.
// Close is idempotent.
func (s *Source) Close() error {
	s.guard.Close()
	return nil
}
