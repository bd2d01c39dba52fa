// Package httpx holds what the daemon's HTTP endpoints (ingest, predict)
// decide alike about a request.
package httpx

import "strings"

// NoCoding reports whether a Content-Encoding header value ce applies no
// coding: empty, or identity (content codings are case-insensitive, RFC
// 9110, 8.4.1).
func NoCoding(ce string) bool {
	ce = strings.TrimSpace(ce)
	return ce == "" || strings.EqualFold(ce, "identity")
}
