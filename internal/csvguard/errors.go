package csvguard

import (
	"errors"
	"fmt"
)

// The causes of the errors of this package; test with errors.Is.
var (
	// ErrRecordTooLong: a record runs over the bound given to NewLines.
	ErrRecordTooLong = errors.New("record too long")
	// ErrNUL: the input holds a NUL byte (binary data, or UTF-16 text).
	ErrNUL = errors.New("NUL byte")
	// ErrUTF16: the input starts with a UTF-16 byte-order mark.
	ErrUTF16 = errors.New("UTF-16 byte-order mark")
	// ErrBlankLine: a blank line is followed by more records. A blank line
	// is not a record; a parser that skips it would lose a row of a
	// one-column table whose value is empty.
	ErrBlankLine = errors.New("blank line between records")
	// ErrTooLarge: more bytes than the Limit allows.
	ErrTooLarge = errors.New("input too large")
	// ErrTruncated: a gzip stream ends before its end (it wraps
	// io.ErrUnexpectedEOF).
	ErrTruncated = errors.New("gzip stream truncated")
	// ErrTrailingData: bytes that are not a gzip member follow a gzip
	// stream.
	ErrTrailingData = errors.New("trailing data after the gzip stream")
)

// Error is an error of Lines: Line is the 1-based line at which it
// happened, Err its cause.
type Error struct {
	Line int
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e *Error) Unwrap() error { return e.Err }
