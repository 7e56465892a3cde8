package config

import (
	"encoding"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// envPrefix starts every environment variable whipgate reads.
const envPrefix = "WHIPGATE_"

// EnvConfigFile is the variable that names the config file when the
// command line gives none (-config).
const EnvConfigFile = envPrefix + "CONFIG"

// envVar is one setting the environment can give: a scalar or a list of
// scalars somewhere in Config.
type envVar struct {
	name string // WHIPGATE_WEBRTC_UDP_LISTEN
	key  string // webrtc.udp_listen, the YAML key path
	// index leads from Config to the field, as reflect.Value.FieldByIndex,
	// except that a nil section pointer on the way is allocated.
	index []int
}

// envName derives a variable's name from a YAML key path, so that nobody
// has to keep a list: tls.mode → WHIPGATE_TLS_MODE.
func envName(keys []string) string {
	return envPrefix + strings.ToUpper(strings.Join(keys, "_"))
}

// envAliases are shorter names some settings also answer to, as the flags
// do (-udp). A name here must not be a derived one (a test checks).
func envAliases() map[string]string {
	return map[string]string{envPrefix + "UDP_LISTEN": "webrtc.udp_listen"}
}

// envVars lists every variable: one per settable field of Config, found
// by walking its yaml tags (inline structs flatten into their parent),
// then the aliases. Maps (streams) and lists of structs (egress, layers,
// ice_servers) have no variable: they only come from the config file.
func envVars() []envVar {
	var out []envVar
	walkEnvVars(reflect.TypeFor[Config](), nil, nil, &out)
	aliases := envAliases()
	for _, name := range slices.Sorted(maps.Keys(aliases)) {
		for _, v := range out {
			if v.key == aliases[name] {
				out = append(out, envVar{name: name, key: v.key, index: v.index})
				break
			}
		}
	}
	return out
}

func walkEnvVars(t reflect.Type, keys []string, index []int, out *[]envVar) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		idx := append(slices.Clone(index), i)
		if slices.Contains(strings.Split(opts, ","), "inline") {
			if f.Type.Kind() == reflect.Struct {
				walkEnvVars(f.Type, keys, idx, out)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // as yaml.v3 does
		}
		k := append(slices.Clone(keys), name)
		switch ft := f.Type; {
		case envSettable(ft):
			*out = append(*out, envVar{name: envName(k), key: strings.Join(k, "."), index: idx})
		case ft.Kind() == reflect.Struct:
			walkEnvVars(ft, k, idx, out)
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			walkEnvVars(ft.Elem(), k, idx, out)
		}
	}
}

// envSettable reports whether one string can set a field of type t: a
// scalar (string, bool, number, duration, or a type that unmarshals text),
// a pointer to one, or a list of them.
func envSettable(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return true
	}
	switch t.Kind() {
	case reflect.Pointer:
		return t.Elem().Kind() != reflect.Slice && envSettable(t.Elem())
	case reflect.Slice:
		e := t.Elem()
		return e.Kind() != reflect.Slice && e.Kind() != reflect.Pointer && envSettable(e)
	}
	return envScalar(t.Kind())
}

func envScalar(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// ApplyEnv sets every field whose WHIPGATE_* variable getenv returns
// non-empty (an empty variable counts as unset). A variable under a
// section the config leaves out (hwaccel, test_source) adds the section,
// as the key would in the file. A value that does not parse is an error
// naming the variable.
func ApplyEnv(c *Config, getenv func(string) string) error {
	root := reflect.ValueOf(c).Elem()
	setBy := map[string]string{} // key → the variable that set it
	var errs []error
	vars := envVars()
	for _, v := range vars {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		if other, ok := setBy[v.key]; ok {
			errs = append(errs, fmt.Errorf("%s and %s are both set (both are %s); give one", other, v.name, v.key))
			continue
		}
		if err := setEnvValue(fieldByIndexAlloc(root, v.index), s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.name, err))
			continue
		}
		setBy[v.key] = v.name
	}
	// A key and the same key with _file are one secret: a variable for
	// either replaces both from the file below (WHIPGATE_API_TOKEN over the
	// file's api_token_file), and setting both variables is an error.
	byKey := map[string]envVar{}
	for _, v := range vars {
		if _, ok := byKey[v.key]; !ok {
			byKey[v.key] = v
		}
	}
	for _, v := range vars {
		if setBy[v.key] != v.name {
			continue
		}
		partner, isFile := strings.CutSuffix(v.key, "_file")
		if !isFile {
			partner = v.key + "_file"
		}
		p, ok := byKey[partner]
		if !ok {
			continue
		}
		if other, both := setBy[partner]; both {
			if isFile {
				errs = append(errs, fmt.Errorf("%s and %s are both set; give one", other, v.name))
			}
			continue
		}
		fieldByIndexAlloc(root, p.index).SetZero()
	}
	return errors.Join(errs...)
}

// fieldByIndexAlloc is v.FieldByIndex(index), allocating nil struct
// pointers on the way.
func fieldByIndexAlloc(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// setEnvValue parses s into v: lists are comma-separated (spaces around
// items trimmed, empty items dropped), durations are Go durations ("2s").
func setEnvValue(v reflect.Value, s string) error {
	if tu, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok && v.Kind() != reflect.Pointer {
		return tu.UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := setEnvValue(p.Elem(), s); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Slice:
		list := reflect.MakeSlice(v.Type(), 0, strings.Count(s, ",")+1)
		for item := range strings.SplitSeq(s, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			if err := setEnvValue(e, item); err != nil {
				return err
			}
			list = reflect.Append(list, e)
		}
		v.Set(list)
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("%q is not a duration such as 2s or 500ms", s)
			}
			v.SetInt(int64(d))
			return nil
		}
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not an integer (%d bits)", s, v.Type().Bits())
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a non-negative integer (%d bits)", s, v.Type().Bits())
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("a %s cannot be set from the environment", v.Type())
	}
	return nil
}
