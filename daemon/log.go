package daemon

import (
	"io"
	"log/slog"
	"os"
)

// NewLogger returns the daemon's logger on w: JSON, text, or ("auto") text
// when w is a terminal and JSON otherwise. One line per event.
func NewLogger(w io.Writer, format string) *slog.Logger {
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
