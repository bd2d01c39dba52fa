// Package srctest is what the tests of the daemon's sources share: a
// source's Run in its own goroutine with deadlines on everything that can
// block, the check of the rows that the tests' inputs carry, a Reporter
// that records rejections, and a checked allocator.
package srctest
