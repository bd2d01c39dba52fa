package csvguard_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/gzip"

	"github.com/penstock-ml/penstock/internal/csvguard"
)

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestGzip(t *testing.T) {
	body := strings.Repeat("1,2\n", 1000)
	one := gz(t, body)
	for _, tc := range []struct {
		name  string
		in    []byte
		max   int64
		out   int   // bytes passed
		cause error // nil: read to io.EOF
	}{
		{"one member", one, 1 << 20, len(body), nil},
		{"two members", cat(one, gz(t, "3,4\n")), 1 << 20, len(body) + 4, nil},
		{"empty member", cat(one, gz(t, "")), 1 << 20, len(body), nil},
		{"truncated trailer", one[:len(one)-4], 1 << 20, -1, csvguard.ErrTruncated},
		{"truncated body", one[:len(one)/2], 1 << 20, -1, io.ErrUnexpectedEOF},
		{"trailing bytes", cat(one, []byte("junk")), 1 << 20, len(body), csvguard.ErrTrailingData},
		{"trailing zeros", cat(one, make([]byte, 8)), 1 << 20, len(body), csvguard.ErrTrailingData},
		{"trailing byte", cat(one, []byte{0x1f}), 1 << 20, len(body), csvguard.ErrTrailingData},
		{"truncated second member", cat(one, gz(t, "3,4\n")[:12]), 1 << 20, -1, csvguard.ErrTruncated},
		{"over the bound", one, 1000, 1000, csvguard.ErrTooLarge},
		{"at the bound", one, int64(len(body)), len(body), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunked := range []bool{false, true} {
				var src io.Reader = bytes.NewReader(tc.in)
				if chunked {
					src = iotest.OneByteReader(src)
				}
				br := bufio.NewReader(src)
				if !csvguard.IsGzip(br) {
					t.Fatal("IsGzip = false")
				}
				g, err := csvguard.NewGzip(br, tc.max)
				if err != nil {
					t.Fatal(err)
				}
				out, err := io.ReadAll(g)
				g.Close()
				if tc.cause == nil && err != nil || tc.cause != nil && !errors.Is(err, tc.cause) {
					t.Errorf("chunked %v: error %v; want %v", chunked, err, tc.cause)
				}
				if tc.out >= 0 && len(out) != tc.out {
					t.Errorf("chunked %v: passed %d bytes; want %d", chunked, len(out), tc.out)
				}
				if tc.out >= 0 && !strings.HasPrefix(body+"3,4\n", string(out)) {
					t.Errorf("chunked %v: passed bytes that are not the input's", chunked)
				}
			}
		})
	}
}

func TestGzipBadHeader(t *testing.T) {
	br := bufio.NewReader(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0}))
	if _, err := csvguard.NewGzip(br, 100); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Errorf("NewGzip = %v; want a gzip header error", err)
	}
	if csvguard.IsGzip(bufio.NewReader(strings.NewReader("a,b\n"))) {
		t.Error("IsGzip = true for plain text")
	}
}

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		in      string
		max     int64
		chunked bool
		out     string
		tooBig  bool
	}{
		{"abcdef", 6, false, "abcdef", false},
		{"abcdef", 4, false, "abcd", true},
		{"abcdef", 4, true, "abcd", true},
		{"abcdef", 0, false, "", true},
		{"", 0, false, "", false},
	} {
		var r io.Reader = strings.NewReader(tc.in)
		if tc.chunked {
			r = iotest.OneByteReader(r)
		}
		out, err := io.ReadAll(csvguard.NewLimit(r, tc.max))
		if string(out) != tc.out || errors.Is(err, csvguard.ErrTooLarge) != tc.tooBig {
			t.Errorf("Limit(%q, %d): %q, %v; want %q, too large %v", tc.in, tc.max, out, err, tc.out, tc.tooBig)
		}
	}
}
