package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walvault/walvault/storage"
)

// Op names a call of storage.Backend or storage.Versioned, for Fault.
type Op string

// The calls Fault can act on.
const (
	OpPut        Op = "put"
	OpGet        Op = "get"
	OpStat       Op = "stat"
	OpList       Op = "list"
	OpDelete     Op = "delete"
	OpListHidden Op = "list hidden"
	OpGetHidden  Op = "get hidden"
	OpUnhide     Op = "unhide"
	OpVersions   Op = "versions"
	OpGetVersion Op = "get version"
)

// ErrConnReset is the transient failure a broken body (BreakBodies) ends
// with, worded as the network error it plays.
var ErrConnReset = errors.New("read tcp 10.0.0.7:443: connection reset by peer")

// Fault wraps a backend and injects what a real one cannot produce on
// demand: failures of chosen calls (Fail, FailNth, FailPut), stalls and
// delays (Stall, Delay), bodies that break mid-read (BreakBodies), keys
// hidden behind a delete marker (Hide) and objects under retention (Lock).
// It counts calls per Op, the most in flight at once, and the keys in the
// order their calls returned, and records the options of each Put. Configure it before use; it is safe for
// concurrent calls.
//
// Fault is not storage.Versioned, so code that looks for versions finds
// none; Versioned returns the same backend with the versioned calls. It
// has no Unwrap, so storage.AsVersioned cannot reach past it to the
// versioned calls of what it wraps, bypassing the faults.
type Fault struct {
	storage.Backend
	mu       sync.Mutex
	rules    []faultRule
	hidden   map[string]bool
	locked   map[string]bool
	calls    map[Op]int
	running  map[Op]int
	most     map[Op]int
	returned map[Op][]string
	puts     map[string]storage.PutOptions // the last options each key was put with
}

var _ storage.Backend = (*Fault)(nil)

// faultRule acts on the calls of op whose key matches.
type faultRule struct {
	op    Op
	match func(key string) bool
	// before runs ahead of the call; its error is the call's answer. For
	// Put it runs after the body was read whole.
	before func(ctx context.Context, key string) error
	// Put only: read readFirst bytes of the body, then answer putErr
	// (nil: a lying success that stores nothing).
	failPut   bool
	readFirst int64
	putErr    error
	// Get only: the body fails with ErrConnReset after breakAfter bytes.
	breakBody  bool
	breakAfter int64
}

// NewFault wraps b; with no rule it passes every call through.
func NewFault(b storage.Backend) *Fault {
	return &Fault{
		Backend: b, hidden: map[string]bool{}, locked: map[string]bool{},
		calls: map[Op]int{}, running: map[Op]int{}, most: map[Op]int{}, returned: map[Op][]string{},
		puts: map[string]storage.PutOptions{},
	}
}

// AnyKey matches every key.
func AnyKey(string) bool { return true }

// Key matches one key.
func Key(want string) func(string) bool { return func(k string) bool { return k == want } }

// Prefix matches the keys under prefix.
func Prefix(prefix string) func(string) bool {
	return func(k string) bool { return strings.HasPrefix(k, prefix) }
}

// Contains matches the keys holding s.
func Contains(s string) func(string) bool {
	return func(k string) bool { return strings.Contains(k, s) }
}

// Before runs fn ahead of every call of op whose key matches (for Put,
// after the body was read whole: the caller sees its data consumed while
// the call lingers). A non-nil error from fn is the call's answer.
func (f *Fault) Before(op Op, match func(string) bool, fn func(ctx context.Context, key string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, faultRule{op: op, match: match, before: fn})
}

// Fail makes every call of op whose key matches fail with err, wrapped as
// the backend would (storage.OpError).
func (f *Fault) Fail(op Op, match func(string) bool, err error) {
	f.Before(op, match, func(context.Context, string) error { return err })
}

// FailNth makes the nth call of op (counted from 1, whatever its key) fail
// with err; the calls before and after pass.
func (f *Fault) FailNth(op Op, n int, err error) {
	var seen atomic.Int64
	f.Before(op, AnyKey, func(context.Context, string) error {
		if seen.Add(1) == int64(n) {
			return err
		}
		return nil
	})
}

// Stall makes the calls of op whose key matches wait until their context
// is done, and fail with its error: a server that never answers.
func (f *Fault) Stall(op Op, match func(string) bool) {
	f.Before(op, match, func(ctx context.Context, _ string) error {
		<-ctx.Done()
		return ctx.Err()
	})
}

// Delay makes the calls of op whose key matches wait d (or until their
// context is done) before going on.
func (f *Fault) Delay(op Op, match func(string) bool, d time.Duration) {
	f.Before(op, match, func(ctx context.Context, _ string) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// FailPut makes a Put whose key matches read readFirst bytes of its body,
// then return err unwrapped; with a nil err it returns success without
// storing anything or reading further (a backend that lies).
func (f *Fault) FailPut(match func(string) bool, readFirst int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, faultRule{op: OpPut, match: match, failPut: true, readFirst: readFirst, putErr: err})
}

// BreakBodies makes the bodies Get returns for matching keys fail with
// ErrConnReset after after bytes.
func (f *Fault) BreakBodies(match func(string) bool, after int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, faultRule{op: OpGet, match: match, breakBody: true, breakAfter: after})
}

// Hide hides keys as a delete marker does: Get and Stat say not found,
// List skips them, while the wrapped backend keeps them (so a conditional
// create of one is refused, as Versity does). Through Versioned they are
// listed and read as hidden.
func (f *Fault) Hide(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		f.hidden[k] = true
	}
}

// Lock makes Delete of keys answer storage.ErrLocked, as for objects under
// retention, and keep them.
func (f *Fault) Lock(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		f.locked[k] = true
	}
}

// Calls is the number of calls of op so far, failed ones included.
func (f *Fault) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// MaxInFlight is the most calls of op that ran at once.
func (f *Fault) MaxInFlight(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.most[op]
}

// Returned lists the keys (prefixes for listings) of the calls of op in
// the order they returned.
func (f *Fault) Returned(op Op) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.returned[op]...)
}

// PutOptions returns the options of the last Put of key, failed or not,
// and whether there was one: what a lock-enabled bucket was asked to do.
func (f *Fault) PutOptions(key string) (storage.PutOptions, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.puts[key]
	return o, ok
}

func (f *Fault) isHidden(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hidden[key]
}

// enter counts a call and returns the rules that match it, and the
// function that records its return.
func (f *Fault) enter(op Op, key string) ([]faultRule, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	f.running[op]++
	f.most[op] = max(f.most[op], f.running[op])
	var rules []faultRule
	for _, r := range f.rules {
		if r.op == op && r.match(key) {
			rules = append(rules, r)
		}
	}
	return rules, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.running[op]--
		f.returned[op] = append(f.returned[op], key)
	}
}

// before runs the matching rules' before functions.
func before(ctx context.Context, rules []faultRule, op Op, key string) error {
	for _, r := range rules {
		if r.before != nil {
			if err := r.before(ctx, key); err != nil {
				return storage.OpError(string(op), key, err)
			}
		}
	}
	return nil
}

func (f *Fault) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	rules, done := f.enter(OpPut, key)
	defer done()
	f.mu.Lock()
	f.puts[key] = opts
	f.mu.Unlock()
	for _, rule := range rules {
		if rule.failPut {
			if _, err := io.CopyN(io.Discard, r, rule.readFirst); err != nil {
				return err
			}
			return rule.putErr
		}
	}
	if len(rules) > 0 {
		data, err := io.ReadAll(r)
		if err != nil {
			return storage.OpError("put", key, err)
		}
		if err := before(ctx, rules, OpPut, key); err != nil {
			return err
		}
		r = bytes.NewReader(data)
	}
	return f.Backend.Put(ctx, key, r, opts)
}

func (f *Fault) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rules, done := f.enter(OpGet, key)
	defer done()
	if err := before(ctx, rules, OpGet, key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	if f.isHidden(key) {
		return nil, storage.ObjectInfo{}, storage.OpError("get", key, storage.ErrNotFound)
	}
	rc, info, err := f.Backend.Get(ctx, key)
	if err != nil {
		return rc, info, err
	}
	for _, r := range rules {
		if r.breakBody {
			rc = &breakingBody{ReadCloser: rc, left: r.breakAfter}
		}
	}
	return rc, info, nil
}

func (f *Fault) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	rules, done := f.enter(OpStat, key)
	defer done()
	if err := before(ctx, rules, OpStat, key); err != nil {
		return storage.ObjectInfo{}, err
	}
	if f.isHidden(key) {
		return storage.ObjectInfo{}, storage.OpError("stat", key, storage.ErrNotFound)
	}
	return f.Backend.Stat(ctx, key)
}

func (f *Fault) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	return f.list(ctx, OpList, prefix, false, fn)
}

// list runs op (List or ListHidden) on the wrapped backend's listing,
// passing on the keys that are hidden or, with hidden false, the others.
func (f *Fault) list(ctx context.Context, op Op, prefix string, hidden bool, fn func(storage.ObjectInfo) error) error {
	rules, done := f.enter(op, prefix)
	defer done()
	if err := before(ctx, rules, op, prefix); err != nil {
		return err
	}
	return f.Backend.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if f.isHidden(oi.Key) != hidden {
			return nil
		}
		return fn(oi)
	})
}

func (f *Fault) Delete(ctx context.Context, key string) error {
	rules, done := f.enter(OpDelete, key)
	defer done()
	if err := before(ctx, rules, OpDelete, key); err != nil {
		return err
	}
	f.mu.Lock()
	hidden, locked := f.hidden[key], f.locked[key]
	f.mu.Unlock()
	switch {
	case hidden:
		return storage.OpError("delete", key, storage.ErrNotFound)
	case locked:
		return storage.OpError("delete", key, storage.ErrLocked)
	}
	return f.Backend.Delete(ctx, key)
}

// Versioned returns f with the versioned calls, which serve the keys Hide
// hid from the wrapped backend: each has one version, "v1". Versions and
// GetVersion pass through to the wrapped backend's when it has them (mem's
// keep every Put), or else give each stored key one version, "v1".
func (f *Fault) Versioned() *VersionedFault { return &VersionedFault{f} }

// VersionedFault is a Fault that is storage.Versioned (see Versioned).
type VersionedFault struct{ *Fault }

var _ storage.Versioned = (*VersionedFault)(nil)

func (f *VersionedFault) ListHidden(ctx context.Context, prefix string, fn func(storage.HiddenObject) error) error {
	return f.list(ctx, OpListHidden, prefix, true, func(oi storage.ObjectInfo) error {
		return fn(storage.HiddenObject{Key: oi.Key, VersionID: "v1", Size: oi.Size, HiddenAt: oi.ModTime, RetainUntil: oi.RetainUntil})
	})
}

func (f *VersionedFault) GetHidden(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rules, done := f.enter(OpGetHidden, key)
	defer done()
	if err := before(ctx, rules, OpGetHidden, key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	if !f.isHidden(key) {
		return nil, storage.ObjectInfo{}, storage.OpError("get hidden", key, storage.ErrNotFound)
	}
	return f.Backend.Get(ctx, key)
}

func (f *VersionedFault) Unhide(ctx context.Context, key string) error {
	rules, done := f.enter(OpUnhide, key)
	defer done()
	if err := before(ctx, rules, OpUnhide, key); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.hidden[key] {
		return storage.OpError("unhide", key, storage.ErrNotFound)
	}
	delete(f.hidden, key)
	return nil
}

func (f *VersionedFault) Versions(ctx context.Context, key string) ([]storage.ObjectVersion, error) {
	rules, done := f.enter(OpVersions, key)
	defer done()
	if err := before(ctx, rules, OpVersions, key); err != nil {
		return nil, err
	}
	if v, ok := storage.AsVersioned(f.Backend); ok {
		return v.Versions(ctx, key)
	}
	info, err := f.Backend.Stat(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return []storage.ObjectVersion{{ID: "v1", Size: info.Size, ModTime: info.ModTime}}, nil
}

func (f *VersionedFault) GetVersion(ctx context.Context, key, versionID string) (io.ReadCloser, storage.ObjectInfo, error) {
	rules, done := f.enter(OpGetVersion, key)
	defer done()
	if err := before(ctx, rules, OpGetVersion, key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	if v, ok := storage.AsVersioned(f.Backend); ok {
		return v.GetVersion(ctx, key, versionID)
	}
	if versionID != "v1" {
		return nil, storage.ObjectInfo{}, storage.OpError("get version", key, storage.ErrNotFound)
	}
	return f.Backend.Get(ctx, key)
}

// breakingBody yields left bytes, then ErrConnReset.
type breakingBody struct {
	io.ReadCloser
	left int64
}

func (b *breakingBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, ErrConnReset
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
