//go:build !linux

package gpu

import (
	"bytes"
	"runtime"
	"strconv"
)

// callerID identifies the calling goroutine: its goroutine id, read from
// the first line of its stack ("goroutine 7 [running]:"), where the
// platform gives no cheap thread id. It returns -1 where that line cannot
// be read, which no owner records.
func callerID() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b, ok := bytes.CutPrefix(b, []byte("goroutine "))
	if !ok {
		return -1
	}
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		b = b[:i]
	}
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return -1
	}
	return id
}
