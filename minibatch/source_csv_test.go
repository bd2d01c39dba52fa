package minibatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	arrowcsv "github.com/apache/arrow-go/v18/arrow/csv"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/gzip"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// writeCSV writes recs with Arrow's CSV writer (header, nulls as "").
func writeCSV(t testing.TB, path string, schema *arrow.Schema, recs []arrow.RecordBatch) {
	t.Helper()
	var buf bytes.Buffer
	w := arrowcsv.NewWriter(&buf, schema, arrowcsv.WithHeader(true), arrowcsv.WithNullWriter(""))
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func gzipFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	if err := os.WriteFile(to, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// arrowReadCSV reads path with Arrow's own CSV reader and schema.
func arrowReadCSV(t *testing.T, mem memory.Allocator, path string, schema *arrow.Schema) []arrow.RecordBatch {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := arrowcsv.NewReader(f, schema, arrowcsv.WithHeader(true), arrowcsv.WithAllocator(mem),
		arrowcsv.WithNullReader(true, ""), arrowcsv.WithChunk(500))
	defer r.Release()
	var recs []arrow.RecordBatch
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	return recs
}

func nullableSchema(s *arrow.Schema) *arrow.Schema {
	fields := s.Fields()
	for i := range fields {
		fields[i].Nullable = true
	}
	return arrow.NewSchema(fields, nil)
}

func TestCSVSameAsArrow(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	schema, recs := srcTable(mem, 1000, 1000, 3)
	dir := t.TempDir()
	path := filepath.Join(dir, "data.csv")
	writeCSV(t, path, schema, recs)
	releaseAll(recs)
	gzPath := filepath.Join(dir, "data.csv.gz")
	gzipFile(t, path, gzPath)
	schema = nullableSchema(schema)
	want := arrowReadCSV(t, mem, path, schema)
	defer releaseAll(want)

	for _, p := range []string{path, gzPath} {
		src, err := minibatch.OpenCSV(p, minibatch.WithAllocator(mem), minibatch.WithLabels("y"), minibatch.WithBatchRows(128))
		if err != nil {
			t.Fatal(err)
		}
		if !src.TableSchema().Equal(schema) {
			t.Errorf("%s: inferred schema %v; want %v", p, src.TableSchema(), schema)
		}
		if !src.Replayable() {
			t.Errorf("%s: Replayable() = false; want true", p)
		}
		for pass := range 2 {
			got := drainSource(t, ctx, src)
			if len(got) != 8 || got[0].Rows() != 128 || got[7].Rows() != 1000-7*128 {
				t.Errorf("%s pass %d: %d batches; want 8 of 128 rows, the last of %d", p, pass, len(got), 1000-7*128)
			}
			sameRows(t, mem, got, want, []string{"x0", "x1", "x2", "s"}, []string{"y"})
			releaseBatches(got)
			if err := src.Rewind(); err != nil {
				t.Fatal(err)
			}
		}
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCSVReaders(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	schema, recs := srcTable(mem, 300, 300, 2)
	path := filepath.Join(t.TempDir(), "data.csv")
	writeCSV(t, path, schema, recs)
	releaseAll(recs)
	schema = nullableSchema(schema)
	want := arrowReadCSV(t, mem, path, schema)
	defer releaseAll(want)
	data, _ := os.ReadFile(path)

	// An io.ReadSeeker is replayable, and the explicit schema is used.
	src, err := minibatch.NewCSV(bytes.NewReader(data), minibatch.WithAllocator(mem), minibatch.WithSchema(schema),
		minibatch.WithInputs("x1", "x0"), minibatch.WithLabels("s", "y"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got := drainSource(t, ctx, src)
		sameRows(t, mem, got, want, []string{"x1", "x0"}, []string{"s", "y"})
		releaseBatches(got)
		if err := src.Rewind(); err != nil {
			t.Fatal(err)
		}
	}
	src.Close()

	// A plain io.Reader with fewer rows than the inference window is read
	// from the rows held for inference; it is not replayable.
	plain, err := minibatch.NewCSV(struct{ io.Reader }{bytes.NewReader(data)}, minibatch.WithAllocator(mem), minibatch.WithName("pipe"))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Replayable() {
		t.Error("Replayable() = true for a plain io.Reader")
	}
	got := drainSource(t, ctx, plain)
	sameRows(t, mem, got, want, []string{"x0", "x1", "y", "s"}, nil)
	releaseBatches(got)
	err = plain.Rewind()
	if !errors.Is(err, minibatch.ErrNotReplayable) {
		t.Errorf("Rewind() = %v; want ErrNotReplayable", err)
	}
	plain.Close()

	// More rows than the inference window, through a plain reader.
	plain, err = minibatch.NewCSV(struct{ io.Reader }{bytes.NewReader(data)}, minibatch.WithAllocator(mem), minibatch.WithInferRows(10), minibatch.WithBatchRows(7))
	if err != nil {
		t.Fatal(err)
	}
	got = drainSource(t, ctx, plain)
	sameRows(t, mem, got, want, []string{"x0", "x1", "y", "s"}, nil)
	releaseBatches(got)
	plain.Close()
}

func TestCSVNoHeader(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	in := "1,2.5,a\n3,NA,b\n5,6,\n"
	src, err := minibatch.NewCSV(strings.NewReader(in), minibatch.WithAllocator(mem), minibatch.WithHeader(false),
		minibatch.WithColumnNames("i", "f", "s"), minibatch.WithLabels("i"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := drainSource(t, ctx, src)
	defer releaseBatches(got)
	if len(got) != 1 {
		t.Fatalf("got %d batches; want 1", len(got))
	}
	if s := fmt.Sprint(got[0].X.Column(0), got[0].X.Column(1), got[0].Y.Column(0)); s != `[2.5 (null) 6] ["a" "b" (null)] [1 3 5]` {
		t.Errorf("got %s", s)
	}
	if dt := got[0].Y.Schema().Field(0).Type; dt != arrow.PrimitiveTypes.Int64 {
		t.Errorf("label type %v; want int64", dt)
	}

	// Without names: c0, c1, ….
	src2, err := minibatch.NewCSV(strings.NewReader(in), minibatch.WithAllocator(mem), minibatch.WithHeader(false))
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	if names := src2.TableSchema().Field(0).Name + " " + src2.TableSchema().Field(2).Name; names != "c0 c2" {
		t.Errorf("names %s; want c0 c2", names)
	}
}

func TestCSVBadInput(t *testing.T) {
	header := "a,b,c\n"
	good := strings.Repeat("1,2.5,x\n", 20)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int32},
		{Name: "b", Type: arrow.PrimitiveTypes.Float64},
		{Name: "c", Type: arrow.BinaryTypes.String},
	}, nil)
	for _, tc := range []struct {
		name string
		in   string
		opts []minibatch.SourceOption
		want []string
	}{
		{"ragged short", header + good + "1,2\n", nil, []string{"line 22", "has 2 fields, want 3", `"a", "b", "c"`}},
		{"ragged long", header + good + "1,2,3,4\n", nil, []string{"line 22", "has 4 fields, want 3"}},
		{"ragged in inference", header + "1,2\n", nil, []string{"line 2", "has 2 fields, want 3"}},
		{"text in float", header + good + "1,abc,x\n", []minibatch.SourceOption{minibatch.WithInferRows(5)}, []string{"line 22", `column "b"`, `cannot parse "abc" as float64`, "inferred"}},
		{"float in inferred int", header + good + "1.5,2,x\n", []minibatch.SourceOption{minibatch.WithInferRows(5)}, []string{"line 22", `column "a"`, `cannot parse "1.5" as int64`, "WithInferRows"}},
		{"schema int32 overflow", header + good + "3000000000,1,x\n", []minibatch.SourceOption{minibatch.WithSchema(schema)}, []string{"line 22", `column "a"`, `"3000000000" as int32`}},
		{"null in non-nullable", header + good + ",1,x\n", []minibatch.SourceOption{minibatch.WithSchema(schema)}, []string{"line 22", `column "a"`, "not nullable"}},
		{"bare quote", header + good + "1,2\"x,x\n", nil, []string{"line 22", `bare "`}},
		{"row too long", header + good + "1,2," + strings.Repeat("y", 200) + "\n" + good, []minibatch.SourceOption{minibatch.WithMaxRowBytes(100)}, []string{"line 22", "longer than 100 bytes", "WithMaxRowBytes"}},
		{"endless row", header + good + strings.Repeat("y", 5000), []minibatch.SourceOption{minibatch.WithMaxRowBytes(100)}, []string{"line 22", "longer than 100 bytes"}},
		{"trailing garbage", header + good + "1,2.5,x\ngarbage", nil, []string{"line 23", "has 1 fields, want 3"}},
		{"garbage after a quote", header + good + "1,2.5,\"x\"y\n", nil, []string{"line 22", `extraneous or missing " in quoted-field`}},
		{"quote open at the end", header + good + "1,2.5,\"x\n1,2,3\n", nil, []string{"line 23", "quoted field opened on line 22", `extraneous or missing "`}},
		{"quote open runs on", header + good + "1,2.5,\"x\n" + good, []minibatch.SourceOption{minibatch.WithMaxRowBytes(100)}, []string{"line 34", "longer than 100 bytes", "quote left open"}},
		{"blank line between rows", header + good + "\n" + good, nil, []string{"line 22", "blank line between records", `""`}},
		{"blank crlf line between rows", header + good + "\r\n" + good, nil, []string{"line 22", "blank line"}},
		{"blank line before the header", "\n" + header + good, nil, []string{"line 1", "blank line"}},
		{"nul byte", header + good + "1,2.5,x\x00y\n", nil, []string{"line 22", "NUL byte", "UTF-16?"}},
		{"utf-16", "\xff\xfea\x00,\x00b\x00\n\x00", nil, []string{"line 1", "UTF-16", "re-encode it as UTF-8"}},
		{"invalid utf-8 in a string", header + good + "1,2.5,x\xffy\n", nil, []string{"line 22", `column "c"`, `"x\xffy" is not valid UTF-8`}},
		{"invalid utf-8 in a string, schema", header + good + "1,2.5,\xc3\n", []minibatch.SourceOption{minibatch.WithSchema(schema)}, []string{"line 22", `column "c"`, "not valid UTF-8"}},
		{"invalid utf-8 in the header", "a,\xffb,c\n" + good, nil, []string{"line 1", "header column 2", "not valid UTF-8"}},
		{"numeric header", "1,2.5,3\n" + good, nil, []string{"line 1", "all numbers", "WithHeader(false)", "WithHeader(true)"}},
		{"numeric header, column names", "1,2.5,3\n" + good, []minibatch.SourceOption{minibatch.WithColumnNames("a", "b", "c")}, []string{"line 1", "all numbers"}},
		{"duplicate names", "a,b,a\n" + good, nil, []string{"line 1", `header columns 1 and 3 are both named "a"`}},
		{"empty duplicate names", ",,c\n" + good, nil, []string{"line 1", `header columns 1 and 2 are both named ""`}},
		{"duplicate names, numeric header asked for", "1,2,1\n" + good, []minibatch.SourceOption{minibatch.WithHeader(true)}, []string{"line 1", `columns 1 and 3 are both named "1"`}},
		{"header mismatch", "a,x,c\n" + good, []minibatch.SourceOption{minibatch.WithSchema(schema)}, []string{"line 1", `header column 2 is "x"`, `"b"`}},
		{"missing label", header + good, []minibatch.SourceOption{minibatch.WithLabels("z")}, []string{`label column "z" not found`}},
		{"empty", "", nil, []string{"empty input"}},
		{"only blank lines", "\n\n", nil, []string{"empty input"}},
		{"duplicate column names", header + good, []minibatch.SourceOption{minibatch.WithColumnNames("a", "b", "a")}, []string{`WithColumnNames: columns 1 and 3 are both named "a"`}},
		{"duplicate schema names", header + good, []minibatch.SourceOption{minibatch.WithSchema(arrow.NewSchema([]arrow.Field{
			{Name: "a", Type: arrow.PrimitiveTypes.Int32}, {Name: "b", Type: arrow.PrimitiveTypes.Int32}, {Name: "b", Type: arrow.BinaryTypes.String}}, nil))},
			[]string{`WithSchema: columns 2 and 3 are both named "b"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			path := filepath.Join(t.TempDir(), "bad.csv")
			if err := os.WriteFile(path, []byte(tc.in), 0o644); err != nil {
				t.Fatal(err)
			}
			opts := append([]minibatch.SourceOption{minibatch.WithAllocator(mem), minibatch.WithBatchRows(8)}, tc.opts...)
			src, err := minibatch.OpenCSV(path, opts...)
			var rows int64
			if err == nil {
				defer src.Close()
				ctx := srcCtx(t)
				for {
					var b flow.Batch
					b, err = src.Next(ctx)
					if err != nil {
						break
					}
					rows += b.Rows()
					b.Release()
				}
				// The error is sticky.
				if _, again := src.Next(ctx); again == nil || again.Error() != err.Error() {
					t.Errorf("Next after the error = %v; want the same error", again)
				}
			}
			wantErr(t, err, append([]string{"minibatch: csv", `"` + path + `"`}, tc.want...)...)
			// No partial batch: only whole batches before the bad one.
			if rows%8 != 0 {
				t.Errorf("read %d rows before the error; want a multiple of the batch size 8", rows)
			}
		})
	}
}

func TestCSVGzipBound(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	path := filepath.Join(dir, "big.csv")
	os.WriteFile(path, []byte("a\n"+strings.Repeat("1\n", 100000)), 0o644)
	gzipFile(t, path, path+".gz")
	src, err := minibatch.OpenCSV(path+".gz", minibatch.WithAllocator(mem), minibatch.WithMaxInputBytes(50000))
	if err == nil {
		err = nextErr(srcCtx(t), src)
		src.Close()
	}
	wantErr(t, err, `"`+path+`.gz"`, "decompressed input exceeds 50000 bytes", "WithMaxInputBytes")
}

func TestCSVCancelled(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src, err := minibatch.NewCSV(strings.NewReader("a\n1\n2\n"), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithCancel(srcCtx(t))
	cancel()
	if _, err := src.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next on a cancelled ctx = %v; want context.Canceled", err)
	}
}

// The values survive the source's Close: the batch owns its buffers.
func TestCSVBatchOutlivesSource(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src, err := minibatch.NewCSV(strings.NewReader("a,b\n1,x\n2,y\n"), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	b, err := src.Next(srcCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	if got := b.X.Column(1).(*array.String).Value(1); got != "y" {
		t.Errorf("value %q; want y", got)
	}
	b.Release()
}

// Every line ending reads the same rows: LF, CRLF, CR alone (old Mac) and a
// mix, plain and gzip-compressed, with a UTF-8 byte-order mark or not, and
// with blank lines at the end.
func TestCSVLineEndings(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	lf := "i,s\n1,a\n2,\"multi\nline\"\n3,c\n"
	for _, tc := range []struct{ name, in string }{
		{"lf", lf},
		{"crlf", strings.ReplaceAll(lf, "\n", "\r\n")},
		{"cr", "i,s\r1,a\r2,\"multi\nline\"\r3,c\r"},
		{"cr, no final line break", "i,s\r1,a\r2,\"multi\nline\"\r3,c"},
		{"mixed", "i,s\r\n1,a\r2,\"multi\nline\"\n3,c"},
		{"bom", "\xef\xbb\xbf" + lf},
		{"blank lines at the end", lf + "\n\r\n\r\n"},
	} {
		for _, compress := range []bool{false, true} {
			data := []byte(tc.in)
			if compress {
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				zw.Write(data)
				zw.Close()
				data = buf.Bytes()
			}
			src, err := minibatch.NewCSV(bytes.NewReader(data), minibatch.WithAllocator(mem), minibatch.WithLabels("i"))
			if err != nil {
				t.Fatalf("%s (gzip %v): %v", tc.name, compress, err)
			}
			got := drainSource(t, ctx, src)
			src.Close()
			var rows int64
			var s string
			for _, b := range got {
				rows += b.Rows()
				s += fmt.Sprint(b.Y.Column(0), b.X.Column(0))
			}
			releaseBatches(got)
			if want := `[1 2 3] ["a" "multi\nline" "c"]`; rows != 3 || s != want {
				t.Errorf("%s (gzip %v): %d rows %s; want 3 rows %s", tc.name, compress, rows, s, want)
			}
			if names := src.TableSchema().Field(0).Name + "," + src.TableSchema().Field(1).Name; names != "i,s" {
				t.Errorf("%s (gzip %v): columns %s; want i,s", tc.name, compress, names)
			}
		}
	}
	// Without a header, a byte-order mark does not turn the first column
	// into strings.
	src, err := minibatch.NewCSV(strings.NewReader("\xef\xbb\xbf1,2\n3,4\n"), minibatch.WithAllocator(mem), minibatch.WithHeader(false))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if dt := src.TableSchema().Field(0).Type; dt != arrow.PrimitiveTypes.Int64 {
		t.Errorf("first column after a BOM is %v; want int64", dt)
	}
}

// A one-column table whose empty value is written as an empty line (as
// Arrow's own writer does) is an error, not a lost row; written as "" it is
// a null.
func TestCSVOneColumnNulls(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := srcCtx(t)
	// The blank line is found while reading the rows for inference, or
	// after them.
	for _, infer := range []int{1, 10} {
		src, err := minibatch.NewCSV(strings.NewReader("a\n1\n\n3\n"), minibatch.WithAllocator(mem), minibatch.WithName("one"),
			minibatch.WithInferRows(infer))
		if err == nil {
			err = nextErr(ctx, src)
			src.Close()
		}
		wantErr(t, err, `"one"`, "line 3", "blank line")
	}

	src, err := minibatch.NewCSV(strings.NewReader("a\n1\n\"\"\n3\n"), minibatch.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := drainSource(t, ctx, src)
	defer releaseBatches(got)
	if len(got) != 1 || fmt.Sprint(got[0].X.Column(0)) != "[1 (null) 3]" {
		t.Errorf("got %d batches, %v; want [1 (null) 3]", len(got), got[0].X.Column(0))
	}
}

// A delimiter that cannot work is an error of the constructor, before any
// byte is read.
func TestCSVBadComma(t *testing.T) {
	for _, c := range []rune{'"', '\r', '\n', 0, utf8.RuneError, -1, 0x110000} {
		var r countingReader
		_, err := minibatch.NewCSV(&r, minibatch.WithComma(c), minibatch.WithName("bad"))
		wantErr(t, err, `"bad"`, "WithComma", "cannot be")
		if r.reads != 0 {
			t.Errorf("WithComma(%q): %d reads before the error; want none", c, r.reads)
		}
	}
	// Other delimiters work, a multi-byte one included.
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, c := range []rune{';', '\t', '|', '§'} {
		in := strings.ReplaceAll("a,b\n1,2\n", ",", string(c))
		src, err := minibatch.NewCSV(strings.NewReader(in), minibatch.WithAllocator(mem), minibatch.WithComma(c))
		if err != nil {
			t.Fatalf("WithComma(%q): %v", c, err)
		}
		if n := src.TableSchema().NumFields(); n != 2 {
			t.Errorf("WithComma(%q): %d columns; want 2", c, n)
		}
		src.Close()
	}
}

type countingReader struct{ reads int }

func (r *countingReader) Read([]byte) (int, error) {
	r.reads++
	return 0, io.EOF
}

// A gzip stream cut short, or followed by bytes that are not gzip, is an
// error after the whole batches before it, never a short table.
func TestCSVGzipBroken(t *testing.T) {
	var plain bytes.Buffer
	plain.WriteString("a,b\n")
	for i := range 5000 {
		fmt.Fprintf(&plain, "%d,%d\n", i, 2*i)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(plain.Bytes())
	zw.Close()
	full := buf.Bytes()
	var two bytes.Buffer
	two.Write(full)
	zw = gzip.NewWriter(&two)
	zw.Write([]byte("5000,10000\n"))
	zw.Close()
	for _, tc := range []struct {
		name string
		in   []byte
		rows int64 // -1: an error
		want []string
	}{
		{"whole", full, 5000, nil},
		{"two members", two.Bytes(), 5001, nil},
		{"truncated trailer", full[:len(full)-3], -1, []string{"line ", "gzip stream truncated", "unexpected EOF"}},
		{"truncated body", full[:len(full)/2], -1, []string{"line ", "gzip stream truncated"}},
		{"trailing bytes", append(bytes.Clone(full), "more"...), -1, []string{"line 5002", "trailing data after the gzip stream"}},
		{"trailing zeros", append(bytes.Clone(full), 0, 0, 0, 0), -1, []string{"line 5002", "trailing data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src, err := minibatch.NewCSV(bytes.NewReader(tc.in), minibatch.WithAllocator(mem), minibatch.WithName("z"),
				minibatch.WithBatchRows(100), minibatch.WithInferRows(10))
			var rows int64
			if err == nil {
				defer src.Close()
				ctx := srcCtx(t)
				for {
					var b flow.Batch
					if b, err = src.Next(ctx); err != nil {
						break
					}
					rows += b.Rows()
					b.Release()
				}
			}
			if tc.rows >= 0 {
				if !errors.Is(err, io.EOF) || rows != tc.rows {
					t.Errorf("%d rows, %v; want %d rows and io.EOF", rows, err, tc.rows)
				}
				return
			}
			wantErr(t, err, append([]string{`minibatch: csv "z"`}, tc.want...)...)
			// The rows before the fault are whole batches; a stream cut in
			// its trailer, or with bytes after it, still ends in the error.
			if rows%100 != 0 || rows > 5000 {
				t.Errorf("read %d rows before the error; want whole batches of 100, at most 5000", rows)
			}
		})
	}
}
