package export

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"qconv/graph"
	"qconv/internal/atomicfile"
	"qconv/internal/exitcode"
)

// Spec is one artifact of a run whose caller chooses each bundle's recipe, contract and published
// path (qconv release). Options.Specs replaces Options.Targets and Options.Flags.
type Spec struct {
	// Label names the artifact in errors (the manifest's bundle name).
	Label  string
	Target *Target
	Flags  Flags
	// Contract selects one graph of the target: 0 is its decode graph; graph.HostPrefill is the
	// ios-gpu prefill companion alone (its decode partner of the same recipe is then built and
	// gated beside it, and published only when another Spec declares it).
	Contract graph.Contract
	// Entry is the published name under <out>/<target>/ ("" = the derived name, with ".aimodel"
	// when Bare). A name other than the derived one needs Alias.
	Entry string
	// Bare publishes only the .aimodel asset directory (main.mlirb, main.hash, metadata.json),
	// as the published ios-*/macos assets are; its metadata.json carries the qconv block.
	Bare bool
	// Alias is why Entry differs from the name the bytes derive (recorded in metadata as
	// published_as, which inspect and card require before accepting the name).
	Alias string
}

// PublishedAs records a published name that differs from the one the bytes derive (a legacy
// download path kept on purpose). Inspect accepts the directory name only when this says so.
type PublishedAs struct {
	Name        string `json:"name"`         // the published directory (or asset, without .aimodel)
	DerivedName string `json:"derived_name"` // the name the naming rule gives the bytes
	Reason      string `json:"reason"`
}

// NamingNote is the sentence card and release print for a legacy name: what the name says that
// the bytes do not, and why it is kept.
func (p *PublishedAs) NamingNote() string {
	pub, der := strings.Split(p.Name, "_"), strings.Split(p.DerivedName, "_")
	onlyPub, onlyDer := missing(pub, der), missing(der, pub)
	var what string
	switch {
	case len(onlyPub) > 0 && len(onlyDer) > 0:
		what = fmt.Sprintf("the name says `%s` where the bytes hold `%s`", strings.Join(onlyPub, "_"), strings.Join(onlyDer, "_"))
	case len(onlyDer) > 0:
		what = fmt.Sprintf("the name leaves out `%s`, which the bytes hold", strings.Join(onlyDer, "_"))
	case len(onlyPub) > 0:
		what = fmt.Sprintf("the name adds `%s`, which the bytes do not hold", strings.Join(onlyPub, "_"))
	default:
		what = "the name orders its parts differently from the naming rule"
	}
	return fmt.Sprintf("`%s` is a legacy name: %s (the naming rule names these bytes `%s`); %s", p.Name, what, p.DerivedName, strings.TrimSuffix(p.Reason, "."))
}

// missing lists the parts of a that b lacks, in a's order.
func missing(a, b []string) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

// planSpecs turns Options.Specs into jobs: one per artifact, plus the decode partner a lone
// prefill companion is gated against (hidden: built and gated, never published).
func planSpecs(opt Options, short string) ([]*job, error) {
	var jobs []*job
	add := func(j *job) {
		for _, o := range jobs {
			sameBytes := o.target.SameBytesAs == j.target.Name || j.target.SameBytesAs == o.target.Name
			if sameBytes && o.contract == j.contract && o.recipe == j.recipe && o.twin == nil && !o.hidden {
				j.twin = o
			}
		}
		jobs = append(jobs, j)
	}
	// Decode graphs first, so a companion's declared partner exists before it.
	for pass := 0; pass < 2; pass++ {
		for _, s := range opt.Specs {
			if (s.Contract == graph.HostPrefill) != (pass == 1) {
				continue
			}
			t := s.Target
			r, err := s.Flags.Apply(t)
			if err != nil {
				return nil, fmt.Errorf("bundle %s: %w", s.Label, err)
			}
			c := t.Contract
			if s.Contract != 0 && s.Contract != t.Contract {
				if s.Contract != t.Prefill || t.Prefill == 0 {
					return nil, exitcode.Badf("bundle %s: target %s has no %s graph", s.Label, t.Name, s.Contract)
				}
				c = s.Contract
			}
			j := &job{target: t, recipe: r, contract: c, bare: s.Bare}
			j.derived = BundleName(short, t, c, &r, PrefillTokens)
			j.name = j.derived
			if s.Entry != "" {
				j.name = s.Entry
				if s.Bare {
					j.name = strings.TrimSuffix(s.Entry, ".aimodel")
				}
			}
			if j.name != j.derived {
				if s.Alias == "" {
					return nil, exitcode.Badf("bundle %s: published name %q is not what the bytes are named (%q); declare legacy_name with the reason to keep it", s.Label, j.name, j.derived)
				}
				j.alias = &PublishedAs{Name: j.name, DerivedName: j.derived, Reason: s.Alias}
			}
			j.dir = filepath.Join(opt.OutDir, t.Name, j.publishedEntry())
			if c == graph.HostPrefill {
				for _, o := range jobs {
					if o.target == t && o.contract == t.Contract && o.recipe == r {
						j.partner = o
					}
				}
				if j.partner == nil {
					p := &job{target: t, recipe: r, contract: t.Contract, hidden: true}
					p.derived = BundleName(short, t, t.Contract, &r, PrefillTokens)
					p.name = p.derived
					p.dir = filepath.Join(opt.OutDir, t.Name, p.name)
					jobs = append(jobs, p)
					j.partner = p
				}
			}
			add(j)
		}
	}
	seen := map[string]string{}
	for _, j := range jobs {
		if j.hidden {
			continue
		}
		if prev, ok := seen[j.dir]; ok {
			return nil, exitcode.Badf("bundles %s and %s: both publish %s", prev, j.name, j.dir)
		}
		seen[j.dir] = j.name
	}
	return jobs, nil
}

// publishedEntry is the directory name under <out>/<target>/.
func (j *job) publishedEntry() string {
	if j.bare {
		return j.name + ".aimodel"
	}
	return j.name
}

// publishSource is what becomes j.dir: the staged bundle, or its asset for a bare layout.
func (j *job) publishSource() string {
	if j.bare {
		return filepath.Join(j.tmp, j.name+".aimodel")
	}
	return j.tmp
}

// languageStates is the bundle metadata's state kinds for a contract (nil: no states).
func languageStates(c graph.Contract) map[string]string {
	switch c {
	case graph.Pipelined:
		return map[string]string{graph.StateKey: "kv_cache", graph.StateValue: "kv_cache", graph.StateConv: "fixed", graph.StateRec: "fixed"}
	case graph.Stock:
		return StockStates()
	}
	return nil
}

// finishBare rewrites the staged asset's metadata.json with the qconv block: a bare asset has no
// bundle metadata beside it, so its own metadata carries what inspect and card check.
func (j *job) finishBare(opt Options, date time.Time, q *QConvBlock) error {
	q.Notes = append(q.Notes, "published as a bare .aimodel asset: no bundle metadata.json or tokenizer ships beside it")
	am := AssetMetadata{
		Producer: "qconv " + opt.Version, AssetVersion: "2.0", CreationDate: date.Format(time.RFC3339),
		Description: fmt.Sprintf("%s: Qwen3.5 %s graph for the %s, exported by qconv from %s", j.name, j.contract, j.target.Device, ShortName(opt.Checkpoint)),
		QConv:       q,
	}
	b, err := marshalJSON(am)
	if err != nil {
		return err
	}
	path := filepath.Join(j.publishSource(), "metadata.json")
	if err := os.Remove(path); err != nil {
		return err
	}
	return atomicfile.WriteNew(path, b)
}

// bareMetadata reads a bare asset's metadata.json (assetVersion and a qconv block, no bundle
// metadata) and returns the bundle metadata it stands for, for the checks Inspect runs.
func bareMetadata(dir string, b []byte) (*BundleMetadata, bool) {
	var am AssetMetadata
	if err := decodeStrict(b, &am); err != nil || am.AssetVersion == "" || am.QConv == nil {
		return nil, false
	}
	q := am.QConv
	name := strings.TrimSuffix(filepath.Base(dir), ".aimodel")
	tokenizer := q.Checkpoint.RepoID
	md := &BundleMetadata{
		MetadataVersion: "0.2", Kind: "llm", Name: name,
		Assets: map[string]string{"main": name + ".aimodel"},
		Language: LanguageMetadata{
			Tokenizer: tokenizer, MaxContextLength: q.Recipe.Context,
			FunctionMap: map[string][]string{"main": {"main"}}, States: languageStates(contractFromName(q.Contract)),
		},
		Source:      SourceMetadata{ModelDefinition: "qconv", HFModelID: q.Checkpoint.RepoID},
		Compilation: CompilationInfo{Date: am.CreationDate, Targets: []string{}},
		QConv:       q,
	}
	for _, o := range q.Function.Outputs {
		if o.Name == graph.OutLogits && len(o.Shape) > 0 {
			md.Language.VocabSize = int(o.Shape[len(o.Shape)-1])
		}
	}
	return md, true
}
