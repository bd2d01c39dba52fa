// Package sourcetest holds the helpers that the tests of package
// minibatch and of its subpackages (minibatch/parquet) share: a deadline
// context, a generated table, draining a source, comparing rows and
// checking error texts. It is for tests only.
package sourcetest
