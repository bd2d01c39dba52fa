package daemon

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The decoder's own type errors name a key without its list index; every
// wrong type must name the full key, as the package doc promises.
func TestAuditConfigTypeErrorsNameTheFullKey(t *testing.T) {
	for _, tc := range []struct{ override, key string }{
		{`sources.0.batch_rows="x"`, "sources[0].batch_rows"},
		{`sources.1.max_body=1e30`, "sources[1].max_body"},
		{`sources.0.max_file_bytes=9223372036854775808`, "sources[0].max_file_bytes"},
		{`checkpoint.keep=2.5`, "checkpoint.keep"},
		{`checkpoint.keep=99999999999999999999`, "checkpoint.keep"},
		{`schema.fields.1.nullable="yes"`, "schema.fields[1].nullable"},
		{`schema.fields.2.name=7`, "schema.fields[2].name"},
		{`schema.inputs.1=true`, "schema.inputs[1]"},
		{`schema.inputs="x0"`, "schema.inputs"},
		{`sources.1={"name":"http","type":"http","wal_dir":"/w","extra":{"deep":1}}`, "sources[1].extra"},
		{`checkpoint=[1]`, "checkpoint"},
		{`sources={"a":1}`, "sources"},
		{`publish_at_start="true"`, "publish_at_start"},
		{`pipeline=["a"]`, "pipeline"},
	} {
		_, err := ParseConfig([]byte(goodConfig), tc.override)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("%s: %v; want a *ConfigError naming %s", tc.override, err, tc.key)
		}
	}
}

// A key given twice is an error naming it, not the last value silently.
func TestAuditConfigDuplicateKeys(t *testing.T) {
	for _, tc := range []struct{ doc, key string }{
		{strings.Replace(goodConfig, `"pipeline": "model.pst",`, `"pipeline": "model.pst", "pipeline": "other.pst",`, 1), "pipeline"},
		{strings.Replace(goodConfig, `"every": "5s"`, `"every": "5s", "every": "1h"`, 1), "checkpoint.every"},
		{strings.Replace(goodConfig, `"settle": "1s"`, `"settle": "1s", "settle": "2s"`, 1), "sources[0].settle"},
		{strings.Replace(goodConfig, `"wal_dir": "/wal"`, `"wal_dir": "/wal", "wal_dir": "/wal"`, 1), "sources[1].wal_dir"},
		{strings.Replace(goodConfig, `{"name": "x1", "type": "float32"}`, `{"name": "x1", "type": "float32", "type": "float32"}`, 1), "schema.fields[1].type"},
		{`{"": 1, "": 2}`, ""},
	} {
		_, err := ParseConfig([]byte(tc.doc))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(err.Error(), "twice") {
			t.Errorf("%s: %v; want a *ConfigError naming %q given twice", tc.key, err, tc.key)
		}
	}
	// The same key in two different objects is no duplicate.
	if _, err := ParseConfig([]byte(goodConfig)); err != nil {
		t.Errorf("good config: %v", err)
	}
}

func TestAuditConfigTrailingData(t *testing.T) {
	for _, tail := range []string{" }", " ]", " {}", " 1", ` "x"`} {
		if _, err := ParseConfig([]byte(goodConfig + tail)); err == nil {
			t.Errorf("config followed by %q: no error", tail)
		}
	}
	if _, err := ParseConfig([]byte(goodConfig + " \n\t ")); err != nil {
		t.Errorf("config followed by white space: %v", err)
	}
}

// An override replaces an invalid value in the file (the file alone is
// refused), and an invalid override of a valid file names its key.
func TestAuditConfigOverrideFixesInvalidValue(t *testing.T) {
	bad := strings.Replace(goodConfig, `"keep": 3`, `"keep": "many"`, 1)
	if _, err := ParseConfig([]byte(bad)); err == nil {
		t.Fatal("keep \"many\": no error")
	}
	c, err := ParseConfig([]byte(bad), "checkpoint.keep=5")
	if err != nil || c.Checkpoint.Keep != 5 {
		t.Errorf("overridden keep: %v, keep %d; want no error, 5", err, c.Checkpoint.Keep)
	}
	// Later overrides win over earlier ones.
	c, err = ParseConfig([]byte(goodConfig), "checkpoint.keep=1", "checkpoint.keep=4")
	if err != nil || c.Checkpoint.Keep != 4 {
		t.Errorf("two overrides: %v, keep %d; want 4", err, c.Checkpoint.Keep)
	}
	// A huge value is out of range, named.
	_, err = ParseConfig([]byte(goodConfig), "checkpoint.keep=1000000")
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "checkpoint.keep" {
		t.Errorf("keep 1e6: %v; want an error naming checkpoint.keep", err)
	}
	// An override through a scalar names it.
	_, err = ParseConfig([]byte(goodConfig), "pipeline.x=1")
	if !errors.As(err, &ce) || ce.Key != "pipeline" {
		t.Errorf("pipeline.x=1: %v; want an error naming pipeline", err)
	}
}

// Two http sources: only one can serve POST /v1/ingest, the other would
// silently get nothing. The second is refused, named.
func TestAuditConfigSecondHTTPSource(t *testing.T) {
	_, err := ParseConfig([]byte(goodConfig), `sources.0={"name":"h2","type":"http","wal_dir":"/wal2"}`)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "sources[1].type" || !strings.Contains(err.Error(), `"h2"`) {
		t.Errorf("two http sources: %v; want an error naming sources[1].type and the first, h2", err)
	}
}

// FuzzParseConfig: any bytes and override parse without a panic; what
// parses prints (as penstockd -check-config does) to a configuration that
// parses back to the same Config, and every refusal of a JSON object is
// an error that starts with "config".
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodConfig), "checkpoint.every=10s")
	f.Add([]byte(goodConfig), "sources.1.max_body=1e30")
	f.Add([]byte(`{"pipeline":"a","pipeline":"b"}`), "")
	f.Add([]byte(`{"sources":[{"name":"a","type":"dir","dir":"/x","settle":"-1s"}]}`), `sources.0.glob="*.csv"`)
	f.Add([]byte(`[]`), "x=1")
	f.Fuzz(func(t *testing.T, data []byte, override string) {
		var ovs []string
		if override != "" {
			ovs = []string{override}
		}
		c, err := ParseConfig(data, ovs...)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config") {
				t.Fatalf("error %q does not start with config", err)
			}
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal %+v: %v", c, err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("printed config %s does not parse: %v", out, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("printed config parses to\n%+v\nwant\n%+v", back, c)
		}
	})
}

// The checkpoints, a write-ahead log and an inbox in one directory: the
// inbox's source would reject (move away) the checkpoints or the log's
// segments. Refused, naming the key; two inboxes may share a directory.
func TestAuditConfigSharedDirectories(t *testing.T) {
	for _, tc := range []struct{ override, key string }{
		{`checkpoint.dir="/in"`, "sources[0].dir"},
		{`checkpoint.dir="/in/"`, "sources[0].dir"},
		{`sources.1.wal_dir="/in"`, "sources[1].wal_dir"},
		{`sources.1.wal_dir="/ckpt/."`, "sources[1].wal_dir"},
	} {
		_, err := ParseConfig([]byte(goodConfig), tc.override)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("%s: %v; want an error naming %s", tc.override, err, tc.key)
		}
	}
	two := strings.Replace(goodConfig, `{"name": "http", "type": "http", "wal_dir": "/wal"}`, `{"name": "csv", "type": "dir", "dir": "/in", "glob": "*.csv"}`, 1)
	if _, err := ParseConfig([]byte(two)); err != nil {
		t.Errorf("two inboxes in one directory: %v; want them taken", err)
	}
}
