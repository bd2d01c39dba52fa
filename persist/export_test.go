package persist

// SetBeforeRename sets the hook called between writing a temporary file
// and renaming it into place, for tests that simulate a crash there; the
// returned function restores the previous hook.
func SetBeforeRename(f func(tmp, final string) error) (restore func()) {
	old := beforeRename
	beforeRename = f
	return func() { beforeRename = old }
}

// SealManifest returns the manifest b (a JSON object) with its checksum
// member, manifest_sha256, added last (what a save writes), for tests
// that edit a manifest and mean to test what comes after the checksum.
func SealManifest(b []byte) ([]byte, error) { return sealManifest(b) }
