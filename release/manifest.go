// Package release builds, gates, publishes and checks a whole published model repository from
// one manifest: which checkpoint, which bundles (target, recipe, published path, layout), the
// card's front matter and the gate settings they share. The bundles themselves are made by
// export.Run in one run, so tensors the bundles share are quantized once.
package release

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"qconv/export"
	"qconv/graph"
	"qconv/internal/exitcode"
	"qconv/recipe"
)

// Manifest is a release manifest (TOML). Paths in it are relative to the manifest's directory.
type Manifest struct {
	// Date is every bundle's creation date (RFC 3339). Optional: without it a run uses
	// SOURCE_DATE_EPOCH or the current time, and --check the dates the bundles on disk record.
	Date    string   `toml:"date"`
	Source  Source   `toml:"source"`
	Card    Card     `toml:"card"`
	Gate    Gate     `toml:"gate"`
	Bundles []Bundle `toml:"bundle"`

	path string // the manifest file
}

// Source is the checkpoint: a directory, or a repo id (with its revision) in the HF cache.
type Source struct {
	Path string `toml:"path"`
	Repo string `toml:"repo"` // "org/name@revision"
}

// Card is the model card's front matter and free-text sections.
type Card struct {
	Title       string    `toml:"title"`
	License     string    `toml:"license"`
	LicenseName string    `toml:"license_name"`
	LicenseLink string    `toml:"license_link"`
	BaseModel   string    `toml:"base_model"`
	PipelineTag string    `toml:"pipeline_tag"`
	Tags        []string  `toml:"tags"`
	Sections    []Section `toml:"section"`
}

// Section is a free-text Markdown section of the card.
type Section struct {
	Title string `toml:"title"`
	Body  string `toml:"body"`
}

// Gate holds the gate settings every bundle shares (zero: the defaults).
type Gate struct {
	Prompts   string   `toml:"prompts"` // JSONL, as --gate-prompts
	Tokens    int      `toml:"tokens"`
	MinMargin *float64 `toml:"min_margin"`
	MinCosine *float64 `toml:"min_cosine"`
}

// Bundle is one published artifact.
type Bundle struct {
	Name   string `toml:"name"` // the job name (--only, the CI matrix)
	Target string `toml:"target"`
	// Graph selects one graph of a target with two: "decode" (default) or "prefill" (ios-gpu).
	Graph string `toml:"graph"`
	// The recipe, in the vocabulary of export's flags.
	Weights         string `toml:"weights"`
	Head            string `toml:"head"`
	HeadSym         bool   `toml:"head_sym"`
	HeadGranularity string `toml:"head_granularity"`
	Scheme          string `toml:"scheme"`
	Compute         string `toml:"compute"`
	MaxCtx          int    `toml:"max_ctx"`
	AllowDelegate   bool   `toml:"allow_known_delegate_bugs"`
	// Path is the published path, "<target>/<entry>" (default: the derived name, with ".aimodel"
	// for a bare layout).
	Path string `toml:"path"`
	// Layout is "bundle" (the bundle directory, default) or "bare" (the .aimodel asset alone).
	Layout string `toml:"layout"`
	// LegacyName is why Path differs from the name the bytes derive.
	LegacyName string `toml:"legacy_name"`
	// External marks an artifact qconv does not produce (the reason); check and card leave it
	// alone. It takes only name, target, path and layout.
	External string `toml:"external"`
}

var jobName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Load reads and validates a manifest. Every error names the file and the field (exit 2).
func Load(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, exitcode.Badf("manifest: %v", err)
	}
	m := &Manifest{path: path}
	md, err := toml.Decode(string(b), m)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, exitcode.Badf("%s: line %d: %s", path, pe.Position.Line, pe.Message)
		}
		return nil, exitcode.Badf("%s: %v", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var keys []string
		for _, k := range und {
			keys = append(keys, k.String())
		}
		return nil, exitcode.Badf("%s: unknown field(s) %s", path, strings.Join(keys, ", "))
	}
	if err := m.validate(); err != nil {
		return nil, exitcode.Badf("%s: %v", path, err)
	}
	return m, nil
}

func (m *Manifest) validate() error {
	if (m.Source.Path == "") == (m.Source.Repo == "") {
		return fmt.Errorf("source: give exactly one of path (a checkpoint directory) or repo (org/name@revision in the Hugging Face cache)")
	}
	if m.Date != "" {
		if _, err := time.Parse(time.RFC3339, m.Date); err != nil {
			return fmt.Errorf("date: %q is not an RFC 3339 time (e.g. 2026-03-01T00:00:00Z)", m.Date)
		}
	}
	if m.Gate.Tokens < 0 || m.Gate.Tokens > 4096 {
		return fmt.Errorf("gate.tokens: %d is out of range [1, 4096]", m.Gate.Tokens)
	}
	if p := m.Gate.MinMargin; p != nil && !(*p >= 0 && *p <= 1) {
		return fmt.Errorf("gate.min_margin: %g is not a probability margin in [0, 1]", *p)
	}
	if p := m.Gate.MinCosine; p != nil && !(*p >= -1 && *p <= 1) {
		return fmt.Errorf("gate.min_cosine: %g is not a cosine in [-1, 1]", *p)
	}
	for i, s := range m.Card.Sections {
		if strings.TrimSpace(s.Title) == "" || strings.ContainsAny(s.Title, "\n") {
			return fmt.Errorf("card.section[%d].title: a one-line title is required", i)
		}
	}
	if len(m.Bundles) == 0 {
		return fmt.Errorf("no [[bundle]]: a release publishes at least one")
	}
	names, paths := map[string]bool{}, map[string]string{}
	for i := range m.Bundles {
		b := &m.Bundles[i]
		where := fmt.Sprintf("bundle[%d]", i)
		if b.Name != "" {
			where = fmt.Sprintf("bundle %q", b.Name)
		}
		if !jobName.MatchString(b.Name) {
			return fmt.Errorf("%s: name %q: lowercase letters, digits, '.', '_' or '-' required (it names the CI job)", where, b.Name)
		}
		if names[b.Name] {
			return fmt.Errorf("%s: name used twice", where)
		}
		names[b.Name] = true
		if _, err := recipe.TargetByName(b.Target); err != nil {
			return fmt.Errorf("%s: target %q: targets are %s", where, b.Target, strings.Join(recipe.TargetNames(), ", "))
		}
		switch b.Layout {
		case "", "bundle", "bare":
		default:
			return fmt.Errorf("%s: layout %q: bundle (the bundle directory) or bare (the .aimodel asset alone)", where, b.Layout)
		}
		switch b.Graph {
		case "", "decode", "prefill":
		default:
			return fmt.Errorf("%s: graph %q: decode or prefill", where, b.Graph)
		}
		if b.Path != "" {
			dir, entry, ok := strings.Cut(b.Path, "/")
			if !ok || dir != b.Target || entry == "" || strings.ContainsAny(entry, `/\`) || strings.HasPrefix(entry, ".") {
				return fmt.Errorf("%s: path %q: must be %s/<name> (one directory under its target's)", where, b.Path, b.Target)
			}
			if strings.HasSuffix(entry, ".aimodel") != (b.Layout == "bare") {
				return fmt.Errorf("%s: path %q: a bare layout ends in .aimodel, a bundle directory does not", where, b.Path)
			}
			if other, ok := paths[b.Path]; ok {
				return fmt.Errorf("%s: path %s is also bundle %q's", where, b.Path, other)
			}
			paths[b.Path] = b.Name
		}
		if b.External != "" {
			if b.Path == "" {
				return fmt.Errorf("%s: an external artifact needs its path", where)
			}
			if b.recipeGiven() || b.LegacyName != "" || b.Graph != "" {
				return fmt.Errorf("%s: external (not produced by qconv) takes no recipe, graph or legacy_name", where)
			}
		}
	}
	return nil
}

func (b *Bundle) recipeGiven() bool {
	return b.Weights != "" || b.Head != "" || b.HeadSym || b.HeadGranularity != "" || b.Scheme != "" || b.Compute != "" || b.MaxCtx != 0 || b.AllowDelegate
}

// Flags is the bundle's recipe as export flags.
func (b *Bundle) Flags() recipe.Flags {
	return recipe.Flags{Weights: b.Weights, Head: b.Head, HeadSym: b.HeadSym, HeadGranularity: b.HeadGranularity,
		Scheme: b.Scheme, Compute: b.Compute, MaxCtx: b.MaxCtx, AllowDelegate: b.AllowDelegate}
}

// Spec is the bundle as an export.Spec (not for external bundles).
func (b *Bundle) Spec() export.Spec {
	t, _ := recipe.TargetByName(b.Target) // validated
	s := export.Spec{Label: b.Name, Target: t, Flags: b.Flags(), Bare: b.Layout == "bare", Alias: b.LegacyName}
	if b.Graph == "prefill" {
		s.Contract = graph.HostPrefill
	}
	if b.Path != "" {
		_, s.Entry, _ = strings.Cut(b.Path, "/")
	}
	return s
}

// Dir is the manifest's directory (relative paths in it start there).
func (m *Manifest) Dir() string { return filepath.Dir(m.path) }

// resolve makes a manifest-relative path usable from the working directory.
func (m *Manifest) resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(m.Dir(), filepath.FromSlash(p))
}

// Find returns the bundle named name.
func (m *Manifest) Find(name string) (*Bundle, error) {
	var names []string
	for i := range m.Bundles {
		if m.Bundles[i].Name == name {
			return &m.Bundles[i], nil
		}
		names = append(names, m.Bundles[i].Name)
	}
	sort.Strings(names)
	return nil, exitcode.Badf("flag --only: %s declares no bundle %q (bundles: %s)", m.path, name, strings.Join(names, ", "))
}
