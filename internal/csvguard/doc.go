// Package csvguard checks and bounds the bytes of a CSV table before a CSV
// parser (encoding/csv) sees them, so that malformed or hostile input is an
// error with a line number instead of lost rows or unbounded memory.
//
// Three readers, each an io.Reader that a parser reads through:
//
//   - Lines bounds the length of one record (a line, or the lines of a
//     record whose quoted field spans lines), counts lines, accepts LF, CRLF
//     and CR-only (old Mac) line endings, drops a UTF-8 byte-order mark, and
//     rejects NUL bytes, a UTF-16 byte-order mark and blank lines between
//     records (blank lines at the end of the input are allowed).
//   - Limit fails once more than a given number of bytes have been read.
//   - Gzip decompresses a gzip stream (one member or several, concatenated),
//     bounded by a Limit, and tells a truncated stream and trailing bytes
//     that are not gzip apart, rather than reporting both as
//     io.ErrUnexpectedEOF.
//
// Errors: Lines returns *Error, which carries the 1-based line and wraps the
// cause: one of this package's sentinel errors (ErrRecordTooLong, ErrNUL,
// ErrUTF16, ErrBlankLine) or the error of the reader below it (ErrTooLarge,
// ErrTruncated, ErrTrailingData from Gzip, an I/O error). Test with
// errors.Is and errors.As. Every error is sticky: later reads return it
// again.
//
// Cost: Lines passes a chunk with no quote, CR or NUL byte after a few
// vectorised scans (bytes.IndexByte, bytes.Count); other chunks cost one
// loop over their bytes. It rewrites CR-only line endings to LF in place and
// allocates nothing per read. None of the readers is safe for concurrent
// use; none starts a goroutine.
package csvguard
