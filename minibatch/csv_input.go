package minibatch

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/penstock-ml/penstock/internal/csvguard"
)

// csvInput is one pass over the input: the file or reader, the gzip layer,
// the guard of the lines and the CSV reader.
type csvInput struct {
	file  *os.File
	gz    *csvguard.Gzip
	lines *csvguard.Lines
	csv   *csv.Reader
}

func (in *csvInput) close() error {
	var err error
	if in.gz != nil {
		err = in.gz.Close()
	}
	if in.file != nil {
		if cerr := in.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// csvBufferBytes is the size of the read buffers, before and after the
// guard of the lines.
const csvBufferBytes = 64 << 10

// openPass opens the input for a new pass, without reading a record.
func (s *CSVSource) openPass() error {
	in := &csvInput{}
	var raw io.Reader
	if s.path != "" {
		f, err := os.Open(s.path)
		if err != nil {
			return fmt.Errorf("minibatch: csv: %w", err)
		}
		in.file, raw = f, f
	} else {
		raw = s.r
	}
	br := bufio.NewReaderSize(raw, csvBufferBytes)
	var body io.Reader = br
	if csvguard.IsGzip(br) {
		gz, err := csvguard.NewGzip(br, s.cfg.maxInputBytes)
		if err != nil {
			in.close()
			return s.errorf("%w", err)
		}
		in.gz, body = gz, gz
	}
	in.lines = csvguard.NewLines(body, s.cfg.maxRowBytes)
	// encoding/csv keeps a *bufio.Reader of at least its default size.
	c := csv.NewReader(bufio.NewReaderSize(in.lines, csvBufferBytes))
	c.Comma = s.cfg.comma
	c.ReuseRecord = true
	c.FieldsPerRecord = 0
	if s.cols != nil {
		c.FieldsPerRecord = len(s.cols)
	}
	in.csv = c
	s.in = in
	s.seq, s.err, s.done = 0, nil, false
	return nil
}

// read reads the next record and its 1-based line; it returns io.EOF at the
// end, and otherwise an error that names the line.
func (s *CSVSource) read() ([]string, int, error) {
	rec, err := s.in.csv.Read()
	if err == nil {
		line, _ := s.in.csv.FieldPos(0)
		return rec, line, nil
	}
	if err == io.EOF {
		return nil, 0, io.EOF
	}
	var ge *csvguard.Error
	if errors.As(err, &ge) {
		return nil, 0, s.guardError(ge)
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			return nil, 0, s.raggedError(pe.StartLine, len(rec), s.in.csv.FieldsPerRecord)
		}
		if errors.Is(pe.Err, csv.ErrQuote) && pe.Line > pe.StartLine {
			return nil, 0, s.errorf("line %d, byte %d of the line: %w (the quoted field opened on line %d)", pe.Line, pe.Column, pe.Err, pe.StartLine)
		}
		return nil, 0, s.errorf("line %d, byte %d of the line: %w", pe.Line, pe.Column, pe.Err)
	}
	return nil, 0, s.errorf("line %d: %w", s.in.lines.Line(), err)
}

// guardError says what a guard of the input found, and what to do.
func (s *CSVSource) guardError(ge *csvguard.Error) error {
	switch {
	case errors.Is(ge, csvguard.ErrRecordTooLong):
		return s.errorf("line %d: %w: longer than %d bytes (WithMaxRowBytes; a quote left open also makes a record run on)",
			ge.Line, ge.Err, s.cfg.maxRowBytes)
	case errors.Is(ge, csvguard.ErrTooLarge):
		return s.errorf("line %d: decompressed input exceeds %d bytes (WithMaxInputBytes): %w", ge.Line, s.cfg.maxInputBytes, ge.Err)
	case errors.Is(ge, csvguard.ErrBlankLine):
		return s.errorf("line %d: %w: a blank line is not a row (write an empty value of a one-column table as \"\")", ge.Line, ge.Err)
	case errors.Is(ge, csvguard.ErrNUL):
		return s.errorf("line %d: %w: the input is binary, or text that is not UTF-8 (UTF-16?)", ge.Line, ge.Err)
	case errors.Is(ge, csvguard.ErrUTF16):
		return s.errorf("line %d: %w: the input is UTF-16 text; re-encode it as UTF-8", ge.Line, ge.Err)
	}
	return s.errorf("%w", ge)
}

func (s *CSVSource) raggedError(line, got, want int) error {
	cols := ""
	if s.names != nil {
		cols = " (columns " + quoteList(s.names) + ")"
	}
	return s.errorf("line %d: has %d fields, want %d%s", line, got, want, cols)
}
