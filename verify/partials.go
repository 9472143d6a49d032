package verify

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// partialObj is one listed partial of wal-receive (partial/...).
type partialObj struct {
	p    repository.Partial
	size int64
}

// partialTimeline is what the report says of one timeline's partials.
type partialTimeline struct {
	count      int
	newest     repository.Partial // the highest end LSN
	superseded bool               // newest's segment is archived
}

// collectPartials keeps wal-receive's partials whose end lies inside their
// segment (the inventory already made strays of keys that are no partial,
// or of a segment the segment size cannot have). Whether a partial's
// segment is archived is only known once wal/ is (checkPartials). They
// are few (wal-receive deletes them as segments complete), so holding
// them costs little.
func (s *scan) collectPartials(partials []repository.PartialObject) {
	segSize := s.id.WALSegmentSize
	for _, po := range partials {
		p := po.Partial
		start, err := p.Segment.StartLSN(segSize)
		if err != nil {
			continue // a stray of the inventory already
		}
		if p.End <= start || uint64(p.End) > uint64(start)+uint64(segSize) {
			s.stray(p.Key, fmt.Sprintf("its end LSN %s lies outside segment %s", p.End, p.Segment))
			continue
		}
		s.partials = append(s.partials, partialObj{p: p, size: po.Size})
	}
}

// checkPartials runs once the listing is done: it warns about superseded
// partials (their segment is archived), gives the newest partial of each
// segment not archived to the index (it counts for continuity only as a
// timeline's last segment), and with Full re-reads those newest partials,
// the ones wal-fetch would serve.
func (s *scan) checkPartials(ctx context.Context) error {
	if len(s.partials) == 0 {
		return nil
	}
	s.partialTLs = map[wal.TimelineID]*partialTimeline{}
	newest := map[wal.Segment]int{} // segment -> index in s.partials
	superseded := 0
	// Superseded partials are one warning per segment: wal-receive may
	// have stored one a second, and under a lock they stay for its days.
	var supersededOf []wal.Segment
	bySegment := map[wal.Segment][]repository.Partial{}
	for i, po := range s.partials {
		p := po.p
		tl := s.partialTLs[p.Segment.Timeline]
		if tl == nil {
			tl = &partialTimeline{}
			s.partialTLs[p.Segment.Timeline] = tl
		}
		tl.count++
		archived := s.idx.HasSegment(p.Segment)
		if tl.count == 1 || p.End >= tl.newest.End {
			tl.newest, tl.superseded = p, archived
		}
		if archived {
			superseded++
			if _, seen := bySegment[p.Segment]; !seen {
				supersededOf = append(supersededOf, p.Segment)
			}
			bySegment[p.Segment] = append(bySegment[p.Segment], p)
			continue
		}
		s.idx.AddReceivedPartial(p.Segment)
		// Keys of one segment list in end-LSN order: the last is newest.
		if j, ok := newest[p.Segment]; !ok || p.End >= s.partials[j].p.End {
			newest[p.Segment] = i
		}
	}
	for _, seg := range supersededOf {
		s.supersededWarning(seg, bySegment[seg])
	}
	s.r.Summary.ReceivedPartials = len(s.partials)
	s.r.Summary.SupersededPartials = superseded
	open := len(s.partials) - superseded
	s.r.note("%s: %s of wal-receive: %d superseded (segment archived complete), %d for %s not archived complete yet",
		repository.PartialPrefix, units.Plural(len(s.partials), "partial"), superseded, open, units.Plural(len(newest), "segment"))
	if !s.opts.Full || len(newest) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Concurrency)
	for _, i := range newest {
		po := s.partials[i]
		g.Go(func() error { return s.checkPartialBody(gctx, po) })
	}
	return g.Wait()
}

// checkPartialBody re-reads one partial, as wal-fetch would serve it: it
// must decompress to the bytes from its segment's start to its end LSN,
// with the sha256 and raw size its metadata records.
func (s *scan) checkPartialBody(ctx context.Context, po partialObj) error {
	p := po.p
	rc, info, err := s.b.Get(ctx, p.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // the segment completed meanwhile and wal-receive removed it
	}
	if err != nil {
		return fmt.Errorf("read %s from %s: %w", p.Key, s.b.Location(), err)
	}
	defer rc.Close()
	start, _ := p.Segment.StartLSN(s.id.WALSegmentSize) // validated by collectPartials
	wantLen := int64(p.End - start)
	// An encrypted partial records no sha256: its keyed fingerprint is
	// checked as it is decrypted (readThrough), as wal-fetch does.
	wantSum := info.Metadata[repository.MetaSHA256]
	wantRaw, metaOK := repository.WALMetadata(info.Metadata)
	damaged := func(why string) {
		s.problem(Finding{Kind: KindPartialChecksum, Key: p.Key, Timeline: uint32(p.Segment.Timeline),
			Detail: fmt.Sprintf("%s, the newest partial of segment %s (not archived complete), %s: wal-fetch refuses it, so a restore cannot replay the WAL it holds; once the segment is archived complete the partial no longer matters", p.Key, p.Segment, why)})
	}
	var bad string
	switch mc, me := info.Metadata[repository.MetaCompression], info.Metadata[repository.MetaEndLSN]; {
	case !metaOK:
		bad = "has no valid sha256/raw-size metadata"
	case wantRaw != wantLen:
		bad = fmt.Sprintf("has raw-size metadata %d, but its key's end LSN %s means %d bytes", wantRaw, p.End, wantLen)
	case mc != "" && mc != string(p.Compression):
		bad = fmt.Sprintf("is marked as compressed with %q but its key says %q", mc, p.Compression)
	case me != "" && me != p.End.String():
		bad = fmt.Sprintf("has end-lsn metadata %s, but its key says %s", me, p.End)
	}
	if bad != "" {
		s.count(0)
		damaged(bad)
		return nil
	}
	res, err := readThrough(rc, p.Compression, wantRaw, -1, s.opts.Identities, info.Metadata)
	if s.undecryptable(p.Key, err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s from %s: %w", p.Key, s.b.Location(), err)
	}
	s.count(res.stored)
	switch {
	case res.decodeErr != nil:
		damaged(fmt.Sprintf("does not decompress: %v", res.decodeErr))
	case res.raw != wantRaw:
		damaged(fmt.Sprintf("decompresses to %s bytes, its metadata says %d", sizeWord(res.raw, wantRaw), wantRaw))
	case !repository.EncryptedObject(info.Metadata) && res.sha256 != wantSum:
		damaged(fmt.Sprintf("has sha256 %s, its metadata says %s", res.sha256, wantSum))
	}
	return nil
}

// supersededWarning is the warning for the superseded partials ps of
// segment seg (in key order: the last ends furthest).
func (s *scan) supersededWarning(seg wal.Segment, ps []repository.Partial) {
	key, what := ps[0].Key, fmt.Sprintf("%s is superseded", ps[0].Key)
	if len(ps) > 1 {
		key, what = repository.PartialSegmentPrefix(seg), fmt.Sprintf("%d partials of segment %s (%s to %s) are superseded", len(ps), seg, ps[0].Key, ps[len(ps)-1].Key)
	}
	them := "them"
	if len(ps) == 1 {
		them = "it"
	}
	removes := "walvault delete removes " + them
	if s.id.Lock().Enabled() {
		removes += " once the Object Lock on " + them + " ends"
	}
	detail := fmt.Sprintf("%s: segment %s is archived complete, so wal-fetch never serves them (up to %s); %s", what, seg, ps[len(ps)-1].End, removes)
	if s.segmentHidden(seg) {
		// delete lists only visible objects: it keeps the partials
		// until the segment is visible again.
		detail = fmt.Sprintf("%s by segment %s, which is hidden behind a delete marker: run walvault repair, then %s", what, seg, removes)
	}
	s.r.warning(Finding{Kind: KindSupersededPartial, Key: key, Timeline: uint32(seg.Timeline), Detail: detail})
}

// partialReport fills a timeline's partial fields and returns the note
// about its newest partial ("" when it has none).
func (s *scan) partialReport(tr *TimelineReport) string {
	tl := s.partialTLs[wal.TimelineID(tr.Timeline)]
	if tl == nil {
		return ""
	}
	tr.ReceivedPartials = tl.count
	tr.NewestPartial, tr.NewestPartialEnd = tl.newest.Key, tl.newest.End.String()
	state := "not archived complete yet: wal-fetch serves it when a restore asks for the segment"
	if tl.superseded {
		state = "superseded: the segment is archived complete"
	}
	return fmt.Sprintf("timeline %d: %s of wal-receive, the newest ending at %s (segment %s, %s)",
		tr.Timeline, units.Plural(tl.count, "partial"), tl.newest.End, tl.newest.Segment, state)
}

// segmentHidden reports whether the complete segment is hidden behind a
// delete marker, under the key of whichever codec stored it.
func (s *scan) segmentHidden(seg wal.Segment) bool {
	for _, c := range repository.Compressions {
		if _, hidden := s.hidden[repository.WALKey(wal.FileName{Kind: wal.KindSegment, Timeline: seg.Timeline, Segment: seg}, c)]; hidden {
			return true
		}
	}
	return false
}
