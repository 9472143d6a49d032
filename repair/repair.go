package repair

import (
	"context"
	"errors"
	"fmt"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
)

// Outcome is what became of one hidden object.
type Outcome int

const (
	// Unhidden: its delete markers are gone; it is visible again.
	Unhidden Outcome = iota
	// Gone: it was no longer hidden when its turn came (visible again, or
	// its versions deleted since the listing); the second listing tells.
	Gone
	// Failed: the storage refused or failed to remove its markers.
	Failed
)

// Result is one object's outcome, as Options.Progress receives it.
type Result struct {
	Object  storage.HiddenObject
	Outcome Outcome
	Err     error // with Gone and Failed
}

// Options control a Run.
type Options struct {
	// DryRun only lists the hidden objects.
	DryRun bool
	// Progress, when set, is called after each object is tried, in key
	// order, so a long repair shows its work as it goes.
	Progress func(Result)
}

// Report is what a Run found and did.
type Report struct {
	// Versioned is false when the storage keeps no old versions: nothing
	// can hide there, and nothing else in the report is set.
	Versioned bool
	// DryRun: the objects were only listed.
	DryRun bool
	// Hidden are walvault's objects hidden when the run started.
	Hidden []storage.HiddenObject
	// Unhidden and Failed count the outcomes (Gone ones are neither).
	Unhidden, Failed int
	// Left is what a second listing, after the work, still found hidden;
	// nil with DryRun or when nothing was hidden.
	Left []storage.HiddenObject
}

// Clean says nothing is hidden (any more) and nothing failed. A dry run
// is clean only when nothing was hidden.
func (r Report) Clean() bool {
	if len(r.Hidden) == 0 {
		return true
	}
	return !r.DryRun && r.Failed == 0 && len(r.Left) == 0
}

// Run makes walvault's hidden objects in b visible again (with DryRun it
// only lists them). Removing one object's markers failing is no error: it
// counts in Report.Failed and the run goes on. The error is for what stops
// the run: a failed listing, or ctx ending.
func Run(ctx context.Context, b storage.Backend, opts Options) (Report, error) {
	v, ok := storage.AsVersioned(b)
	if !ok {
		return Report{}, nil
	}
	rep := Report{Versioned: true, DryRun: opts.DryRun}
	var err error
	if rep.Hidden, err = find(ctx, v); err != nil {
		return rep, fmt.Errorf("list objects hidden by delete markers in %s: %w", b.Location(), err)
	}
	if opts.DryRun || len(rep.Hidden) == 0 {
		return rep, nil
	}
	for _, h := range rep.Hidden {
		res := Result{Object: h}
		switch err := v.Unhide(ctx, h.Key); {
		case err == nil:
			res.Outcome = Unhidden
			rep.Unhidden++
		case errors.Is(err, storage.ErrNotFound):
			res.Outcome, res.Err = Gone, err
		default:
			res.Outcome, res.Err = Failed, err
			rep.Failed++
		}
		if opts.Progress != nil {
			opts.Progress(res)
		}
		if res.Outcome == Failed && ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	left, err := find(ctx, v)
	if err != nil {
		return rep, fmt.Errorf("made %d of %d hidden objects visible again, but checking the result failed: list objects hidden by delete markers in %s: %w",
			rep.Unhidden, len(rep.Hidden), b.Location(), err)
	}
	rep.Left = left
	return rep, nil
}

// find gathers walvault's own hidden objects. Their number is what was
// hidden, not the size of the repository.
func find(ctx context.Context, v storage.Versioned) ([]storage.HiddenObject, error) {
	var hidden []storage.HiddenObject
	err := repository.ListHidden(ctx, v, func(h storage.HiddenObject) error {
		hidden = append(hidden, h)
		return nil
	})
	return hidden, err
}
