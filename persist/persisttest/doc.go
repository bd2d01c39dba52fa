// Package persisttest helps the tests of step packages check how a load
// treats a saved model that was edited: ReplaceInManifest changes the
// manifest of a SaveDir directory and seals it again, so that the load
// gets past the manifest's checksum to the step's own checks.
package persisttest
