package ckpt

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{},
		{Batches: 1 << 40, Version: 7, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
		{Positions: map[string][]byte{"a": nil, "b": {}, "c": []byte(`{"seq":9}`)}, Extra: map[string]string{"k": "v"}},
		{Positions: map[string][]byte{}, Extra: map[string]string{}}, // empty, not nil, stays so
	} {
		b, err := encodeMeta(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMeta(b)
		if err != nil {
			t.Fatalf("decode of %s: %v", b, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %+v: %+v", m, got)
		}
	}
}

func TestMetaEncodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		m    Meta
		want string
	}{
		{Meta{Batches: -1}, "batches -1"},
		{Meta{Version: -2}, "version -2"},
		{Meta{Positions: map[string][]byte{"": nil}}, "empty source name"},
	} {
		if _, err := encodeMeta(tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("encode %+v: %v; want an error containing %q", tc.m, err, tc.want)
		}
	}
}

func TestMetaDecodeStrict(t *testing.T) {
	const ok = `{"format_version":1,"batches":3,"positions":{"a":"AAE="},"version":2,"time":"2026-01-01T00:00:00Z"}`
	if m, err := decodeMeta([]byte(ok)); err != nil || m.Batches != 3 || string(m.Positions["a"]) != "\x00\x01" {
		t.Fatalf("decode %s: %+v, %v", ok, m, err)
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unknown field", strings.Replace(ok, `"version"`, `"epoch":1,"version"`, 1), `unknown member "epoch"`},
		{"other case", strings.Replace(ok, `"batches"`, `"Batches"`, 1), `unknown member "Batches"`},
		{"twice", strings.Replace(ok, `"version":2`, `"version":2,"version":3`, 1), `member "version" given twice`},
		{"trailing data", ok + ` {}`, "data after"},
		{"two objects", ok + ok, "data after"},
		{"no version", `{"batches":3}`, "no format_version"},
		{"newer", strings.Replace(ok, `"format_version":1`, `"format_version":2`, 1), "newer"},
		{"negative format", strings.Replace(ok, `"format_version":1`, `"format_version":-1`, 1), "format_version -1"},
		{"wrong type", strings.Replace(ok, `"batches":3`, `"batches":"3"`, 1), "batches"},
		{"negative batches", strings.Replace(ok, `"batches":3`, `"batches":-3`, 1), "batches -3"},
		{"bad base64", strings.Replace(ok, `"AAE="`, `"!!"`, 1), "illegal base64"},
		{"bad time", strings.Replace(ok, `2026-01-01T00:00:00Z`, `yesterday`, 1), "time"},
		{"not an object", `[1]`, "want a JSON object"},
		{"empty", ``, "EOF"},
		{"too big", `"` + strings.Repeat("x", MaxMetaBytes) + `"`, "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeMeta([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), MetaName) {
				t.Errorf("decode: %v; want an error naming %q and containing %q", err, MetaName, tc.want)
			}
		})
	}
}

// FuzzDecodeMeta: decodeMeta never panics, and what it accepts encodes
// and decodes back to itself.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{
		{},
		{Batches: 12, Version: 3, Time: time.Date(2026, 12, 1, 0, 0, 0, 1, time.UTC),
			Positions: map[string][]byte{"http": []byte(`{"record":7,"batch":1}`), "dir": {0xff}},
			Extra:     map[string]string{"note": "x"}},
	} {
		b, err := encodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"format_version":1,"batches":1,"extra":{"a":"b"},"x":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		again, err := encodeMeta(m)
		if err != nil {
			t.Fatalf("accepted %q, then encoding %+v: %v", b, m, err)
		}
		m2, err := decodeMeta(again)
		if err != nil {
			t.Fatalf("accepted %q, then its encoding %s: %v", b, again, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("accepted %q as %+v; its encoding decodes to %+v", b, m, m2)
		}
		if !json.Valid(again) {
			t.Fatalf("encoding %s is not JSON", again)
		}
	})
}
