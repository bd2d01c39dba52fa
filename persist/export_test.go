package persist

// SetBeforeRename sets the hook called between writing a temporary file
// and renaming it into place, for tests that simulate a crash there; the
// returned function restores the previous hook.
func SetBeforeRename(f func(tmp, final string) error) (restore func()) {
	old := beforeRename
	beforeRename = f
	return func() { beforeRename = old }
}
