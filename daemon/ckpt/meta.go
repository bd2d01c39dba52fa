package ckpt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// MetaName is the name of the extra blob (persist.WithExtra) that holds a
// checkpoint's Meta, as a JSON object: format_version (MetaFormatVersion),
// batches, positions (source name → base64 of the position's bytes),
// version, time (RFC 3339, UTC) and extra (name → string).
const MetaName = "penstock.daemon.meta"

// MetaFormatVersion is the version of the Meta's JSON that this package
// writes; a checkpoint with a later one is skipped by Latest.
const MetaFormatVersion = 1

// MaxMetaBytes bounds the Meta's JSON that a load decodes.
const MaxMetaBytes = 16 << 20

// Meta is what the daemon keeps with the model in a checkpoint.
type Meta struct {
	// Batches is the number of batches fitted in total, up to this
	// checkpoint's cut.
	Batches int64
	// Positions holds each source's position (by source name) just after
	// the last batch fitted: opaque bytes that the source gave.
	Positions map[string][]byte
	// Version is the model version published at this checkpoint.
	Version int64
	// Time is when the checkpoint was cut; Save sets the time of the
	// save where it is zero. It is kept in UTC, to the nanosecond.
	Time time.Time
	// Extra holds anything else, free-form.
	Extra map[string]string
}

// metaJSON is Meta's form in the file; decodeMeta reads it member by
// member, so that a member it does not know, one whose name differs in
// case, or one given twice is refused (encoding/json alone matches names
// without regard to case, and lets the last of two win).
type metaJSON struct {
	FormatVersion int               `json:"format_version"`
	Batches       int64             `json:"batches"`
	Positions     map[string][]byte `json:"positions"`
	Version       int64             `json:"version"`
	Time          time.Time         `json:"time"`
	Extra         map[string]string `json:"extra"`
}

// members returns where each member of j decodes to, by its exact name.
func (j *metaJSON) members() map[string]any {
	return map[string]any{
		"format_version": &j.FormatVersion,
		"batches":        &j.Batches,
		"positions":      &j.Positions,
		"version":        &j.Version,
		"time":           &j.Time,
		"extra":          &j.Extra,
	}
}

// encodeMeta returns m's JSON.
func encodeMeta(m Meta) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	return json.Marshal(metaJSON{
		FormatVersion: MetaFormatVersion,
		Batches:       m.Batches,
		Positions:     m.Positions,
		Version:       m.Version,
		Time:          m.Time.UTC(),
		Extra:         m.Extra,
	})
}

// decodeMeta decodes a Meta's JSON strictly: one object, every member
// known by its exact name and given once, format_version 1, and what
// check requires.
func decodeMeta(b []byte) (Meta, error) {
	if len(b) > MaxMetaBytes {
		return Meta{}, fmt.Errorf("meta %q: %d bytes, over the limit of %d", MetaName, len(b), MaxMetaBytes)
	}
	j, err := decodeMetaJSON(b)
	if err != nil {
		return Meta{}, fmt.Errorf("meta %q: %w", MetaName, err)
	}
	switch {
	case j.FormatVersion == 0:
		return Meta{}, fmt.Errorf("meta %q: no format_version, want %d", MetaName, MetaFormatVersion)
	case j.FormatVersion > MetaFormatVersion:
		return Meta{}, fmt.Errorf("meta %q: format_version %d, newer than %d (saved by a newer version of ckpt)", MetaName, j.FormatVersion, MetaFormatVersion)
	case j.FormatVersion < 0:
		return Meta{}, fmt.Errorf("meta %q: format_version %d, want %d", MetaName, j.FormatVersion, MetaFormatVersion)
	}
	m := Meta{Batches: j.Batches, Positions: j.Positions, Version: j.Version, Time: j.Time.UTC(), Extra: j.Extra}
	if err := m.check(); err != nil {
		return Meta{}, fmt.Errorf("meta %q: %w", MetaName, err)
	}
	return m, nil
}

func decodeMetaJSON(b []byte) (metaJSON, error) {
	var j metaJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil {
		return j, err
	} else if tok != json.Delim('{') {
		return j, fmt.Errorf("want a JSON object, got %v", tok)
	}
	members, seen := j.members(), map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return j, err
		}
		name, _ := tok.(string) // an object's keys are strings
		dst, ok := members[name]
		switch {
		case !ok:
			return j, fmt.Errorf("unknown member %q", name)
		case seen[name]:
			return j, fmt.Errorf("member %q given twice", name)
		}
		seen[name] = true
		if err := dec.Decode(dst); err != nil {
			return j, fmt.Errorf("member %q: %w", name, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return j, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return j, errors.New("data after its JSON object")
	}
	return j, nil
}

// check refuses what a Meta may not hold.
func (m Meta) check() error {
	switch {
	case m.Batches < 0:
		return fmt.Errorf("batches %d, want ≥ 0", m.Batches)
	case m.Version < 0:
		return fmt.Errorf("version %d, want ≥ 0", m.Version)
	}
	for name := range m.Positions {
		if name == "" {
			return errors.New("a position with an empty source name")
		}
	}
	return nil
}
