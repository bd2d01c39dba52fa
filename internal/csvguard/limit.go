package csvguard

import (
	"fmt"
	"io"
)

// Limit passes at most max bytes of the reader below; reading more is an
// error wrapping ErrTooLarge. It first passes the bytes up to the bound.
type Limit struct {
	r    io.Reader
	left int64
	max  int64
}

// NewLimit returns a Limit reading r, which may yield up to max bytes.
func NewLimit(r io.Reader, max int64) *Limit {
	return &Limit{r: r, left: max, max: max}
}

// Read implements io.Reader.
func (l *Limit) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, l.tooLarge()
	}
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		n = int(l.left)
		l.left = -1
		if n == 0 {
			return 0, l.tooLarge()
		}
		return n, nil
	}
	l.left -= int64(n)
	return n, err
}

func (l *Limit) tooLarge() error {
	return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, l.max)
}
