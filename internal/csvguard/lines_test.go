package csvguard_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/penstock-ml/penstock/internal/csvguard"
)

// readAll reads everything r passes, and its error (nil at io.EOF).
func readAll(r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	return string(b), err
}

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		max      int
		out      string // what passes, before the error
		line     int    // the error's line, 0 for none
		cause    error
		endLines int // Line() at the end, without an error
	}{
		{"lf", "a,b\n1,2\n", 10, "a,b\n1,2\n", 0, nil, 3},
		{"crlf", "a,b\r\n1,2\r\n", 10, "a,b\r\n1,2\r\n", 0, nil, 3},
		{"cr only", "a,b\r1,2\r3,4", 10, "a,b\n1,2\n3,4", 0, nil, 3},
		{"mixed", "a\r\n1\r2\n3", 10, "a\r\n1\n2\n3", 0, nil, 4},
		{"cr in quotes is data", "a\r\"x\ry\"\r", 10, "a\n\"x\ry\"\n", 0, nil, 3},
		{"lf in quotes counts a line", "a\n\"x\ny\"\n", 10, "a\n\"x\ny\"\n", 0, nil, 4},
		{"utf-8 bom dropped", "\xef\xbb\xbfa\n1\n", 10, "a\n1\n", 0, nil, 3},
		{"bom only", "\xef\xbb\xbf", 10, "", 0, nil, 1},
		{"short input", "a", 10, "a", 0, nil, 1},
		{"trailing blank lines", "a\n1\n\n\r\n\n", 10, "a\n1\n\n\r\n\n", 0, nil, 6},
		{"blank line between", "a\n1\n\n2\n", 10, "a\n1\n\n", 3, csvguard.ErrBlankLine, 0},
		{"blank lines between", "a\n1\n\n\n2\n", 10, "a\n1\n\n\n", 3, csvguard.ErrBlankLine, 0},
		{"blank crlf line between", "a\r\n1\r\n\r\n2\r\n", 10, "a\r\n1\r\n\r\n", 3, csvguard.ErrBlankLine, 0},
		{"blank cr line between", "a\r1\r\r2\r", 10, "a\n1\n\n", 3, csvguard.ErrBlankLine, 0},
		{"blank line first", "\na\n1\n", 10, "\n", 1, csvguard.ErrBlankLine, 0},
		{"blank line in quotes is data", "a\n\"x\n\ny\"\n", 10, "a\n\"x\n\ny\"\n", 0, nil, 5},
		{"nul", "a\n1\x002\n", 10, "a\n1", 2, csvguard.ErrNUL, 0},
		{"nul in quotes", "a\n\"1\x00\"\n", 10, "a\n\"1", 2, csvguard.ErrNUL, 0},
		{"utf-16le", "\xff\xfea\x00", 10, "", 1, csvguard.ErrUTF16, 0},
		{"utf-16be", "\xfe\xff\x00a", 10, "", 1, csvguard.ErrUTF16, 0},
		{"record at the bound", "a\n12345\n", 5, "a\n12345\n", 0, nil, 3},
		{"record over the bound", "a\n123456\n7\n", 5, "a\n12345", 2, csvguard.ErrRecordTooLong, 0},
		{"endless line", "a\n" + strings.Repeat("x", 100), 5, "a\n12345"[:2] + "xxxxx", 2, csvguard.ErrRecordTooLong, 0},
		{"open quote", "a\n\"1\n2\n3\n4\n", 5, "a\n\"1\n2\n", 4, csvguard.ErrRecordTooLong, 0},
		{"crlf not counted", "12345\r\n12345\r\n", 5, "12345\r\n12345\r\n", 0, nil, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunked := range []bool{false, true} {
				var r io.Reader = strings.NewReader(tc.in)
				if chunked {
					r = iotest.OneByteReader(r)
				}
				g := csvguard.NewLines(r, tc.max)
				out, err := readAll(g)
				if want := tc.out; out != want && !(chunked && crlfToLF(out) == crlfToLF(want)) {
					t.Errorf("chunked %v: passed %q; want %q", chunked, out, tc.out)
				}
				if tc.cause == nil {
					if err != nil {
						t.Errorf("chunked %v: error %v; want none", chunked, err)
					}
					if g.Line() != tc.endLines {
						t.Errorf("chunked %v: Line() = %d at the end; want %d", chunked, g.Line(), tc.endLines)
					}
					continue
				}
				var ge *csvguard.Error
				if !errors.As(err, &ge) || !errors.Is(err, tc.cause) || ge.Line != tc.line {
					t.Errorf("chunked %v: error %v; want line %d: %v", chunked, err, tc.line, tc.cause)
				}
				if _, again := g.Read(make([]byte, 8)); again != err {
					t.Errorf("chunked %v: Read after the error = %v; want the same error", chunked, again)
				}
			}
		})
	}
}

// An error of the reader below comes after the bytes before it, wrapped
// with the line.
func TestLinesReaderError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("a\n1\n2"), iotest.ErrReader(boom))
	out, err := readAll(csvguard.NewLines(r, 10))
	var ge *csvguard.Error
	if out != "a\n1\n2" || !errors.Is(err, boom) || !errors.As(err, &ge) || ge.Line != 3 {
		t.Errorf("passed %q, error %v; want %q, line 3: boom", out, err, "a\n1\n2")
	}
}

// crlfToLF is what a CSV parser makes of line breaks: Lines passes a CRLF
// split between two reads as LF.
func crlfToLF(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

// Lines gives the same bytes (up to CRLF against LF) and error whatever
// the size of the reads.
func FuzzLines(f *testing.F) {
	for _, seed := range []string{
		"a,b\n1,2\n", "a\r1\r\n2\r", "\xef\xbb\xbfa\n\"x\r\ny\"\n", "a\n\n", "a\n\nb", "\"", "a\x00",
		"1234567\n1\n", "\r\r\n\n\r", "\"\"\"\n\n\"\n",
	} {
		f.Add([]byte(seed), 6)
	}
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max <= 0 || max > 1<<20 {
			return
		}
		whole, werr := readAll(csvguard.NewLines(bytes.NewReader(data), max))
		bytewise, berr := readAll(csvguard.NewLines(iotest.OneByteReader(bytes.NewReader(data)), max))
		if crlfToLF(whole) != crlfToLF(bytewise) || (werr == nil) != (berr == nil) || (werr != nil && werr.Error() != berr.Error()) {
			t.Fatalf("whole: %q, %v; byte by byte: %q, %v", whole, werr, bytewise, berr)
		}
		if werr == nil && (bytes.IndexByte([]byte(whole), 0) >= 0) {
			t.Fatalf("passed a NUL byte: %q", whole)
		}
		if werr == nil && strings.Contains(strings.TrimRight(strings.ReplaceAll(whole, "\r\n", "\n"), "\n"), "\n\n") && !strings.Contains(whole, "\"") {
			t.Fatalf("passed a blank line between records: %q", whole)
		}
	})
}
