package wal

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/daemon/source"
)

// Defaults of Options.
const (
	DefaultName          = "http"
	DefaultMaxBody       = 8 << 20
	DefaultMaxPending    = 256 << 20
	DefaultSegmentBytes  = 64 << 20
	DefaultMaxKeys       = 100_000
	DefaultKeepPositions = 3
)

// Options configure a Log. The zero value of every field but Dir and
// Schema is its default.
type Options struct {
	Name   string        // source name, default "http"
	Dir    string        // WAL directory (segments and the keys file); created if missing
	Schema source.Schema // what every post must hold
	// MaxBody bounds a post's body in bytes (default 8 MiB): over it, 413.
	// A decoded record batch may hold at most 8×MaxBody bytes of buffers
	// (compressed bodies), else the post is a 400.
	MaxBody int64
	// MaxPending bounds the bytes accepted but not yet sent out by Run
	// (default 256 MiB): a post that would go over it gets 503 with
	// Retry-After, unless nothing is pending.
	MaxPending int64
	// SegmentBytes is the size after which the log starts a new segment
	// (default 64 MiB); a segment may exceed it by one group commit.
	SegmentBytes int64
	// MaxKeys is how many of the most recent idempotency keys are
	// remembered (default 100 000), across restarts and deleted segments.
	MaxKeys int
	// KeepPositions: Durable deletes only the segments wholly before the
	// oldest of the last KeepPositions positions that it was given
	// (default 3, as many as the checkpoint store keeps), so that the
	// daemon can still resume from an older checkpoint when the newest
	// does not load. Until it has been given that many (after each
	// Open), Durable deletes nothing.
	KeepPositions int
	Alloc         memory.Allocator // batches and decoding; default memory.DefaultAllocator
	Reporter      source.Reporter  // rejected posts; default source.LogReporter{Log}
	Log           *slog.Logger     // default slog.Default()
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("wal: Options.Dir is empty")
	}
	if err := o.Schema.Validate(); err != nil {
		return o, fmt.Errorf("wal: %w", err)
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	for _, v := range []struct {
		name string
		p    *int64
		def  int64
	}{{"MaxBody", &o.MaxBody, DefaultMaxBody}, {"MaxPending", &o.MaxPending, DefaultMaxPending}, {"SegmentBytes", &o.SegmentBytes, DefaultSegmentBytes}} {
		switch {
		case *v.p == 0:
			*v.p = v.def
		case *v.p < 0:
			return o, fmt.Errorf("wal: Options.%s is %d, want > 0 (0: default %d)", v.name, *v.p, v.def)
		}
	}
	if o.MaxBody > maxPayload-payloadFixed-MaxKeyBytes {
		return o, fmt.Errorf("wal: Options.MaxBody is %d, want at most %d", o.MaxBody, maxPayload-payloadFixed-MaxKeyBytes)
	}
	if o.MaxKeys < 0 || o.KeepPositions < 0 {
		return o, fmt.Errorf("wal: Options.MaxKeys (%d) and KeepPositions (%d) must be ≥ 0 (0: default)", o.MaxKeys, o.KeepPositions)
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.KeepPositions == 0 {
		o.KeepPositions = DefaultKeepPositions
	}
	source.Defaults(&o.Alloc, &o.Log, &o.Reporter)
	return o, nil
}
