package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/penstock-ml/penstock/daemon/source"
)

// MaxConfigBytes bounds a configuration file.
const MaxConfigBytes = 1 << 20

// Config is the daemon's configuration: one JSON file, decoded strictly
// (see ParseConfig). Durations are strings such as "5s" or "250ms"; sizes
// are numbers of bytes.
type Config struct {
	// Pipeline is the saved pipeline (persist.SaveFile, or a directory of
	// persist.SaveDir) that the daemon starts from when no checkpoint
	// loads. Required.
	Pipeline string `json:"pipeline"`
	// Engine is "sequential" (the default) or "streaming".
	Engine string `json:"engine,omitempty"`
	// Schema is what every input must look like.
	Schema SchemaConfig `json:"schema"`
	// Sources are the inputs; at least one.
	Sources []SourceConfig `json:"sources"`
	// Checkpoint says where and how often the fitted pipeline is saved.
	Checkpoint CheckpointConfig `json:"checkpoint"`
	// PublishEvery is how often a copy of the pipeline being fitted is
	// published for predictions between checkpoints (every checkpoint
	// publishes too); 0 publishes at checkpoints only.
	PublishEvery Duration `json:"publish_every,omitempty"`
	// PublishAtStart publishes the pipeline that the daemon starts from at
	// once, for a pipeline saved already fitted. By default the first
	// version is published once it has been fitted on something (or, on a
	// restart, the checkpoint's model at once); until then predictions
	// answer 503 and /readyz reports no model.
	PublishAtStart bool `json:"publish_at_start,omitempty"`
	// Address is where the HTTP server listens (":8080" by default);
	// ":0" picks a free port, logged in the "listening" line.
	Address string `json:"address,omitempty"`
	// DrainTimeout bounds the drain after SIGTERM (default 30s).
	DrainTimeout Duration `json:"drain_timeout,omitempty"`
	// MaxPredictBytes bounds a prediction's body (default 8 MiB).
	MaxPredictBytes int64 `json:"max_predict_bytes,omitempty"`
	// Log is "json", "text" or "auto" (the default: text on a terminal).
	Log string `json:"log,omitempty"`
}

// SchemaConfig is the inputs' schema.
type SchemaConfig struct {
	Fields []FieldConfig `json:"fields"`
	Inputs []string      `json:"inputs"`
	Labels []string      `json:"labels,omitempty"`
}

// FieldConfig is one column: a name and one of the types bool, int8–int64,
// uint8–uint64, float32, float64, string.
type FieldConfig struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable,omitempty"`
}

// SourceConfig is one source. Type is "dir", "http" or "nats"; the other
// keys are those of its type. There is at most one "http" source: it
// serves the daemon's POST /v1/ingest. The checkpoint directory, a
// wal_dir and an inbox (dir) are each a directory of their own; only
// inboxes may share one.
type SourceConfig struct {
	Name string `json:"name"`
	Type string `json:"type"`

	// dir
	Dir          string   `json:"dir,omitempty"`
	Glob         string   `json:"glob,omitempty"`
	Format       string   `json:"format,omitempty"`
	Settle       Duration `json:"settle,omitempty"`
	Poll         Duration `json:"poll,omitempty"`
	BatchRows    int      `json:"batch_rows,omitempty"`
	MaxFileBytes int64    `json:"max_file_bytes,omitempty"`

	// http
	WALDir     string `json:"wal_dir,omitempty"`
	MaxBody    int64  `json:"max_body,omitempty"`
	MaxPending int64  `json:"max_pending,omitempty"`

	// nats
	URL         string `json:"url,omitempty"`
	Stream      string `json:"stream,omitempty"`
	Subject     string `json:"subject,omitempty"`
	MaxMsgBytes int    `json:"max_msg_bytes,omitempty"`
}

// CheckpointConfig says where and when checkpoints are saved.
type CheckpointConfig struct {
	Dir string `json:"dir"`
	// Every is the longest time between two checkpoints (default 30s).
	Every Duration `json:"every,omitempty"`
	// EveryBatches, if positive, checkpoints after that many batches too.
	EveryBatches int64 `json:"every_batches,omitempty"`
	// Keep is how many checkpoints are kept (default 3, at least 2).
	Keep int `json:"keep,omitempty"`
}

// Duration is a time.Duration written as a string in JSON ("5s").
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"5s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ConfigError is a configuration error naming its key ("sources[1].dir").
type ConfigError struct {
	Key string
	Err error
}

func (e *ConfigError) Error() string { return fmt.Sprintf("config: %s: %v", e.Key, e.Err) }
func (e *ConfigError) Unwrap() error { return e.Err }

// LoadConfig reads the file at path and applies overrides (see
// ParseConfig).
func LoadConfig(path string, overrides ...string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxConfigBytes+1)); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if buf.Len() > MaxConfigBytes {
		return Config{}, fmt.Errorf("config %s: over %d bytes", path, MaxConfigBytes)
	}
	c, err := ParseConfig(buf.Bytes(), overrides...)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a configuration strictly: an unknown key, a value of
// the wrong type or out of range is a *ConfigError that names the key.
// Each override is "key=value", the key dotted ("checkpoint.every",
// "sources.0.dir"), the value JSON or, if it is not valid JSON, a string;
// overrides apply in order, before validation. Defaults are filled in.
func ParseConfig(data []byte, overrides ...string) (Config, error) {
	var tree any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return Config{}, fmt.Errorf("config: not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, errors.New("config: data after the JSON object")
	}
	if err := checkDuplicates(data); err != nil {
		return Config{}, err
	}
	root, ok := tree.(map[string]any)
	if !ok {
		return Config{}, errors.New("config: want a JSON object")
	}
	for _, o := range overrides {
		if err := override(root, o); err != nil {
			return Config{}, err
		}
	}
	if err := checkKeys(reflect.TypeOf(Config{}), root, ""); err != nil {
		return Config{}, err
	}
	norm, err := json.Marshal(root)
	if err != nil {
		return Config{}, err
	}
	var c Config
	d := json.NewDecoder(bytes.NewReader(norm))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Config{}, &ConfigError{Key: te.Field, Err: fmt.Errorf("want %s, got %s", te.Type, te.Value)}
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// override applies one "key=value" to the tree.
func override(root map[string]any, o string) error {
	key, val, ok := strings.Cut(o, "=")
	if !ok || key == "" {
		return fmt.Errorf("config: override %q: want key=value", o)
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(val))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.More() {
		v = val
	}
	parts := strings.Split(key, ".")
	var cur any = root
	for i, p := range parts {
		last := i == len(parts)-1
		switch node := cur.(type) {
		case map[string]any:
			if last {
				node[p] = v
				return nil
			}
			next, ok := node[p]
			if !ok {
				next = map[string]any{}
				node[p] = next
			}
			cur = next
		case []any:
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n >= len(node) {
				return &ConfigError{Key: strings.Join(parts[:i+1], "."), Err: fmt.Errorf("no element %s (the list has %d)", p, len(node))}
			}
			if last {
				node[n] = v
				return nil
			}
			cur = node[n]
		default:
			return &ConfigError{Key: strings.Join(parts[:i], "."), Err: errors.New("not an object or a list")}
		}
	}
	return nil
}

// checkKeys refuses keys that t's JSON fields do not have, and durations
// that do not parse, naming the first by its full key.
func checkKeys(t reflect.Type, v any, prefix string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeOf(Duration(0)) { // its decoder's errors name no key
		str, ok := v.(string)
		if !ok {
			return &ConfigError{Key: prefix, Err: fmt.Errorf("want a duration string such as \"5s\", got %v", v)}
		}
		if _, err := time.ParseDuration(str); err != nil {
			return &ConfigError{Key: prefix, Err: err}
		}
		return nil
	}
	if err := checkScalar(t, v, prefix); err != nil {
		return err
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil // the decoder reports the type
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				return &ConfigError{Key: join(prefix, k), Err: errors.New("unknown key")}
			}
			if err := checkKeys(ft, m[k], join(prefix, k)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return nil
		}
		for i, e := range l {
			if err := checkKeys(t.Elem(), e, fmt.Sprintf("%s[%d]", prefix, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkScalar refuses a JSON value of the wrong type or out of the range
// of t, a scalar field's type, naming the key: the decoder's own errors
// name a key without its list indexes ("sources.batch_rows"). null is
// left to the decoder (it leaves the field zero).
func checkScalar(t reflect.Type, v any, key string) error {
	if v == nil {
		return nil
	}
	want := ""
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			want = "a string"
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			want = "true or false"
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			want = "an integer"
		} else if _, err := strconv.ParseInt(n.String(), 10, t.Bits()); err != nil {
			return &ConfigError{Key: key, Err: fmt.Errorf("want an integer of %d bits, got %s", t.Bits(), n)}
		}
	case reflect.Struct:
		if _, ok := v.(map[string]any); !ok {
			want = "an object"
		}
	case reflect.Slice:
		if _, ok := v.([]any); !ok {
			want = "a list"
		}
	}
	if want != "" {
		return &ConfigError{Key: key, Err: fmt.Errorf("want %s, got %s", want, jsonKind(v))}
	}
	return nil
}

func jsonKind(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case json.Number:
		return "number " + v.String()
	case bool:
		return strconv.FormatBool(v)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprint(v)
}

// checkDuplicates refuses an object that gives a key twice (the decoder
// would keep the last silently), naming it. data is valid JSON.
func checkDuplicates(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		key   string          // the full key of this object or list
		seen  map[string]bool // an object's keys; nil for a list
		index int             // a list's next element
		next  string          // an object's key whose value comes next
		value bool            // next is read, its value not yet
	}
	var stack []*frame
	// elem is the full key of the value that starts now.
	elem := func() string {
		if len(stack) == 0 {
			return ""
		}
		f := stack[len(stack)-1]
		if f.seen == nil {
			f.index++
			return fmt.Sprintf("%s[%d]", f.key, f.index-1)
		}
		return join(f.key, f.next)
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("config: not JSON: %w", err)
		}
		if len(stack) > 0 {
			if f := stack[len(stack)-1]; f.seen != nil && !f.value {
				if k, ok := tok.(string); ok {
					if f.seen[k] {
						return &ConfigError{Key: join(f.key, k), Err: errors.New("given twice")}
					}
					f.seen[k] = true
					f.next, f.value = k, true
					continue
				}
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{key: elem(), seen: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{key: elem()})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			elem()
		}
		if len(stack) > 0 {
			stack[len(stack)-1].value = false
		}
	}
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func (c *Config) defaults() {
	if c.Engine == "" {
		c.Engine = "sequential"
	}
	if c.Address == "" {
		c.Address = ":8080"
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = Duration(30 * time.Second)
	}
	if c.MaxPredictBytes == 0 {
		c.MaxPredictBytes = 8 << 20
	}
	if c.Log == "" {
		c.Log = "auto"
	}
	if c.Checkpoint.Every == 0 {
		c.Checkpoint.Every = Duration(30 * time.Second)
	}
	if c.Checkpoint.Keep == 0 {
		c.Checkpoint.Keep = 3
	}
}

// Validate checks ranges and references; each error names its key.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Key: key, Err: fmt.Errorf(format, args...)}
	}
	if c.Pipeline == "" {
		return bad("pipeline", "required: the saved pipeline to start from")
	}
	if c.Engine != "sequential" && c.Engine != "streaming" {
		return bad("engine", "want \"sequential\" or \"streaming\", got %q", c.Engine)
	}
	switch c.Log {
	case "json", "text", "auto":
	default:
		return bad("log", "want \"json\", \"text\" or \"auto\", got %q", c.Log)
	}
	if _, err := c.Schema.schema(); err != nil {
		return err
	}
	if len(c.Sources) == 0 {
		return bad("sources", "at least one source is required")
	}
	names := map[string]bool{}
	httpSource := ""
	for i, s := range c.Sources {
		key := fmt.Sprintf("sources[%d]", i)
		if s.Name == "" {
			return bad(key+".name", "required")
		}
		if names[s.Name] {
			return bad(key+".name", "%q is the name of another source", s.Name)
		}
		names[s.Name] = true
		if err := s.validate(key); err != nil {
			return err
		}
		if s.Type == "http" {
			if httpSource != "" {
				// Only one can serve POST /v1/ingest: this one would get nothing.
				return bad(key+".type", "a second \"http\" source (after %q): the daemon has one POST /v1/ingest", httpSource)
			}
			httpSource = s.Name
		}
	}
	if c.Checkpoint.Dir == "" {
		return bad("checkpoint.dir", "required")
	}
	if err := c.checkDirs(); err != nil {
		return err
	}
	if c.Checkpoint.Every.D() < 10*time.Millisecond {
		return bad("checkpoint.every", "want at least 10ms, got %v", c.Checkpoint.Every.D())
	}
	if c.Checkpoint.EveryBatches < 0 {
		return bad("checkpoint.every_batches", "want ≥ 0, got %d", c.Checkpoint.EveryBatches)
	}
	if c.Checkpoint.Keep < 2 || c.Checkpoint.Keep > 1000 {
		return bad("checkpoint.keep", "want 2 to 1000 (the previous checkpoint is the fallback), got %d", c.Checkpoint.Keep)
	}
	if c.PublishEvery < 0 || (c.PublishEvery > 0 && c.PublishEvery.D() < 10*time.Millisecond) {
		return bad("publish_every", "want 0 or at least 10ms, got %v", c.PublishEvery.D())
	}
	if c.DrainTimeout.D() < 100*time.Millisecond || c.DrainTimeout.D() > time.Hour {
		return bad("drain_timeout", "want 100ms to 1h, got %v", c.DrainTimeout.D())
	}
	if c.MaxPredictBytes < 1024 || c.MaxPredictBytes > 1<<30 {
		return bad("max_predict_bytes", "want 1 KiB to 1 GiB, got %d", c.MaxPredictBytes)
	}
	return nil
}

// checkDirs refuses a directory shared by the checkpoints, a write-ahead
// log or an inbox, where one would take the others' files: an inbox's
// source would reject (move away) the checkpoints or segments it finds.
// Directory sources may share an inbox (their globs tell their files
// apart).
func (c *Config) checkDirs() error {
	type use struct{ key, kind string }
	seen := map[string]use{filepath.Clean(c.Checkpoint.Dir): {"checkpoint.dir", "checkpoints"}}
	for i, s := range c.Sources {
		var u use
		var dir string
		switch s.Type {
		case "dir":
			dir, u = s.Dir, use{fmt.Sprintf("sources[%d].dir", i), "inbox"}
		case "http":
			dir, u = s.WALDir, use{fmt.Sprintf("sources[%d].wal_dir", i), "write-ahead log"}
		default:
			continue
		}
		dir = filepath.Clean(dir)
		if prev, ok := seen[dir]; ok && !(prev.kind == "inbox" && u.kind == "inbox") {
			return &ConfigError{Key: u.key, Err: fmt.Errorf("%q is also %s (the %s): each needs a directory of its own", dir, prev.key, prev.kind)}
		}
		seen[dir] = u
	}
	return nil
}

func (s SourceConfig) validate(key string) error {
	bad := func(k, format string, args ...any) error {
		return &ConfigError{Key: key + "." + k, Err: fmt.Errorf(format, args...)}
	}
	// keys of the other types must not be set
	has := map[string]bool{
		"dir": s.Dir != "", "glob": s.Glob != "", "format": s.Format != "", "settle": s.Settle != 0,
		"poll": s.Poll != 0, "batch_rows": s.BatchRows != 0, "max_file_bytes": s.MaxFileBytes != 0,
		"wal_dir": s.WALDir != "", "max_body": s.MaxBody != 0, "max_pending": s.MaxPending != 0,
		"url": s.URL != "", "stream": s.Stream != "", "subject": s.Subject != "", "max_msg_bytes": s.MaxMsgBytes != 0,
	}
	allowed := map[string][]string{
		"dir":  {"dir", "glob", "format", "settle", "poll", "batch_rows", "max_file_bytes"},
		"http": {"wal_dir", "max_body", "max_pending"},
		"nats": {"url", "stream", "subject", "max_msg_bytes"},
	}
	keys, ok := allowed[s.Type]
	if !ok {
		return bad("type", "want \"dir\", \"http\" or \"nats\", got %q", s.Type)
	}
	for k, set := range has {
		if set && !slices.Contains(keys, k) {
			return bad(k, "not a key of a %q source", s.Type)
		}
	}
	switch s.Type {
	case "dir":
		if s.Dir == "" {
			return bad("dir", "required")
		}
		switch s.Format {
		case "", "ipc", "csv", "parquet":
		default:
			return bad("format", "want \"ipc\", \"csv\", \"parquet\" or empty (by extension), got %q", s.Format)
		}
		if s.Settle.D() > time.Hour {
			return bad("settle", "want at most 1h (negative: no wait), got %v", s.Settle.D())
		}
		if s.Poll < 0 || (s.Poll != 0 && s.Poll.D() < time.Millisecond) {
			return bad("poll", "want at least 1ms, got %v", s.Poll.D())
		}
		if s.BatchRows < 0 || s.BatchRows > 1<<24 {
			return bad("batch_rows", "want 1 to %d, got %d", 1<<24, s.BatchRows)
		}
		if s.MaxFileBytes < 0 {
			return bad("max_file_bytes", "want ≥ 0, got %d", s.MaxFileBytes)
		}
	case "http":
		if s.WALDir == "" {
			return bad("wal_dir", "required")
		}
		if s.MaxBody < 0 || s.MaxBody > 1<<30 {
			return bad("max_body", "want 0 (the default) to 1 GiB, got %d", s.MaxBody)
		}
		if s.MaxPending < 0 {
			return bad("max_pending", "want ≥ 0, got %d", s.MaxPending)
		}
	case "nats":
		if s.URL == "" {
			return bad("url", "required")
		}
		if s.Stream == "" && s.Subject == "" {
			return bad("stream", "a stream (JetStream, resumed exactly) or a subject (core NATS, at most once) is required")
		}
		if s.MaxMsgBytes < 0 {
			return bad("max_msg_bytes", "want ≥ 0, got %d", s.MaxMsgBytes)
		}
	}
	return nil
}

var fieldTypes = map[string]arrow.DataType{
	"bool": arrow.FixedWidthTypes.Boolean,
	"int8": arrow.PrimitiveTypes.Int8, "int16": arrow.PrimitiveTypes.Int16,
	"int32": arrow.PrimitiveTypes.Int32, "int64": arrow.PrimitiveTypes.Int64,
	"uint8": arrow.PrimitiveTypes.Uint8, "uint16": arrow.PrimitiveTypes.Uint16,
	"uint32": arrow.PrimitiveTypes.Uint32, "uint64": arrow.PrimitiveTypes.Uint64,
	"float32": arrow.PrimitiveTypes.Float32, "float64": arrow.PrimitiveTypes.Float64,
	"string": arrow.BinaryTypes.String,
}

// schema builds the source.Schema, naming the key of any error.
func (s SchemaConfig) schema() (source.Schema, error) {
	if len(s.Fields) == 0 {
		return source.Schema{}, &ConfigError{Key: "schema.fields", Err: errors.New("at least one field is required")}
	}
	fields := make([]arrow.Field, len(s.Fields))
	for i, f := range s.Fields {
		key := fmt.Sprintf("schema.fields[%d]", i)
		if f.Name == "" {
			return source.Schema{}, &ConfigError{Key: key + ".name", Err: errors.New("required")}
		}
		t, ok := fieldTypes[f.Type]
		if !ok {
			return source.Schema{}, &ConfigError{Key: key + ".type", Err: fmt.Errorf("unknown type %q", f.Type)}
		}
		fields[i] = arrow.Field{Name: f.Name, Type: t, Nullable: f.Nullable}
	}
	sc := source.Schema{Fields: arrow.NewSchema(fields, nil), Inputs: s.Inputs, Labels: s.Labels}
	if err := sc.Validate(); err != nil {
		return source.Schema{}, &ConfigError{Key: "schema", Err: err}
	}
	return sc, nil
}

// InputSchema returns the configured schema (Validate has checked it).
func (c *Config) InputSchema() source.Schema {
	s, _ := c.Schema.schema()
	return s
}
