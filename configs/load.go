package configs

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	stdmaps "maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/knadh/koanf/maps"
	kjson "github.com/knadh/koanf/parsers/json"
	ktoml "github.com/knadh/koanf/parsers/toml/v2"
	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
	toml "github.com/pelletier/go-toml/v2"
)

//go:embed default.yaml
var defaultYAML []byte

// EnvPrefix starts every environment variable that Load reads.
const EnvPrefix = "SIGNET_"

// delim is koanf's key-path delimiter. Map keys such as connect_to's
// "s3.us-east-1.amazonaws.com:80" contain dots, and a NUL cannot occur in
// any key that passes validation, so no key is ever split by accident
// (koanf's usual "." would split those keys wherever it flattens or
// unflattens a path).
const delim = "\x00"

// Formats accepted by LoadBytes and Render.
const (
	FormatYAML = "yaml"
	FormatTOML = "toml"
	FormatJSON = "json"
)

// LoadOptions says where Load finds each layer. Nothing is read from the
// process unless it is passed in here.
type LoadOptions struct {
	// File is a config file; its format comes from its extension
	// (.yaml, .yml, .toml, .json). Empty means no file.
	File string
	// Environ is the environment as "KEY=value" (os.Environ()). Variables
	// starting with SIGNET_ are config keys; HOME and XDG_STATE_HOME
	// resolve an empty state_dir.
	Environ []string
	// IgnoreEnv names SIGNET_ variables that belong to the caller rather
	// than to the config (for example "SIGNET_CONFIG"), so they are not
	// rejected as unknown keys.
	IgnoreEnv []string
	// Overrides are dotted keys ("listen", "log.level") set by command-line
	// flags. The flag name given in errors is the key with "." and "_"
	// turned into "-": log.level is "--log-level".
	Overrides map[string]string
}

// layer is one source of values, kept separately so that an error can say
// which source set the key it is about.
type layer struct {
	origin string
	values map[string]any
}

// Load merges the embedded default, opts.File, the SIGNET_* environment and
// opts.Overrides (later wins), decodes strictly, fills defaults, resolves
// state_dir and validates. Any error is an Errors.
func Load(opts LoadOptions) (*Config, error) {
	layers, errs := fileLayers(opts.File)
	envLayers, envErrs := environLayers(opts.Environ, opts.IgnoreEnv)
	flagLayers, flagErrs := overrideLayers(opts.Overrides)
	errs = append(errs, envErrs...)
	errs = append(errs, flagErrs...)
	if len(errs) > 0 {
		return nil, errs
	}
	layers = append(layers, envLayers...)
	layers = append(layers, flagLayers...)
	return build(layers, opts.Environ)
}

// LoadBytes loads data in format ("yaml", "toml" or "json") over the
// embedded default. It reads no environment, so data must set state_dir.
func LoadBytes(data []byte, format string) (*Config, error) {
	def, err := parseLayer(defaultYAML, FormatYAML, "default")
	if err != nil {
		return nil, Errors{err}
	}
	l, err := parseLayer(data, format, "input")
	if err != nil {
		return nil, Errors{err}
	}
	return build([]layer{def, l}, nil)
}

func fileLayers(file string) ([]layer, Errors) {
	def, err := parseLayer(defaultYAML, FormatYAML, "default")
	if err != nil {
		return nil, Errors{err}
	}
	if file == "" {
		return []layer{def}, nil
	}
	origin := "file " + file
	format, ok := formatOf(file)
	if !ok {
		return nil, Errors{{Origin: origin, Problem: "has an unknown format", Accepted: ".yaml, .yml, .toml, .json"}}
	}
	data, rerr := os.ReadFile(file)
	if rerr != nil {
		if pe, ok := errors.AsType[*fs.PathError](rerr); ok {
			rerr = pe.Err
		}
		return nil, Errors{{Origin: origin, Problem: "cannot be read: " + rerr.Error()}}
	}
	l, err := parseLayer(data, format, origin)
	if err != nil {
		return nil, Errors{err}
	}
	return []layer{def, l}, nil
}

func formatOf(file string) (string, bool) {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".yaml", ".yml":
		return FormatYAML, true
	case ".toml":
		return FormatTOML, true
	case ".json":
		return FormatJSON, true
	}
	return "", false
}

// parseLayer parses data with koanf's parser for format. The error names
// the line where the parser reports one.
func parseLayer(data []byte, format, origin string) (layer, *Error) {
	var (
		m   map[string]any
		err error
	)
	switch format {
	case FormatYAML:
		m, err = kyaml.Parser().Unmarshal(data)
	case FormatTOML:
		m, err = ktoml.Parser().Unmarshal(data)
	case FormatJSON:
		m, err = kjson.Parser().Unmarshal(data)
	default:
		return layer{}, &Error{Origin: origin, Value: format, Problem: "is not a known format", Accepted: "yaml, toml, json"}
	}
	if err != nil {
		return layer{}, &Error{Origin: origin, Problem: "is not valid " + strings.ToUpper(format) + ": " + parseProblem(err, data)}
	}
	if m == nil {
		m = map[string]any{}
	}
	maps.IntfaceKeysToStrings(m)
	return layer{origin: origin, values: m}, nil
}

// parseProblem puts the line number first where the parser knows it.
// yaml.v3 already writes "yaml: line N: ...".
func parseProblem(err error, data []byte) string {
	if de, ok := errors.AsType[*toml.DecodeError](err); ok {
		row, col := de.Position()
		return fmt.Sprintf("line %d, column %d: %s", row, col, de.Error())
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("line %d: %s", lineAt(data, se.Offset), se.Error())
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("line %d: %s", lineAt(data, te.Offset), "the top level must be an object")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

func lineAt(data []byte, offset int64) int {
	offset = min(max(offset, 0), int64(len(data)))
	return 1 + strings.Count(string(data[:offset]), "\n")
}

// environLayers turns each SIGNET_ variable into its own layer so errors
// can name the variable. The name after the prefix is lowercased and "__"
// separates levels: SIGNET_LOG__LEVEL is log.level, SIGNET_STATE_DIR is
// state_dir.
func environLayers(environ, ignore []string) ([]layer, Errors) {
	vars := map[string]string{}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || slices.Contains(ignore, name) {
			continue
		}
		vars[name] = value
	}
	var (
		layers []layer
		errs   Errors
	)
	// Sorted so that two spellings of one key resolve the same way on
	// every run.
	for _, name := range slices.Sorted(stdmaps.Keys(vars)) {
		origin := "env " + name
		segs := strings.Split(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__")
		if slices.Contains(segs, "") {
			errs = append(errs, &Error{Origin: origin, Problem: "does not name a config key", Accepted: "SIGNET_ then the key in capitals, with __ between levels, like SIGNET_LOG__LEVEL"})
			continue
		}
		layers = append(layers, layer{origin: origin, values: nest(segs, vars[name])})
	}
	return layers, errs
}

func overrideLayers(overrides map[string]string) ([]layer, Errors) {
	var (
		layers []layer
		errs   Errors
	)
	for _, key := range slices.Sorted(stdmaps.Keys(overrides)) {
		origin := "flag --" + strings.NewReplacer(".", "-", "_", "-").Replace(key)
		segs := strings.Split(key, ".")
		if slices.Contains(segs, "") {
			errs = append(errs, &Error{Origin: origin, Value: key, Problem: "is not a config key"})
			continue
		}
		layers = append(layers, layer{origin: origin, values: nest(segs, overrides[key])})
	}
	return layers, errs
}

func nest(segs []string, value string) map[string]any {
	var v any = value
	for i := len(segs) - 1; i >= 0; i-- {
		v = map[string]any{segs[i]: v}
	}
	return v.(map[string]any)
}

// build merges the layers with koanf, decodes, normalises and validates.
func build(layers []layer, environ []string) (*Config, error) {
	ko := koanf.New(delim)
	for _, l := range layers {
		// koanf's merge keeps references into the maps it is given and
		// later layers write through them, so koanf gets a copy and the
		// layer keeps an untouched record for finding origins.
		if err := ko.Load(confmap.Provider(maps.Copy(l.values), ""), nil); err != nil {
			return nil, Errors{{Origin: l.origin, Problem: "cannot be merged: " + err.Error()}}
		}
	}
	// Validation runs even after decoding failed so that one run reports
	// every problem; it skips keys that failed to decode, whose zero values
	// would only produce a second, misleading error.
	cfg, errs := decode(ko)
	cfg.normalize()
	later := cfg.resolveStateDir(environ)
	later = append(later, cfg.validate()...)
	for _, e := range later {
		if !slices.ContainsFunc(errs, func(d *Error) bool { return hasPrefix(e.path, d.path) }) {
			errs = append(errs, e)
		}
	}
	if len(errs) == 0 {
		return cfg, nil
	}
	for _, e := range errs {
		if e.Origin == "" {
			e.Origin = originOf(layers, e.path)
		}
	}
	return nil, errs
}

// originOf returns the last layer that set p. A key that is missing (a
// required field left out) belongs to the layer that set its nearest
// parent, and a layer that holds a list or scalar above p replaced
// everything under it.
func originOf(layers []layer, p []string) string {
	for n := len(p); n > 0; n-- {
		for _, l := range slices.Backward(layers) {
			if sets(l.values, p[:n]) {
				return l.origin
			}
		}
	}
	return ""
}

func sets(values map[string]any, p []string) bool {
	var cur any = values
	for _, s := range p {
		m, ok := cur.(map[string]any)
		if !ok {
			return true
		}
		if cur, ok = m[s]; !ok {
			return false
		}
	}
	return true
}

func hasPrefix(p, prefix []string) bool {
	return len(prefix) > 0 && len(p) >= len(prefix) && slices.Equal(p[:len(prefix)], prefix)
}
