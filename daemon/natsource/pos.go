package natsource

import (
	"encoding/json"
	"fmt"
)

// position is where a JetStream source stands: just after record batch
// Batch (0-based) of the message of stream sequence Seq; Last says that it
// is the message's last batch, so the next input is the next message's.
type position struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	Batch  int    `json:"batch"`
	Last   bool   `json:"last,omitempty"`
}

func (p position) encode() []byte {
	b, err := json.Marshal(p)
	if err != nil { // strings, integers and a bool always marshal
		panic(err)
	}
	return b
}

// decodePosition reads a position that Run sent, for stream.
func decodePosition(name, stream string, b []byte) (position, error) {
	var p position
	if err := json.Unmarshal(b, &p); err != nil {
		return position{}, fmt.Errorf("natsource %q: position %q: %w", name, b, err)
	}
	if p.Stream != stream {
		return position{}, fmt.Errorf("natsource %q: position %q is of stream %q; this source reads stream %q", name, b, p.Stream, stream)
	}
	if p.Seq == 0 || p.Batch < 0 {
		return position{}, fmt.Errorf("natsource %q: position %q: want a sequence ≥ 1 and a batch ≥ 0", name, b)
	}
	return p, nil
}
