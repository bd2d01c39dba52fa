package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/daemon"
)

// What -check-config prints is a configuration that parses back to the
// same Config: an operator may save it as the file.
func TestAuditCheckConfigRoundTrips(t *testing.T) {
	var out, errs bytes.Buffer
	cfg := strings.Replace(config, `"dir": "/in"}`, `"dir": "/in", "settle": "-1s", "poll": "20ms", "batch_rows": 64}, {"name": "h", "type": "http", "wal_dir": "/w", "max_body": 4096}, {"name": "n", "type": "nats", "url": "nats://x:4222", "stream": "S"}`, 1)
	if code := run([]string{"-config", write(t, cfg), "-set", "publish_every=1s", "-check-config"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	want, err := daemon.ParseConfig([]byte(cfg), "publish_every=1s")
	if err != nil {
		t.Fatal(err)
	}
	got, err := daemon.ParseConfig(out.Bytes())
	if err != nil {
		t.Fatalf("the printed configuration does not parse: %v\n%s", err, out.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("printed config parses to\n%+v\nwant\n%+v", got, want)
	}
}

// An invalid value of the file overridden by -set is valid; a key given
// twice in the file, an unknown flag, a file that is not JSON each fail,
// the key or the flag named.
func TestAuditFlagsAndFile(t *testing.T) {
	for _, tc := range []struct {
		file string
		args []string
		code int
		want string
	}{
		{strings.Replace(config, `"dir": "/ckpt"`, `"dir": "/ckpt", "keep": 1`, 1), []string{"-set", "checkpoint.keep=4"}, 0, `"keep": 4`},
		{strings.Replace(config, `"dir": "/ckpt"`, `"dir": "/ckpt", "keep": 1`, 1), nil, 1, "checkpoint.keep"},
		{strings.Replace(config, `"dir": "/ckpt"`, `"dir": "/ckpt", "dir": "/other"`, 1), nil, 1, "checkpoint.dir: given twice"},
		{config, []string{"-set", "sources.0.batch_rows=lots"}, 1, "sources[0].batch_rows"},
		{config, []string{"-set", "nokey"}, 1, "key=value"},
		{config, []string{"-no-such-flag"}, 2, "no-such-flag"},
		{"{not json", nil, 1, "not JSON"},
	} {
		var out, errs bytes.Buffer
		code := run(append([]string{"-config", write(t, tc.file), "-check-config"}, tc.args...), &out, &errs)
		if code != tc.code || !strings.Contains(out.String()+errs.String(), tc.want) {
			t.Errorf("%v: exit %d, out %q, err %q; want %d and %q", tc.args, code, out.String(), errs.String(), tc.code, tc.want)
		}
	}
}
