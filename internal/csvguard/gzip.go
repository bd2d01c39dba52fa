package csvguard

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
)

// IsGzip reports whether br starts with the gzip magic number. It peeks,
// reading nothing.
func IsGzip(br *bufio.Reader) bool {
	magic, err := br.Peek(2)
	return err == nil && magic[0] == 0x1f && magic[1] == 0x8b
}

// Gzip decompresses a gzip stream of one or more members, up to a bound on
// the decompressed bytes (ErrTooLarge). A stream that ends inside a member
// is an error wrapping ErrTruncated and io.ErrUnexpectedEOF; bytes after
// the last member that do not start another member are an error wrapping
// ErrTrailingData. Errors name the decompressed byte offset.
type Gzip struct {
	br  *bufio.Reader
	zr  *gzip.Reader
	lim *Limit
	out int64 // decompressed bytes so far
	err error
}

// NewGzip reads the first member's header from br and returns the reader
// of the decompressed bytes, which may be up to max bytes long. The caller
// closes it.
func NewGzip(br *bufio.Reader, max int64) (*Gzip, error) {
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, headerError(err, 0)
	}
	zr.Multistream(false)
	g := &Gzip{br: br, zr: zr}
	g.lim = NewLimit(members{g}, max)
	return g, nil
}

// Read implements io.Reader.
func (g *Gzip) Read(p []byte) (int, error) { return g.lim.Read(p) }

// Close releases the decompressor; it does not close the reader below.
func (g *Gzip) Close() error { return g.zr.Close() }

// members reads the members of g one after the other.
type members struct{ g *Gzip }

func (m members) Read(p []byte) (int, error) {
	g := m.g
	for {
		if g.err != nil {
			return 0, g.err
		}
		n, err := g.zr.Read(p)
		g.out += int64(n)
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF:
			err = g.nextMember()
			if err == nil && n == 0 {
				continue
			}
			if err != nil {
				g.err = err
			}
			if n > 0 {
				return n, nil
			}
			return 0, err
		case errors.Is(err, io.ErrUnexpectedEOF):
			g.err = fmt.Errorf("%w after %d decompressed bytes: %w", ErrTruncated, g.out, io.ErrUnexpectedEOF)
		default:
			g.err = fmt.Errorf("gzip: after %d decompressed bytes: %w", g.out, err)
		}
		if n > 0 {
			return n, nil
		}
		return 0, g.err
	}
}

// nextMember starts the next member after the end of one: io.EOF at the
// end of the input, nil when another member follows.
func (g *Gzip) nextMember() error {
	b, err := g.br.Peek(2)
	switch {
	case len(b) == 0 && err == io.EOF:
		return io.EOF
	case len(b) == 0:
		return fmt.Errorf("gzip: after %d decompressed bytes: %w", g.out, err)
	case len(b) == 2 && b[0] == 0x1f && b[1] == 0x8b:
		if err := g.zr.Reset(g.br); err != nil {
			return headerError(err, g.out)
		}
		g.zr.Multistream(false)
		return nil
	}
	return fmt.Errorf("%w, after %d decompressed bytes", ErrTrailingData, g.out)
}

// headerError is the error of reading a member's header after out
// decompressed bytes: a header cut short is a truncated stream.
func headerError(err error, out int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w in the header of a member, after %d decompressed bytes: %w", ErrTruncated, out, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("gzip: member header after %d decompressed bytes: %w", out, err)
}
