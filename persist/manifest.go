package persist

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/penstock-ml/penstock/barrier"
	"github.com/penstock-ml/penstock/flow"
)

// The manifest is the JSON document at the root of a saved model
// (manifest.json). It is data only: type names that the loading program's
// Registry maps to its own constructors, hyperparameters, node settings,
// scalars, and references to blobs by their SHA-256.

// Format names the format in the manifest's "format" member.
const Format = "penstock-model"

// FormatVersion is the version of the format that this package writes;
// Load refuses a manifest of a later one. Version 2 added the manifest's
// checksum (manifest_sha256), required from version 2 on; a version-1
// manifest, which has none, is loaded without that check.
const FormatVersion = 2

// ManifestName is the manifest's name in a directory or a file.
const ManifestName = "manifest.json"

// manifest is the decoded manifest.json.
type manifest struct {
	Format  string             `json:"format"`
	Version int                `json:"format_version"`
	Root    *nodeJSON          `json:"root"`
	Blobs   map[string]blobRef `json:"blobs,omitempty"` // by SHA-256 in hex
	Extra   map[string]string  `json:"extra,omitempty"` // name → SHA-256 of its blob
	// Sum is the manifest's own checksum, its last member (see
	// sealManifest); empty while it is encoded, which seals it after.
	Sum string `json:"manifest_sha256,omitempty"`
}

// nodeJSON is one node of the saved tree.
type nodeJSON struct {
	Name     string               `json:"name,omitempty"` // "" for the root
	Type     string               `json:"type"`
	Version  int                  `json:"version"`
	Settings *settingsJSON        `json:"settings,omitempty"`
	Params   map[string]scalar    `json:"params,omitempty"`
	Scalars  map[string]scalar    `json:"scalars,omitempty"`
	Tensors  map[string]tensorRef `json:"tensors,omitempty"`
	Children []*nodeJSON          `json:"children,omitempty"`
	// Composite is true for a composite, so that one without children is
	// told from a leaf.
	Composite bool `json:"composite,omitempty"`
}

// settingsJSON is flow.NodeSettings (Pipeline defaults for a pipeline's
// own "defaults" state are a scalar, see builtinTypes).
type settingsJSON struct {
	Replicas      int    `json:"replicas,omitempty"`
	QueueCapacity *int   `json:"queue_capacity,omitempty"`
	Barrier       string `json:"barrier,omitempty"`
	FitEpochs     *int   `json:"fit_epochs,omitempty"`
}

// tensorRef is a tensor of a step's state.
type tensorRef struct {
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	Blob  string  `json:"blob"` // SHA-256 in hex
}

// blobRef describes a blob: its path in the directory or file and its
// size in bytes.
type blobRef struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// blobPath returns the path of the blob whose SHA-256 is sum; kind is
// "arrows" for a tensor, "bin" for an extra blob.
func blobPath(sum, kind string) string { return "blobs/" + sum + "." + kind }

var barrierNames = map[barrier.Kind]string{barrier.InOrder: "in_order", barrier.OutOfOrder: "out_of_order", barrier.Joiner: "joiner"}

func settingsToJSON(s flow.NodeSettings) (*settingsJSON, error) {
	var j settingsJSON
	j.Replicas = s.Replicas
	if s.HasQueueCapacity {
		j.QueueCapacity = &s.QueueCapacity
	}
	if s.HasBarrier {
		name, ok := barrierNames[s.Barrier]
		if !ok {
			return nil, fmt.Errorf("unknown barrier %v", s.Barrier)
		}
		j.Barrier = name
	}
	if s.HasFitEpochs {
		j.FitEpochs = &s.FitEpochs
	}
	if j == (settingsJSON{}) {
		return nil, nil
	}
	return &j, nil
}

func (j *settingsJSON) settings() (flow.NodeSettings, error) {
	var s flow.NodeSettings
	if j == nil {
		return s, nil
	}
	if j.Replicas < 0 {
		return s, fmt.Errorf("replicas %d, want 0 or more", j.Replicas)
	}
	s.Replicas = j.Replicas
	if j.QueueCapacity != nil {
		if *j.QueueCapacity < 0 {
			return s, fmt.Errorf("queue_capacity %d, want 0 or more", *j.QueueCapacity)
		}
		s.QueueCapacity, s.HasQueueCapacity = *j.QueueCapacity, true
	}
	if j.Barrier != "" {
		found := false
		for k, name := range barrierNames {
			if name == j.Barrier {
				s.Barrier, s.HasBarrier, found = k, true, true
			}
		}
		if !found {
			return s, fmt.Errorf("barrier %q, want in_order, out_of_order or joiner", j.Barrier)
		}
	}
	if j.FitEpochs != nil {
		if *j.FitEpochs < 0 {
			return s, fmt.Errorf("fit_epochs %d, want 0 or more", *j.FitEpochs)
		}
		s.FitEpochs, s.HasFitEpochs = *j.FitEpochs, true
	}
	return s, nil
}

// ErrFormat is wrapped by the error of a load of input that is not a
// valid saved model: a manifest that does not parse or breaks the
// format's rules, a blob that is missing, truncated or whose checksum
// does not match, a tensor that does not decode to what the manifest
// says.
var ErrFormat = errors.New("persist: invalid saved model")

// ErrNewerFormat is wrapped by the error of a load of a manifest of a
// later format version, or of a step saved by a later version of its
// type.
var ErrNewerFormat = errors.New("persist: saved by a newer version")

// ErrLimit is wrapped by the error of a load that passes one of its
// Limits.
var ErrLimit = errors.New("persist: over a limit")

// checkManifest checks m against the format and lim before anything is
// decoded or built: the format and its version, the depth and size of
// the tree, names, every blob referenced and declared, tensor types and
// shapes, the limits on sizes.
func checkManifest(m *manifest, lim Limits) error {
	if m.Format != Format {
		return fmt.Errorf("%w: format %q, want %q", ErrFormat, m.Format, Format)
	}
	if m.Version > FormatVersion {
		return fmt.Errorf("%w: format version %d; this program reads up to %d: update it", ErrNewerFormat, m.Version, FormatVersion)
	}
	if m.Version < 1 {
		return fmt.Errorf("%w: format version %d, want 1 or more", ErrFormat, m.Version)
	}
	if m.Root == nil {
		return fmt.Errorf("%w: no root step", ErrFormat)
	}
	if len(m.Blobs) > lim.MaxBlobs {
		return fmt.Errorf("%w: %d blobs, over the limit of %d (Limits.MaxBlobs)", ErrLimit, len(m.Blobs), lim.MaxBlobs)
	}
	var total int64
	for sum, b := range m.Blobs {
		if err := checkSum(sum); err != nil {
			return fmt.Errorf("%w: blob %q: %v", ErrFormat, sum, err)
		}
		if b.Path != blobPath(sum, "arrows") && b.Path != blobPath(sum, "bin") {
			return fmt.Errorf("%w: blob %s has path %q, want %q", ErrFormat, sum, b.Path, blobPath(sum, "arrows"))
		}
		if b.Size < 0 {
			return fmt.Errorf("%w: blob %s has size %d", ErrFormat, sum, b.Size)
		}
		if b.Size > lim.MaxBlobBytes {
			return fmt.Errorf("%w: blob %s has %d bytes, over the limit of %d (Limits.MaxBlobBytes)", ErrLimit, sum, b.Size, lim.MaxBlobBytes)
		}
		total += b.Size
		if total > lim.MaxTotalBytes {
			return fmt.Errorf("%w: the blobs hold more than %d bytes (Limits.MaxTotalBytes)", ErrLimit, lim.MaxTotalBytes)
		}
	}
	for name, sum := range m.Extra {
		if err := checkName("extra", name); err != nil {
			return fmt.Errorf("%w: %v", ErrFormat, err)
		}
		if _, ok := m.Blobs[sum]; !ok {
			return fmt.Errorf("%w: extra %q refers to blob %q, which is not declared", ErrFormat, name, sum)
		}
	}
	c := treeCheck{m: m, lim: lim}
	if err := c.node(m.Root, nil, 0); err != nil {
		return err
	}
	if c.decoded > lim.MaxTotalBytes {
		return fmt.Errorf("%w: the tensors hold %d bytes decoded, over the limit of %d (Limits.MaxTotalBytes)", ErrLimit, c.decoded, lim.MaxTotalBytes)
	}
	return nil
}

func checkSum(sum string) error {
	if len(sum) != 64 || strings.ToLower(sum) != sum {
		return errors.New("want 64 lower-case hex digits (a SHA-256)")
	}
	if _, err := hex.DecodeString(sum); err != nil {
		return errors.New("want 64 lower-case hex digits (a SHA-256)")
	}
	return nil
}

type treeCheck struct {
	m       *manifest
	lim     Limits
	nodes   int
	decoded int64
}

func (c *treeCheck) node(n *nodeJSON, path flow.Path, depth int) error {
	if n == nil {
		return fmt.Errorf("%w: %s: null node", ErrFormat, stepName(path))
	}
	if depth > c.lim.MaxDepth {
		return fmt.Errorf("%w: the step tree is nested deeper than %d (Limits.MaxDepth)", ErrLimit, c.lim.MaxDepth)
	}
	c.nodes++
	if c.nodes > c.lim.MaxNodes {
		return fmt.Errorf("%w: more than %d steps (Limits.MaxNodes)", ErrLimit, c.lim.MaxNodes)
	}
	where := fmt.Sprintf("%s (%s)", stepName(path), n.Type)
	if err := checkTypeName(n.Type); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFormat, stepName(path), err)
	}
	if n.Version < 1 {
		return fmt.Errorf("%w: %s: version %d, want 1 or more", ErrFormat, where, n.Version)
	}
	if depth == 0 && (n.Name != "" || n.Settings != nil) {
		return fmt.Errorf("%w: the root step has a name or settings", ErrFormat)
	}
	settings, err := n.Settings.settings()
	if err != nil {
		return fmt.Errorf("%w: %s: settings: %v", ErrFormat, where, err)
	}
	if settings.Replicas > c.lim.MaxReplicas {
		return fmt.Errorf("%w: %s: %d replicas, more than %d (Limits.MaxReplicas)", ErrLimit, where, settings.Replicas, c.lim.MaxReplicas)
	}
	queue := int64(settings.QueueCapacity)
	if q, ok := n.Scalars["queue_capacity"]; ok && n.Type == "flow.Pipeline" && q.Int != nil {
		queue = *q.Int // the pipeline's default for its stages
	}
	if queue > int64(c.lim.MaxQueueCapacity) {
		return fmt.Errorf("%w: %s: a queue of %d batches, more than %d (Limits.MaxQueueCapacity)", ErrLimit, where, queue, c.lim.MaxQueueCapacity)
	}
	for name, s := range n.Params {
		if err := s.check(); err != nil {
			return fmt.Errorf("%w: %s: parameter %q: %v", ErrFormat, where, name, err)
		}
		if _, err := s.param(); err != nil {
			return fmt.Errorf("%w: %s: parameter %q: %v", ErrFormat, where, name, err)
		}
	}
	for name, s := range n.Scalars {
		if err := checkName("state", name); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrFormat, where, err)
		}
		if err := s.check(); err != nil {
			return fmt.Errorf("%w: %s: state %q: %v", ErrFormat, where, name, err)
		}
	}
	for name, t := range n.Tensors {
		if err := checkName("state", name); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrFormat, where, err)
		}
		if _, ok := n.Scalars[name]; ok {
			return fmt.Errorf("%w: %s: state %q is both a scalar and a tensor", ErrFormat, where, name)
		}
		d := dtype(t.DType)
		if !d.valid() {
			return fmt.Errorf("%w: %s: tensor %q has dtype %q, want float32, float64, int64 or utf8", ErrFormat, where, name, t.DType)
		}
		if len(t.Shape) == 0 || len(t.Shape) > 32 {
			return fmt.Errorf("%w: %s: tensor %q has %d dimensions, want 1 to 32", ErrFormat, where, name, len(t.Shape))
		}
		if _, ok := c.m.Blobs[t.Blob]; !ok {
			return fmt.Errorf("%w: %s: tensor %q refers to blob %q, which is not declared", ErrFormat, where, name, t.Blob)
		}
		n := elements(t.Shape)
		size := n * d.width()
		if d == dtString {
			size = n * 16 // headers; the strings' bytes are bounded by MaxTensorBytes when decoded
		}
		if n < 0 || (d.width() > 0 && n > c.lim.MaxTensorBytes/d.width()) || size > c.lim.MaxTensorBytes {
			return fmt.Errorf("%w: %s: tensor %q of shape %s passes the limit of %d bytes (Limits.MaxTensorBytes)", ErrLimit, where, name, shapeString(t.Shape), c.lim.MaxTensorBytes)
		}
		c.decoded += size
		if c.decoded > c.lim.MaxTotalBytes {
			return fmt.Errorf("%w: the tensors hold more than %d bytes decoded (Limits.MaxTotalBytes)", ErrLimit, c.lim.MaxTotalBytes)
		}
	}
	if len(n.Children) > 0 && !n.Composite {
		return fmt.Errorf("%w: %s has children but is not marked composite", ErrFormat, where)
	}
	seen := map[string]bool{}
	for i, ch := range n.Children {
		if ch == nil {
			return fmt.Errorf("%w: %s: child %d is null", ErrFormat, where, i)
		}
		if ch.Name == "" || seen[ch.Name] || strings.Contains(ch.Name, flow.PathSeparator) || strings.Contains(ch.Name, flow.KeySeparator) {
			return fmt.Errorf("%w: %s: child %d has the name %q (empty, repeated or with a path separator)", ErrFormat, where, i, ch.Name)
		}
		seen[ch.Name] = true
		if err := c.node(ch, path.Child(ch.Name), depth+1); err != nil {
			return err
		}
	}
	return nil
}
