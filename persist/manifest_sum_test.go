package persist_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// region is a range of bytes of a tar archive and what it holds.
type region struct {
	from, to int
	kind     string // "header", "manifest", "blob", "padding", "end"
	member   string
}

// tarRegions parses the archive b (512-byte headers, octal size at 124)
// without archive/tar, so that the test does not take the reader's word
// for where the members are.
func tarRegions(t *testing.T, b []byte) []region {
	t.Helper()
	var out []region
	for off := 0; off < len(b); {
		h := b[off : off+512]
		if bytes.Equal(h, make([]byte, 512)) {
			out = append(out, region{off, len(b), "end", ""})
			break
		}
		name := string(bytes.TrimRight(h[:100], "\x00"))
		size, err := strconv.ParseInt(strings.Trim(string(h[124:136]), " \x00"), 8, 64)
		if err != nil {
			t.Fatalf("member at %d: size %q: %v", off, h[124:136], err)
		}
		kind := "blob"
		if name == persist.ManifestName {
			kind = "manifest"
		}
		data := off + 512
		end := data + int(size)
		next := data + (int(size)+511)/512*512
		out = append(out, region{off, data, "header", name}, region{data, end, kind, name})
		if next > end {
			out = append(out, region{end, next, "padding", name})
		}
		off = next
	}
	return out
}

// ignored reports whether the byte at i of region r is one that no check
// covers (see the package documentation: Format): padding, or the
// padding of the digits of a header's checksum field (bytes 148 to 155 of
// the header; only its leading zero, NUL and space can change and still
// read as the same number).
func ignored(r region, i int) bool {
	return r.kind == "padding" || (r.kind == "header" && i-r.from >= 148 && i-r.from < 156)
}

// TestFlipEveryBitOfAFile flips each bit of the manifest and the tar
// headers of a small saved model (a fitted StandardScaler and an extra
// blob, 6.5 KiB), one at a time, and each byte of the rest: every
// flip in a header, the manifest, a blob or the end-of-archive marker
// fails the load with an ErrFormat (those in the manifest with a manifest
// checksum error, before the manifest is decoded); every flip in the
// padding of a member, and the few in a header's checksum field that read
// as the same number, loads a model identical to the saved one (it saves
// to the same bytes).
func TestFlipEveryBitOfAFile(t *testing.T) {
	mem := checkedMem(t)
	orig := must[[]byte](t)(persist.Marshal(fittedScaler(t, mem), persist.WithExtra("pos", []byte("42"))))
	regions := tarRegions(t, orig)
	b := bytes.Clone(orig)
	loaded := map[string]int{} // flips that loaded, by region kind
	failed := map[string]int{}
	for _, r := range regions {
		// Every bit of the manifest and of the headers, where a load
		// parses what a flip makes; one flip a byte (all its bits) where
		// any change is the same to the load: a blob's SHA-256, the zero
		// blocks of the end, and padding (there each load succeeds, and
		// its check, a save, costs a zstd encoder).
		masks := []byte{1, 2, 4, 8, 16, 32, 64, 128}
		if r.kind == "blob" || r.kind == "end" || r.kind == "padding" {
			masks = []byte{0xff}
		}
		for i := r.from; i < r.to; i++ {
			for _, mask := range masks {
				b[i] ^= mask
				m, err := persist.Unmarshal(b, persist.WithAllocator(mem))
				b[i] ^= mask
				where := fmt.Sprintf("byte %d (%s %s, +%d) xor %#x", i, r.kind, r.member, i-r.from, mask)
				if err != nil {
					failed[r.kind]++
					if m != nil {
						t.Fatalf("%s: a model and the error %v", where, err)
					}
					if !errors.Is(err, persist.ErrFormat) {
						t.Fatalf("%s: %v; want an ErrFormat", where, err)
					}
					if r.kind == "manifest" && !strings.Contains(err.Error(), "manifest checksum") {
						t.Fatalf("%s: %v; want a manifest checksum error", where, err)
					}
					continue
				}
				loaded[r.kind]++
				if !ignored(r, i) {
					t.Fatalf("%s: loaded; want an ErrFormat", where)
				}
				again := must[[]byte](t)(persist.Marshal(m.Step, persist.WithExtra("pos", m.Extra["pos"])))
				if !bytes.Equal(again, orig) {
					t.Fatalf("%s: loaded a model that saves to other bytes than the saved one", where)
				}
			}
		}
	}
	padding := 0
	for _, r := range regions {
		if r.kind == "padding" {
			padding += r.to - r.from
		}
	}
	if loaded["padding"] != padding {
		t.Errorf("%d of %d flips of padding loaded; want all (the documentation says padding changes nothing)", loaded["padding"], padding)
	}
	for _, kind := range []string{"header", "manifest", "blob", "end"} {
		if failed[kind] == 0 {
			t.Errorf("no flip in a %s failed: the test did not reach one", kind)
		}
	}
	t.Logf("%d bytes: loaded %v, failed %v", len(orig), loaded, failed)
}

// TestScalarEditRefused is the case that the manifest checksum was added
// for: one bit of a scalar ("n": {"int": 3}, the rows a StandardScaler
// has seen) flipped to 2 in the saved bytes.
func TestScalarEditRefused(t *testing.T) {
	mem := checkedMem(t)
	b := must[[]byte](t)(persist.Marshal(fittedScaler(t, mem)))
	const from, to = "\"n\": {\n        \"int\": 3", "\"n\": {\n        \"int\": 2"
	if bytes.Count(b, []byte(from)) != 1 {
		t.Fatalf("the manifest does not hold %q once", from)
	}
	edited := bytes.Replace(b, []byte(from), []byte(to), 1)
	m, err := persist.Unmarshal(edited, persist.WithAllocator(mem))
	if err == nil {
		t.Fatalf("loaded a scaler that saw %d rows; want an error", m.Step.(*steps.StandardScaler).Count())
	}
	if !errors.Is(err, persist.ErrFormat) || !strings.Contains(err.Error(), "manifest checksum mismatch") {
		t.Fatalf("error %v; want an ErrFormat saying manifest checksum mismatch", err)
	}
	// The checksum is all that refused it (and what FuzzLoad's reseal
	// recomputes): sealed again, the edit loads.
	persist.ResealArchive(edited)
	m, err = persist.Unmarshal(edited, persist.WithAllocator(mem))
	if err != nil {
		t.Fatalf("the edit, resealed: %v; want it loaded", err)
	}
	if got := m.Step.(*steps.StandardScaler).Count(); got != 2 {
		t.Fatalf("the edit, resealed: count %d; want 2", got)
	}
}

// TestFlipEveryByteOfADirManifest flips each byte of a saved directory's
// manifest.json on disk (its low bit, as "int": 2 becomes 3; every bit is
// TestFlipEveryBitOfAFile's, through the same check), one at a time: each
// load fails with an ErrFormat that names the manifest checksum; the
// manifest restored, it loads.
func TestFlipEveryByteOfADirManifest(t *testing.T) {
	mem := checkedMem(t)
	dir := savedDir(t, fittedScaler(t, mem))
	path := filepath.Join(dir, persist.ManifestName)
	orig := must[[]byte](t)(os.ReadFile(path))
	b := bytes.Clone(orig)
	for i := range b {
		b[i] ^= 1
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		b[i] ^= 1
		m, err := persist.LoadDir(dir, persist.WithAllocator(mem))
		if err == nil {
			t.Fatalf("byte %d (%q): loaded a %T; want an error", i, orig[i], m.Step)
		}
		if !errors.Is(err, persist.ErrFormat) || !strings.Contains(err.Error(), "manifest checksum") {
			t.Fatalf("byte %d (%q): %v; want an ErrFormat naming the manifest checksum", i, orig[i], err)
		}
	}
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := persist.LoadDir(dir, persist.WithAllocator(mem)); err != nil || m.Step.(*steps.StandardScaler).Count() != 3 {
		t.Fatalf("the restored manifest: %v; want the scaler of 3 rows", err)
	}
}

// TestFlipEveryByteOfAFileManifest is TestFlipEveryBitOfAFile's manifest
// part through LoadFile, which reads the archive as a stream (one flip a
// byte: the low bit).
func TestFlipEveryByteOfAFileManifest(t *testing.T) {
	mem := checkedMem(t)
	orig := must[[]byte](t)(persist.Marshal(fittedScaler(t, mem)))
	var man region
	for _, r := range tarRegions(t, orig) {
		if r.kind == "manifest" {
			man = r
		}
	}
	path := filepath.Join(t.TempDir(), "model.pnst")
	b := bytes.Clone(orig)
	for i := man.from; i < man.to; i++ {
		b[i] ^= 1
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		b[i] ^= 1
		if _, err := persist.LoadFile(path, persist.WithAllocator(mem)); !errors.Is(err, persist.ErrFormat) || err == nil || !strings.Contains(err.Error(), "manifest checksum") {
			t.Fatalf("manifest byte %d: %v; want an ErrFormat naming the manifest checksum", i-man.from, err)
		}
	}
}

// sumMember matches the manifest's checksum member, as a save writes it.
var sumMember = regexp.MustCompile(`,\n  "manifest_sha256": "[0-9a-f]{64}"\n}$`)

// unsealed returns the manifest of dir without its checksum member, with
// its format version set to version.
func unsealed(t *testing.T, dir string, version int) string {
	t.Helper()
	m := readManifest(t, dir)
	if !sumMember.MatchString(m) {
		t.Fatalf("the manifest does not end with its checksum member: %s", m)
	}
	m = sumMember.ReplaceAllString(m, "\n}")
	const v2 = `"format_version": 2,`
	if !strings.Contains(m, v2) {
		t.Fatalf("the manifest has no %s", v2)
	}
	return strings.Replace(m, v2, fmt.Sprintf(`"format_version": %d,`, version), 1)
}

// TestManifestVersions: a version-2 manifest without its checksum is
// refused (manifest checksum missing), a version-3 one is a newer format,
// and a version-1 manifest, which had none, loads as version 1 did:
// unchecked (an edited scalar loads too, as documented).
func TestManifestVersions(t *testing.T) {
	mem := checkedMem(t)
	s := fittedScaler(t, mem)
	saved := must[[]byte](t)(persist.Marshal(s))
	load := func(t *testing.T, manifest string) (*persist.Model, error) {
		t.Helper()
		dir := savedDir(t, s)
		if err := os.WriteFile(filepath.Join(dir, persist.ManifestName), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		return persist.LoadDir(dir, persist.WithAllocator(mem))
	}
	t.Run("version 2 without its checksum", func(t *testing.T) {
		m, err := load(t, unsealed(t, savedDir(t, s), 2))
		if err == nil || m != nil {
			t.Fatalf("loaded %v; want an error", m)
		}
		if !errors.Is(err, persist.ErrFormat) || !strings.Contains(err.Error(), "manifest checksum missing") || !strings.Contains(err.Error(), "format version 2") {
			t.Fatalf("error %v; want an ErrFormat saying manifest checksum missing, of format version 2", err)
		}
	})
	t.Run("version 3", func(t *testing.T) {
		_, err := load(t, unsealed(t, savedDir(t, s), 3))
		if !errors.Is(err, persist.ErrNewerFormat) || !strings.Contains(err.Error(), "format version 3") {
			t.Fatalf("error %v; want an ErrNewerFormat naming format version 3", err)
		}
	})
	t.Run("version 1", func(t *testing.T) {
		m, err := load(t, unsealed(t, savedDir(t, s), 1))
		if err != nil {
			t.Fatal(err)
		}
		if again := must[[]byte](t)(persist.Marshal(m.Step)); !bytes.Equal(again, saved) {
			t.Errorf("a version-1 model loads to one that saves to other bytes than the original")
		}
	})
	t.Run("version 1, edited", func(t *testing.T) {
		edited := strings.Replace(unsealed(t, savedDir(t, s), 1), `"int": 3`, `"int": 2`, 1)
		m, err := load(t, edited)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Step.(*steps.StandardScaler).Count(); got != 2 {
			t.Errorf("count %d; want the edited 2 (a version-1 manifest is not checked)", got)
		}
	})
	t.Run("version 1 with a checksum, not at its end", func(t *testing.T) {
		m := unsealed(t, savedDir(t, s), 1)
		m = strings.Replace(m, "{", `{"manifest_sha256": "`+strings.Repeat("0", 64)+`",`, 1)
		_, err := load(t, m)
		if !errors.Is(err, persist.ErrFormat) || !strings.Contains(err.Error(), "manifest checksum missing") {
			t.Fatalf("error %v; want an ErrFormat saying manifest checksum missing", err)
		}
	})
	t.Run("version 1, sealed", func(t *testing.T) {
		sealed := must[[]byte](t)(persist.SealManifest([]byte(unsealed(t, savedDir(t, s), 1))))
		if _, err := load(t, string(sealed)); err != nil {
			t.Fatalf("a sealed version-1 manifest: %v; want it loaded", err)
		}
		_, err := load(t, strings.Replace(string(sealed), `"int": 3`, `"int": 2`, 1))
		if !errors.Is(err, persist.ErrFormat) || !strings.Contains(err.Error(), "manifest checksum mismatch") {
			t.Fatalf("a sealed version-1 manifest, edited: %v; want a manifest checksum mismatch", err)
		}
	})
}

// TestSameBytes: the same tree saves to the same bytes, and a directory
// holds the manifest of the file, byte for byte.
func TestSameBytes(t *testing.T) {
	mem := checkedMem(t)
	noise := must[*steps.GaussianNoise](t)(steps.NewGaussianNoise("x", 0.5, 1))
	p := must[*flow.Pipeline](t)(flow.NewPipeline([]flow.Node{flow.Named("s", fittedScaler(t, mem)), flow.Named("n", noise)}))
	first := must[[]byte](t)(persist.Marshal(p))
	second := must[[]byte](t)(persist.Marshal(p))
	if !bytes.Equal(first, second) {
		t.Fatal("two saves of the same tree differ")
	}
	var man region
	for _, r := range tarRegions(t, first) {
		if r.kind == "manifest" {
			man = r
		}
	}
	dir := savedDir(t, p)
	if got := readManifest(t, dir); got != string(first[man.from:man.to]) {
		t.Errorf("the directory's manifest differs from the file's:\n%s\nwant\n%s", got, first[man.from:man.to])
	}
}

// TestResealManifest: a saved manifest resealed is the same bytes; one
// edited (compacted, a hyperparameter changed) and resealed loads, with
// the edit; a member the format does not know is an error.
func TestResealManifest(t *testing.T) {
	mem := checkedMem(t)
	dir := savedDir(t, fittedScaler(t, mem))
	saved := readManifest(t, dir)
	if got := must[[]byte](t)(persist.ResealManifest([]byte(saved))); string(got) != saved {
		t.Fatalf("a saved manifest resealed:\n%s\nwant it unchanged:\n%s", got, saved)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(saved)); err != nil {
		t.Fatal(err)
	}
	const from, to = `"with_std":{"bool":true}`, `"with_std":{"bool":false}`
	edited := strings.Replace(compact.String(), from, to, 1)
	if edited == compact.String() {
		t.Fatalf("the manifest has no %s", from)
	}
	if err := os.WriteFile(filepath.Join(dir, persist.ManifestName), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := persist.LoadDir(dir, persist.WithAllocator(mem)); !errors.Is(err, persist.ErrFormat) || !strings.Contains(err.Error(), "manifest checksum") {
		t.Fatalf("the edit, not resealed: %v; want a manifest checksum error", err)
	}
	resealed := must[[]byte](t)(persist.ResealManifest([]byte(edited)))
	if err := os.WriteFile(filepath.Join(dir, persist.ManifestName), resealed, 0o644); err != nil {
		t.Fatal(err)
	}
	m := must[*persist.Model](t)(persist.LoadDir(dir, persist.WithAllocator(mem)))
	if got := m.Step.(*steps.StandardScaler).Params()["with_std"]; got != false {
		t.Errorf("with_std %v after the edit; want false", got)
	}
	if _, err := persist.ResealManifest([]byte(`{"format": "penstock-model", "surprise": 1}`)); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Errorf("an unknown member: %v; want an error naming it", err)
	}
}
