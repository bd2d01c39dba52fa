package natsource_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/penstock-ml/penstock/daemon/internal/srctest"
	"github.com/penstock-ml/penstock/daemon/natsource"
)

// A checkpoint that resumes past the stream's end (the stream was purged
// or made anew since) is warned about when Run starts, naming the
// stream's last sequence and the one it resumes at; one inside the
// stream is not.
func TestResumePastStreamEndWarns(t *testing.T) {
	srv := startServer(t)
	p := newPublisher(t, srv)
	p.publish(t, "in.a", body(t, testSchema().Fields, 0, 1, 2))
	p.publish(t, "in.a", body(t, testSchema().Fields, 2, 1, 2))
	for _, tc := range []struct {
		from string
		warn bool
	}{
		{pos(10, 0, true), true},
		{pos(2, 0, true), false}, // resumes at 3, the next message
	} {
		var logs srctest.LogBuffer
		src := newSource(t, natsource.Options{URL: srv.ClientURL(), Stream: "S", Alloc: checked(t),
			Log: slog.New(slog.NewTextHandler(&logs, nil))})
		r := start(t, src, []byte(tc.from))
		// The warning comes when the consumer is made, after "reading":
		// wait for it, or long enough for one that should not come.
		wait := 300 * time.Millisecond
		if tc.warn {
			wait = 10 * time.Second
		}
		for deadline := time.Now().Add(wait); time.Now().Before(deadline) && !strings.Contains(logs.String(), "past the stream's end"); {
			time.Sleep(5 * time.Millisecond)
		}
		r.Stop(t, nil)
		got := logs.String()
		warned := strings.Contains(got, "past the stream's end")
		if warned != tc.warn || (tc.warn && (!strings.Contains(got, "last_seq=2") || !strings.Contains(got, "from_seq=11"))) {
			t.Errorf("from %s: log %q; want a warning %v (last_seq=2 from_seq=11)", tc.from, got, tc.warn)
		}
	}
}
