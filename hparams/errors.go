package hparams

import (
	"errors"
	"fmt"
	"strings"
)

// Errors that Set, Override, Gather and Grid wrap, for errors.Is.
var (
	// ErrUnknownKey: a key names no parameter of the tree or space. The
	// error lists the valid keys.
	ErrUnknownKey = errors.New("unknown key")
	// ErrInvalidValue: a value has the wrong type or lies outside the
	// parameter's declared distribution. The error names the key and
	// the distribution.
	ErrInvalidValue = errors.New("invalid value")
	// ErrNotFinite: a grid was asked of a space with a parameter that has
	// no finite list of values.
	ErrNotFinite = errors.New("not finite")
)

// kindError is an error of one of the kinds above whose message says
// everything (so it does not repeat the kind's name).
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func errorOf(kind error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// unknownKeys is the error for the keys in unknown, none of which is one
// of valid (sorted).
func unknownKeys(what string, unknown, valid []string) error {
	noun := "key"
	if len(unknown) > 1 {
		noun = "keys"
	}
	return errorOf(ErrUnknownKey, "hparams: %s: unknown %s %s; valid keys: %s", what, noun, quoteAll(unknown), quoteAll(valid))
}

func quoteAll(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = fmt.Sprintf("%q", k)
	}
	return strings.Join(q, ", ")
}
