package daemon

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const goodConfig = `{
  "pipeline": "model.pst",
  "schema": {"fields": [{"name": "x0", "type": "float32"}, {"name": "x1", "type": "float32"}, {"name": "label", "type": "int64"}],
             "inputs": ["x0", "x1"], "labels": ["label"]},
  "sources": [{"name": "files", "type": "dir", "dir": "/in", "settle": "1s"},
              {"name": "http", "type": "http", "wal_dir": "/wal"}],
  "checkpoint": {"dir": "/ckpt", "every": "5s", "keep": 3}
}`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Engine != "sequential" || c.Address != ":8080" || c.DrainTimeout.D() != 30*time.Second ||
		c.Checkpoint.Every.D() != 5*time.Second || c.Sources[0].Settle.D() != time.Second {
		t.Errorf("decoded %+v", c)
	}
	s := c.InputSchema()
	if s.Fields.NumFields() != 3 || len(s.Inputs) != 2 || s.Labels[0] != "label" {
		t.Errorf("schema %v", s)
	}
}

func TestParseConfigOverrides(t *testing.T) {
	c, err := ParseConfig([]byte(goodConfig), "checkpoint.every=250ms", "sources.0.dir=/other", "address=:0", `engine="streaming"`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Checkpoint.Every.D() != 250*time.Millisecond || c.Sources[0].Dir != "/other" || c.Address != ":0" || c.Engine != "streaming" {
		t.Errorf("overrides not applied: %+v", c)
	}
	if _, err := ParseConfig([]byte(goodConfig), "sources.5.dir=/x"); err == nil || !strings.Contains(err.Error(), "sources.5") {
		t.Errorf("override of a missing element: %v", err)
	}
	if _, err := ParseConfig([]byte(goodConfig), "nokey"); err == nil {
		t.Error("override without '=': no error")
	}
}

// Every bad configuration is an error that names its key.
func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		override string
		key      string
	}{
		{`checkpoint.evry="5s"`, "checkpoint.evry"},
		{`sources.0.colour="red"`, "sources[0].colour"},
		{`checkpoint.keep="three"`, "checkpoint.keep"},
		{`checkpoint.keep=1`, "checkpoint.keep"},
		{`checkpoint.every="soon"`, "checkpoint.every"},
		{`sources.0.settle=5`, "sources[0].settle"},
		{`checkpoint.every="1ms"`, "checkpoint.every"},
		{`drain_timeout="2h"`, "drain_timeout"},
		{`sources.0.type="ftp"`, "sources[0].type"},
		{`sources.0.wal_dir="/w"`, "sources[0].wal_dir"},
		{`sources.1.name="files"`, "sources[1].name"},
		{`sources.1.wal_dir=""`, "sources[1].wal_dir"},
		{`schema.fields.0.type="complex128"`, "schema.fields[0].type"},
		{`schema.inputs=["x0","nope"]`, "schema"},
		{`engine="gpu"`, "engine"},
		{`pipeline=""`, "pipeline"},
		{`checkpoint.dir=""`, "checkpoint.dir"},
		{`sources=[]`, "sources"},
		{`max_predict_bytes=10`, "max_predict_bytes"},
	} {
		_, err := ParseConfig([]byte(goodConfig), tc.override)
		if err == nil {
			t.Errorf("%s: no error", tc.override)
			continue
		}
		var ce *ConfigError
		if tc.key != "" && (!errors.As(err, &ce) || ce.Key != tc.key) {
			t.Errorf("%s: %v; want an error naming %s", tc.override, err, tc.key)
		}
	}
	for _, bad := range []string{``, `[]`, `{"pipeline": 1}`, `{} {}`} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
