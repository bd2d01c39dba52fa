package csvguard

import (
	"bytes"
	"io"
)

var (
	newline   = []byte{'\n'}
	blankLine = []byte{'\n', '\n'}
)

// Lines passes the bytes of a CSV table through, checked:
//
//   - a record (a line, or the lines of a record whose quoted field spans
//     lines, without its line break) longer than the bound is an error, so
//     that one endless line, or a quote left open, cannot fill the memory;
//   - CR-only line endings (old Mac) become LF, in place; CRLF and LF pass
//     as they are (encoding/csv reads both; a CRLF split between two reads
//     passes as LF); a CR inside a quoted field is
//     data and passes unchanged;
//   - a UTF-8 byte-order mark at the start is dropped; a UTF-16 one is an
//     error (ErrUTF16), and so is a NUL byte anywhere (ErrNUL);
//   - a blank line followed by more records is an error (ErrBlankLine)
//     naming the blank line; blank lines at the end pass.
//
// Quotes are '"', as in RFC 4180: a quote opens or closes a quoted field,
// and an escaped quote ("") closes and reopens it. Lines does not check the
// placement of quotes; the parser after it does.
//
// On an error, Lines first passes on the bytes before the faulty one, so a
// parser reads every record before it, and then returns the error, an
// *Error naming the line, from then on. An error of the reader below (other
// than io.EOF) is returned the same way, wrapped in an *Error.
type Lines struct {
	r       io.Reader
	max     int
	line    int  // line breaks passed
	run     int  // bytes of the current record so far
	inQuote bool // inside a quoted field
	empty   bool // the current line has no byte yet
	blankAt int  // the 1-based line of a blank line not yet followed by a record, or 0
	skipLF  bool // the last chunk ended with a CR, made a LF: drop a LF that starts the next
	started bool // the byte-order mark has been checked
	head    []byte
	headBuf [3]byte
	err     error
}

// NewLines returns a Lines reading r, whose records may be up to
// maxRecord bytes long.
func NewLines(r io.Reader, maxRecord int) *Lines {
	return &Lines{r: r, max: maxRecord, empty: true}
}

// Line returns the 1-based number of the line that the next byte passed
// belongs to.
func (g *Lines) Line() int { return g.line + 1 }

// Read implements io.Reader.
func (g *Lines) Read(p []byte) (int, error) {
	for {
		if g.err != nil {
			return 0, g.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if !g.started {
			if err := g.start(); err != nil {
				g.err = err
				return 0, err
			}
		}
		k := copy(p, g.head)
		g.head = g.head[k:]
		var n int
		var err error
		if k < len(p) {
			n, err = g.r.Read(p[k:])
		}
		n += k
		c := p[:n]
		dropped := false
		if g.skipLF && n > 0 {
			g.skipLF = false
			if c[0] == '\n' {
				copy(c, c[1:])
				n--
				c = c[:n]
				dropped = true
			}
		}
		ok, serr := g.scan(c)
		if serr != nil {
			g.err = serr
			if ok > 0 {
				return ok, nil
			}
			return 0, serr
		}
		if err != nil && err != io.EOF {
			g.err = &Error{Line: g.line + 1, Err: err}
			if n > 0 {
				return n, nil
			}
			return 0, g.err
		}
		if n == 0 && err == nil && dropped {
			continue
		}
		return n, err
	}
}

// start reads the first bytes and checks for a byte-order mark.
func (g *Lines) start() error {
	g.started = true
	n, err := io.ReadFull(g.r, g.headBuf[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return &Error{Line: 1, Err: err}
	}
	h := g.headBuf[:n]
	switch {
	case bytes.HasPrefix(h, []byte{0xef, 0xbb, 0xbf}):
		h = h[3:]
	case bytes.HasPrefix(h, []byte{0xff, 0xfe}), bytes.HasPrefix(h, []byte{0xfe, 0xff}):
		return &Error{Line: 1, Err: ErrUTF16}
	}
	g.head = h
	return nil
}

// scan checks c and updates the state; it returns how many bytes of c pass
// before an error.
func (g *Lines) scan(c []byte) (int, error) {
	n := len(c)
	if n == 0 {
		return 0, nil
	}
	// The fast path: no quote, CR or NUL, no blank line.
	if !g.inQuote && g.blankAt == 0 && (!g.empty || c[0] != '\n') &&
		bytes.IndexByte(c, '"') < 0 && bytes.IndexByte(c, '\r') < 0 && bytes.IndexByte(c, 0) < 0 {
		first := bytes.IndexByte(c, '\n')
		if first < 0 {
			if g.run+n <= g.max {
				g.run += n
				g.empty = false
				return n, nil
			}
		} else if !bytes.Contains(c, blankLine) {
			last := bytes.LastIndexByte(c, '\n')
			if g.run+first <= g.max && n-last-1 <= g.max &&
				(last-first-1 <= g.max || longestLine(c[first+1:last+1]) <= g.max) {
				g.line += bytes.Count(c, newline)
				g.run = n - last - 1
				g.empty = last == n-1
				return n, nil
			}
		}
	}
	return g.slow(c)
}

// slow checks c byte by byte.
func (g *Lines) slow(c []byte) (int, error) {
	for i := 0; i < len(c); i++ {
		b := c[i]
		if g.inQuote {
			switch b {
			case '"':
				g.inQuote = false
			case '\n':
				g.line++
			case 0:
				return i, g.fail(ErrNUL)
			}
			g.run++
			if g.run > g.max {
				return i, g.fail(ErrRecordTooLong)
			}
			continue
		}
		switch b {
		case '\r':
			if i+1 < len(c) {
				if c[i+1] == '\n' {
					continue // CRLF: the LF ends the line
				}
			} else {
				g.skipLF = true
			}
			c[i] = '\n'
			fallthrough
		case '\n':
			if g.empty && g.blankAt == 0 {
				g.blankAt = g.line + 1
			}
			g.line++
			g.run = 0
			g.empty = true
			continue
		case 0:
			return i, g.fail(ErrNUL)
		case '"':
			g.inQuote = true
		}
		if g.blankAt != 0 {
			return i, &Error{Line: g.blankAt, Err: ErrBlankLine}
		}
		g.empty = false
		g.run++
		if g.run > g.max {
			return i, g.fail(ErrRecordTooLong)
		}
	}
	return len(c), nil
}

func (g *Lines) fail(cause error) error {
	return &Error{Line: g.line + 1, Err: cause}
}

// longestLine returns the length of the longest line in b, which ends with
// a newline.
func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		longest = max(longest, i)
		b = b[i+1:]
	}
	return longest
}
