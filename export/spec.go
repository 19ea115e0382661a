package export

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"qconv/bundle"
	"qconv/graph"
	"qconv/internal/atomicfile"
	"qconv/internal/exitcode"
	"qconv/recipe"
)

// Spec is one artifact of a run whose caller chooses each bundle's recipe, contract and published
// path (qconv release). Options.Specs replaces Options.Targets and Options.Flags.
type Spec struct {
	// Label names the artifact in errors (the manifest's bundle name).
	Label  string
	Target *recipe.Target
	Flags  recipe.Flags
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
			j.derived = recipe.BundleName(short, t, c, &r, recipe.PrefillTokens)
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
				j.alias = &bundle.PublishedAs{Name: j.name, DerivedName: j.derived, Reason: s.Alias}
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
					p.derived = recipe.BundleName(short, t, t.Contract, &r, recipe.PrefillTokens)
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

// finishBare rewrites the staged asset's metadata.json with the qconv block: a bare asset has no
// bundle metadata beside it, so its own metadata carries what inspect and card check.
func (j *job) finishBare(opt Options, date time.Time, q *bundle.QConvBlock) error {
	q.Notes = append(q.Notes, "published as a bare .aimodel asset: no bundle metadata.json or tokenizer ships beside it")
	am := bundle.AssetMetadata{
		Producer: "qconv " + opt.Version, AssetVersion: "2.0", CreationDate: date.Format(time.RFC3339),
		Description: fmt.Sprintf("%s: Qwen3.5 %s graph for the %s, exported by qconv from %s", j.name, j.contract, j.target.Device, recipe.ShortName(opt.Checkpoint)),
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
