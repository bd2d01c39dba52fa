package persist

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/penstock-ml/penstock/hparams"
)

// scalar is a small typed value of the manifest: a hyperparameter, or a
// scalar of a step's state. Its JSON form has exactly one member, named by
// its type, so that nothing is lost: {"int": 3}, {"uint": 18446744073709551615},
// {"float": 0.1} ("NaN", "+Inf" and "-Inf" as strings), {"bool": true},
// {"string": "l2"}, {"bytes": "<base64>"}.
type scalar struct {
	Int    *int64     `json:"int,omitempty"`
	Uint   *uint64    `json:"uint,omitempty"`
	Float  *jsonFloat `json:"float,omitempty"`
	Bool   *bool      `json:"bool,omitempty"`
	String *string    `json:"string,omitempty"`
	Bytes  *[]byte    `json:"bytes,omitempty"`
}

// jsonFloat is a float64 that JSON carries exactly, non-finite values
// included.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"NaN"`:
		*f = jsonFloat(math.NaN())
		return nil
	case `"+Inf"`:
		*f = jsonFloat(math.Inf(1))
		return nil
	case `"-Inf"`:
		*f = jsonFloat(math.Inf(-1))
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("a float is a number, \"NaN\", \"+Inf\" or \"-Inf\": %w", err)
	}
	*f = jsonFloat(v)
	return nil
}

// check reports an error unless exactly one member is set.
func (s scalar) check() error {
	n := 0
	for _, set := range []bool{s.Int != nil, s.Uint != nil, s.Float != nil, s.Bool != nil, s.String != nil, s.Bytes != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("a value has %d of the members int, uint, float, bool, string, bytes; want exactly 1", n)
	}
	return nil
}

// kind names the scalar's type.
func (s scalar) kind() string {
	switch {
	case s.Int != nil:
		return "int"
	case s.Uint != nil:
		return "uint"
	case s.Float != nil:
		return "float"
	case s.Bool != nil:
		return "bool"
	case s.String != nil:
		return "string"
	case s.Bytes != nil:
		return "bytes"
	}
	return "nothing"
}

// paramScalar returns the scalar of a hyperparameter value (see
// hparams.Type).
func paramScalar(v any) (scalar, error) {
	t, ok := hparams.TypeOf(v)
	if !ok {
		return scalar{}, fmt.Errorf("value %v (%T) is not a hyperparameter value (float64, int, bool or string)", v, v)
	}
	c, err := hparams.Convert(v, t)
	if err != nil {
		return scalar{}, err
	}
	switch x := c.(type) {
	case int:
		i := int64(x)
		return scalar{Int: &i}, nil
	case float64:
		f := jsonFloat(x)
		return scalar{Float: &f}, nil
	case bool:
		return scalar{Bool: &x}, nil
	case string:
		return scalar{String: &x}, nil
	}
	return scalar{}, fmt.Errorf("value %v (%T) is not a hyperparameter value", v, v)
}

// param returns the hyperparameter value of s: an int, float64, bool or
// string.
func (s scalar) param() (any, error) {
	switch {
	case s.Int != nil:
		if *s.Int > math.MaxInt || *s.Int < math.MinInt {
			return nil, fmt.Errorf("int %d does not fit an int", *s.Int)
		}
		return int(*s.Int), nil
	case s.Float != nil:
		return float64(*s.Float), nil
	case s.Bool != nil:
		return *s.Bool, nil
	case s.String != nil:
		return *s.String, nil
	}
	return nil, errors.New("a hyperparameter is an int, a float, a bool or a string; got " + s.kind())
}
