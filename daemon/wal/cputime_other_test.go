//go:build !unix

package wal

import "time"

// cpuTime is not measured here.
func cpuTime() time.Duration { return 0 }
