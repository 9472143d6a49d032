package repository

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/walvault/walvault/storage"
)

// RecipientRun is a stretch of WAL objects (indexes First to Last of the
// keys given to WALRecipientRuns) stored the same way: encrypted to the
// same Recipients, in the clear (Encrypted false), or gone since the
// listing (Gone).
type RecipientRun struct {
	First, Last int
	Encrypted   bool
	Recipients  []string
	Gone        bool
	// Meta is the metadata of the object at First (nil when Gone).
	Meta map[string]string
}

// WALRecipientRuns finds which keys WAL objects are encrypted to without
// one metadata request per object: a listing does not carry an object's
// metadata on S3 (ListObjectsV2 returns none), and a repository holds
// 100,000s of segments. Keys change only when someone rotates them, so
// the objects (keys, in key order, as the listing gave them) form long
// runs encrypted to the same keys, and the boundaries are found by
// bisection: the two ends of a stretch are read, and a stretch whose ends
// differ is halved.
//
// At least minSamples objects evenly spread are read too (stretches are
// halved down to objects/minSamples), so at most about 2·minSamples +
// 2·changes·log2(objects/minSamples) requests in all, whatever the size
// of the repository (stats says how many were made).
//
// The price, said where it is used: a stretch of fewer than about
// objects/minSamples objects whose two ends agree is taken to be uniform,
// so keys used only inside it (a rotation there and back between two
// sampled objects) are not seen. Reading an object always checks its own
// keys, so that is never a wrong decryption, only a later error than a
// full scan would give.
func WALRecipientRuns(ctx context.Context, b storage.Backend, keys []string) (runs []RecipientRun, stats int, err error) {
	if len(keys) == 0 {
		return nil, 0, nil
	}
	type read struct {
		sig  string
		meta map[string]string
	}
	seen := map[int]read{}
	at := func(i int) (read, error) {
		if r, ok := seen[i]; ok {
			return r, nil
		}
		stats++
		info, err := b.Stat(ctx, keys[i])
		var r read
		switch {
		case errors.Is(err, storage.ErrNotFound):
			r.sig = "\x00gone" // deleted since the listing (retention)
		case err != nil:
			return read{}, fmt.Errorf("read the metadata of %s in %s: %w", keys[i], b.Location(), err)
		case EncryptedObject(info.Metadata):
			ids := slices.Clone(ObjectRecipients(info.Metadata))
			slices.Sort(ids)
			r.sig, r.meta = "enc:"+strings.Join(ids, ","), info.Metadata
		default:
			r.sig, r.meta = "clear", info.Metadata
		}
		seen[i] = r
		return r, nil
	}
	add := func(first, last int, r read) {
		// Halves share their middle object: a run that reaches first
		// (or ends just before it) with the same signature goes on.
		if n := len(runs); n > 0 && runs[n-1].Last >= first-1 && sigOf(runs[n-1]) == r.sig {
			runs[n-1].Last = max(runs[n-1].Last, last)
			return
		}
		run := RecipientRun{First: first, Last: last, Meta: r.meta}
		switch {
		case r.sig == "\x00gone":
			run.Gone = true
		case r.sig != "clear":
			run.Encrypted = true
			ids := slices.Clone(ObjectRecipients(r.meta))
			slices.Sort(ids)
			run.Recipients = ids
		}
		runs = append(runs, run)
	}
	// Stretches longer than stride are halved even when their ends agree,
	// so a rotation there and back is seen unless it is shorter than
	// about 1/minSamples of the WAL.
	stride := max(1, len(keys)/minSamples)
	// In key order; reads are remembered, so each boundary costs the
	// reads of its bisection only.
	var walk func(lo, hi int) error
	walk = func(lo, hi int) error {
		a, err := at(lo)
		if err != nil {
			return err
		}
		z, err := at(hi)
		if err != nil {
			return err
		}
		switch {
		case a.sig == z.sig && hi-lo <= stride:
			add(lo, hi, a)
		case hi == lo+1:
			add(lo, lo, a)
			add(hi, hi, z)
		default:
			mid := lo + (hi-lo)/2
			if err := walk(lo, mid); err != nil {
				return err
			}
			return walk(mid, hi)
		}
		return nil
	}
	if err := walk(0, len(keys)-1); err != nil {
		return nil, stats, err
	}
	return runs, stats, nil
}

// minSamples is how many evenly spread objects WALRecipientRuns reads at
// least (all of them when there are fewer).
const minSamples = 64

// sigOf is a run's signature, as WALRecipientRuns compares objects.
func sigOf(r RecipientRun) string {
	switch {
	case r.Gone:
		return "\x00gone"
	case !r.Encrypted:
		return "clear"
	}
	return "enc:" + strings.Join(r.Recipients, ",")
}
