package csvguard_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/penstock-ml/penstock/internal/csvguard"
)

// TestAuditGzipCutInSecondHeader: a stream that ends inside the header of
// a member after the first is truncated (ErrTruncated, io.ErrUnexpectedEOF),
// as one that ends inside its body is, after the bytes of the members
// before it.
func TestAuditGzipCutInSecondHeader(t *testing.T) {
	body := strings.Repeat("1,2\n", 100)
	one := gz(t, body)
	second := gz(t, "3,4\n")
	for _, cut := range []int{2, 3, 5, 9, 10} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d bytes/chunked %v", cut, chunked), func(t *testing.T) {
				var src io.Reader = bytes.NewReader(cat(one, second[:cut]))
				if chunked {
					src = iotest.OneByteReader(src)
				}
				g, err := csvguard.NewGzip(bufio.NewReader(src), 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				out, err := io.ReadAll(g)
				if !errors.Is(err, csvguard.ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("error %v; want one wrapping ErrTruncated and io.ErrUnexpectedEOF", err)
				}
				if string(out) != body {
					t.Errorf("passed %d bytes; want the first member's %d", len(out), len(body))
				}
			})
		}
	}
}

// TestAuditGzipCutInFirstHeader: a stream cut inside its first member's
// header is truncated too, reported by NewGzip.
func TestAuditGzipCutInFirstHeader(t *testing.T) {
	one := gz(t, "1,2\n")
	for _, cut := range []int{2, 4, 9} {
		_, err := csvguard.NewGzip(bufio.NewReader(bytes.NewReader(one[:cut])), 1<<20)
		if !errors.Is(err, csvguard.ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut after %d bytes: NewGzip error %v; want one wrapping ErrTruncated and io.ErrUnexpectedEOF", cut, err)
		}
	}
}
