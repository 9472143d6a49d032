package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/walvault/walvault/internal/seekpos"
	"github.com/walvault/walvault/internal/units"
	"github.com/walvault/walvault/storage"
)

// lockChecksum is sent with Object Lock writes: S3 refuses them without a
// checksum (Content-MD5 or x-amz-checksum-*), and the client otherwise sends
// none (see RequestChecksumCalculation in s3.go).
const lockChecksum = types.ChecksumAlgorithmCrc32

// maxSinglePut is the largest body an in-memory fast path sends in one
// PutObject; S3 takes up to 5 GiB, we stay well below.
const maxSinglePut = 1 << 30

// Put stores r under key. Up to PartSize bytes go in one PutObject with a
// seekable body; larger streams go in a multipart upload. The part buffers
// of all the Backend's Puts together are at most Concurrency (see
// partBuffer). IfNotExists sends If-None-Match: * (on
// PutObject, or on CompleteMultipartUpload, where S3 decides a multipart
// create), so the create is atomic on the server. A failed upload is
// aborted: no object and no parts are left.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	if opts.IfNotExists {
		// The token goes with the object: a create refused over it is an
		// earlier attempt of this very put (the SDK's, sendAgain's or the
		// retry decorator's) whose answer was lost, which stored it.
		if opts.Token == "" {
			opts.Token = storage.NewPutToken()
		}
		md := make(map[string]string, len(opts.Metadata)+1)
		maps.Copy(md, opts.Metadata)
		md[storage.PutTokenKey] = opts.Token
		opts.Metadata = md
	}
	err := b.put(ctx, key, r, opts)
	if opts.IfNotExists && errors.Is(err, storage.ErrExists) && b.storedBy(ctx, key, opts.Token) {
		return nil
	}
	if err != nil {
		return storage.OpError("put", key, err)
	}
	return nil
}

// storedBy says whether key's object carries token, so a put with it
// stored the object.
func (b *Backend) storedBy(ctx context.Context, key, token string) bool {
	okey, err := b.objectKey(key)
	if err != nil {
		return false
	}
	out, err := b.head(ctx, okey)
	return err == nil && out.Metadata[storage.PutTokenKey] == token
}

func (b *Backend) put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	okey, err := b.objectKey(key)
	if err != nil {
		return err
	}
	if err := storage.ValidateMetadata(opts.Metadata); err != nil {
		return storage.Permanent(err)
	}
	if ret := opts.Retention; ret != nil {
		if ret.Mode != storage.Governance && ret.Mode != storage.Compliance {
			return storage.Permanent(fmt.Errorf("unknown retention mode %q: want %s or %s", ret.Mode, storage.Governance, storage.Compliance))
		}
		if ret.Until.IsZero() {
			return storage.Permanent(errors.New("retention without a retain-until date"))
		}
		if err := b.checkObjectLock(ctx); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// A seekable body of known size needs no part buffer: it goes as it is
	// in one PutObject, which can rewind it to sign and to retry (wal-push
	// hands over segments this way). The reader must hold opts.Size bytes
	// from its current position.
	if rs, ok := r.(io.ReadSeeker); ok && opts.Size >= 0 && opts.Size <= maxSinglePut {
		// A reader that cannot tell its position (a pipe behind an
		// *os.File) takes the streaming path below.
		if start, err := rs.Seek(0, io.SeekCurrent); err == nil {
			return b.putObject(ctx, okey, &offsetReadSeeker{rs: rs, base: start, size: opts.Size}, opts.Size, opts)
		}
	}
	first, release, eof, err := b.readFirst(ctx, r, opts.Size)
	if err != nil {
		release()
		return fmt.Errorf("reading the data to upload: %w", err)
	}
	if eof {
		defer release()
		if err := ctx.Err(); err != nil {
			return err
		}
		return b.putBuffered(ctx, okey, first, opts)
	}
	// first is a full part buffer. Read one more byte to tell "exactly
	// PartSize" (one PutObject) from "more" (multipart); it then starts the
	// second part.
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	switch {
	case err == io.EOF:
		defer release()
		if err := ctx.Err(); err != nil {
			return err
		}
		return b.putBuffered(ctx, okey, first, opts)
	case err != nil:
		release()
		return fmt.Errorf("reading the data to upload: %w", err)
	}
	return b.putMultipart(ctx, okey, first, release, io.MultiReader(bytes.NewReader(one[:n]), r), opts)
}

// readFirst reads up to PartSize bytes of r. eof reports that r ended within
// them (the object fits one PutObject). Otherwise the buffer is full and r
// has more. release gives the buffer back (see partBuffer); call it also
// on an error.
func (b *Backend) readFirst(ctx context.Context, r io.Reader, sizeHint int64) (data []byte, release func(), eof bool, err error) {
	noBuffer := func() {}
	var head []byte // read before a part buffer was needed
	if sizeHint >= 0 && sizeHint < b.partSize {
		// A small object, if the hint is right: avoid a whole part buffer.
		buf := make([]byte, sizeHint+1)
		n, err := io.ReadFull(r, buf)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return buf[:n], noBuffer, true, nil
		case err != nil:
			return nil, noBuffer, false, err
		}
		head = buf[:n] // the hint was wrong: go on in a part buffer
	}
	pb, release, err := b.partBuffer(ctx)
	if err != nil {
		return nil, noBuffer, false, err
	}
	buf := *pb
	data = append(buf[:0], head...)
	n, err := io.ReadFull(r, buf[len(data):])
	data = buf[:len(data)+n]
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return data, release, true, nil
	case err != nil:
		return nil, release, false, err
	}
	return data, release, false, nil
}

// putObject sends one PutObject with a seekable body, so the SDK can sign,
// checksum and retry it.
func (b *Backend) putObject(ctx context.Context, okey string, body io.ReadSeeker, size int64, opts storage.PutOptions) error {
	tracked := &furthestRead{rs: body}
	err := b.putError(b.sendPutObject(ctx, okey, tracked, size, opts), opts)
	if read := tracked.furthest.Load(); err != nil && errors.Is(err, context.DeadlineExceeded) && read > 0 && read < size {
		// Not "no answer": the link moved bytes, too slowly to carry the
		// object before the deadline, and every attempt starts over.
		return fmt.Errorf("the upload to %s was still sending when the deadline came (%s of %s sent): the link is too slow to carry it within the deadline; raise --timeout, or find what slows the link: %w",
			b.location, units.Bytes(read), units.Bytes(size), context.DeadlineExceeded)
	}
	return err
}

// furthestRead is a body that remembers how far into it a request read.
type furthestRead struct {
	rs       io.ReadSeeker
	pos      int64
	furthest atomic.Int64
}

func (f *furthestRead) Read(p []byte) (int, error) {
	n, err := f.rs.Read(p)
	f.pos += int64(n)
	if f.pos > f.furthest.Load() {
		f.furthest.Store(f.pos)
	}
	return n, err
}

func (f *furthestRead) Seek(offset int64, whence int) (int64, error) {
	pos, err := f.rs.Seek(offset, whence)
	if err == nil {
		f.pos = pos
	}
	return pos, err
}

// putBuffered sends a body read from a stream into memory (data) in one
// PutObject, sent again through an outage (sendAgain): the retry decorator
// cannot redo a Put whose reader is spent, and this is the last, short
// part of every backup archive.
func (b *Backend) putBuffered(ctx context.Context, okey string, data []byte, opts storage.PutOptions) error {
	err := b.sendAgain(ctx, "put", okey, func() error {
		return b.sendPutObject(ctx, okey, bytes.NewReader(data), int64(len(data)), opts)
	})
	return b.putError(err, opts)
}

// sendPutObject sends one PutObject and returns the SDK's error as it is.
func (b *Backend) sendPutObject(ctx context.Context, okey string, body io.ReadSeeker, size int64, opts storage.PutOptions) error {
	in := &s3.PutObjectInput{
		Bucket:        &b.bucket,
		Key:           aws.String(okey),
		Body:          body,
		ContentLength: aws.Int64(size),
		Metadata:      opts.Metadata,
	}
	if opts.IfNotExists {
		in.IfNoneMatch = aws.String("*")
	}
	in.ServerSideEncryption, in.SSEKMSKeyId = b.serverSideEncryption()
	if ret := opts.Retention; ret != nil {
		in.ObjectLockMode = types.ObjectLockMode(ret.Mode)
		in.ObjectLockRetainUntilDate = aws.Time(ret.Until.UTC())
		in.ChecksumAlgorithm = lockChecksum
	}
	_, err := b.client.PutObject(ctx, in)
	return err
}

// putError translates a write's error: a failed condition is ErrExists, a
// refused retention on a bucket without Object Lock is ErrUnsupported.
func (b *Backend) putError(err error, opts storage.PutOptions) error {
	if err == nil {
		return nil
	}
	if opts.IfNotExists && isPreconditionFailed(err) {
		return fmt.Errorf("%w (%v)", storage.ErrExists, err)
	}
	if opts.Retention != nil && isLockUnsupported(err) {
		return b.lockUnsupported(err)
	}
	return b.translate(err)
}

// isLockUnsupported reports S3's answer to a retention on a bucket without
// Object Lock: 400 InvalidRequest "Bucket is missing Object Lock
// Configuration" (AWS; Versity says "ObjectLockConfiguration").
func isLockUnsupported(err error) bool {
	code, _ := errorCode(err)
	if code == "ObjectLockConfigurationNotFoundError" || code == "InvalidBucketObjectLockConfiguration" {
		return true
	}
	var ae interface{ ErrorMessage() string }
	if code == codeInvalidRequest && errors.As(err, &ae) {
		msg := ae.ErrorMessage()
		return containsFold(msg, "object lock") || containsFold(msg, "objectlock")
	}
	return false
}

// partBuffer waits for one of the Backend's Concurrency part-buffer slots
// (or for ctx to end) and returns a buffer; release gives back both.
//
// The slots are the Backend's, not one Put's: two Puts that overlap (the
// next part of a backup starts while the previous one sends its last
// parts and completes) share the same PartSize x Concurrency bytes.
//
// Why this cannot deadlock: a slot is held only while its buffer is
// filled from a Put's reader, or while requests that carry it (or precede
// it: CreateMultipartUpload) run, and those end on their own (answered,
// failed, retried out or cancelled), whatever other Puts do. So a Put
// waits for a slot only until another Put's request ends or its reader
// fills a buffer; a deadlock needs every slot held by a filling Put whose
// reader waits for a Put that waits for a slot. A Put that has read its
// body to the end takes no more slots, and backup-push's parts wait only
// on that: part N+1's Put starts once N's has read its body, and its
// reader holds back the end of N+1's body until N's Put has returned, so
// the one slot it holds meanwhile keeps from nothing N still needs.
// Every path of a Put that fails or is cancelled gives back what it
// took, its uploads' slots too (errgroup's Wait), before it returns.
func (b *Backend) partBuffer(ctx context.Context) (pb *[]byte, release func(), err error) {
	select {
	case b.partSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	pb = b.buffers.Get()
	return pb, func() { b.buffers.Put(pb); <-b.partSlots }, nil
}

// putMultipart uploads first (a full part buffer) and then rest in parts.
// Its buffers, first included, come from partBuffer.
func (b *Backend) putMultipart(ctx context.Context, okey string, first []byte, releaseFirst func(), rest io.Reader, opts storage.PutOptions) (err error) {
	create := &s3.CreateMultipartUploadInput{
		Bucket:   &b.bucket,
		Key:      aws.String(okey),
		Metadata: opts.Metadata,
	}
	create.ServerSideEncryption, create.SSEKMSKeyId = b.serverSideEncryption()
	if ret := opts.Retention; ret != nil {
		create.ObjectLockMode = types.ObjectLockMode(ret.Mode)
		create.ObjectLockRetainUntilDate = aws.Time(ret.Until.UTC())
		create.ChecksumAlgorithm = lockChecksum
	}
	// The upload is created while the second part fills: waiting for the
	// answer first would stop reading for a round trip per object
	// (backup-push: PostgreSQL's stream, once every 256 MiB). Part uploads
	// wait for it; if it fails, they fail with its error.
	var (
		uploadID  *string
		createErr error
	)
	created := make(chan struct{})
	go func() {
		defer close(created)
		// A create the server carried out must be heard of, so that the
		// upload it made is aborted: cancelling the Put cuts the request
		// only after createGrace.
		cctx, stop := withGrace(ctx, createGrace)
		defer stop()
		var cout *s3.CreateMultipartUploadOutput
		err := b.sendAgain(ctx, "create the multipart upload of", okey, func() (err error) {
			cout, err = b.client.CreateMultipartUpload(cctx, create, b.multipartRetries)
			return err
		})
		if err != nil {
			createErr = b.putError(err, opts)
			return
		}
		uploadID = cout.UploadId
	}()
	// partCut: a part request ended without its answer (cancelled, cut
	// off), so the server may still be carrying it out.
	var partCut atomic.Bool
	defer func() {
		<-created // no request outlives the Put
		if err != nil && uploadID != nil {
			b.abort(ctx, okey, uploadID, partCut.Load())
		}
	}()

	var (
		mu    sync.Mutex
		parts []types.CompletedPart
	)
	g, gctx := errgroup.WithContext(ctx)
	// A part buffer is taken before it is filled and given back when its
	// upload ends.
	upload := func(num int32, data []byte, release func()) {
		g.Go(func() error {
			defer release()
			select {
			case <-created:
			case <-gctx.Done():
				return gctx.Err()
			}
			if createErr != nil {
				return createErr
			}
			var out *s3.UploadPartOutput
			err := b.sendAgain(gctx, fmt.Sprintf("upload part %d of", num), okey, func() (err error) {
				in := &s3.UploadPartInput{
					Bucket:        &b.bucket,
					Key:           aws.String(okey),
					UploadId:      uploadID,
					PartNumber:    aws.Int32(num),
					Body:          bytes.NewReader(data), // from its start each time
					ContentLength: aws.Int64(int64(len(data))),
				}
				if opts.Retention != nil {
					in.ChecksumAlgorithm = lockChecksum
				}
				out, err = b.client.UploadPart(gctx, in, b.multipartRetries)
				return err
			})
			if err != nil {
				partCut.Store(true)
				return fmt.Errorf("part %d: %w", num, b.translate(err))
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{
				ETag:          out.ETag,
				PartNumber:    aws.Int32(num),
				ChecksumCRC32: out.ChecksumCRC32,
			})
			mu.Unlock()
			return nil
		})
	}

	upload(1, first, releaseFirst)
	for num := int32(2); ; num++ {
		pb, release, err := b.partBuffer(gctx)
		if err != nil {
			return failUpload(ctx, g, nil)
		}
		n, rerr := io.ReadFull(rest, *pb)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			release()
			return failUpload(ctx, g, fmt.Errorf("reading the data to upload: %w", rerr))
		}
		stopped := gctx.Err() != nil // a part failed, or ctx ended
		if stopped || n == 0 || num > maxParts {
			release()
		}
		switch {
		case stopped:
			return failUpload(ctx, g, nil)
		case n == 0:
			// r ended exactly at a part boundary.
		case num > maxParts:
			return failUpload(ctx, g, storage.Permanent(fmt.Errorf(
				"object larger than %d parts of %d bytes: raise the S3 part size", maxParts, b.partSize)))
		default:
			upload(num, (*pb)[:n], release)
		}
		if rerr != nil {
			break // r ended
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	complete := &s3.CompleteMultipartUploadInput{
		Bucket:          &b.bucket,
		Key:             aws.String(okey),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if opts.IfNotExists {
		complete.IfNoneMatch = aws.String("*")
	}
	err = b.sendAgain(ctx, "complete the multipart upload of", okey, func() error {
		_, err := b.client.CompleteMultipartUpload(ctx, complete, b.multipartRetries)
		return err
	})
	if err != nil {
		return b.putError(err, opts)
	}
	return nil
}

// sendAgain runs request, one request of a multipart upload (whose body
// is in memory, so it can be sent again), until it succeeds, fails for
// good, or requestRetryTime has passed since its first attempt. The SDK's
// own retries (multipartRetries) ride out a blip; this, an outage shorter
// than the command's --timeout, the budget storage.WithRetry gives every
// other call. A backup of hours is not lost to a gateway restart.
func (b *Backend) sendAgain(ctx context.Context, what, okey string, request func() error) error {
	start := time.Now()
	warned := false
	for delay := abortRetryDelay; ; delay = min(2*delay, sendAgainMaxDelay) {
		err := request()
		if err == nil || ctx.Err() != nil || storage.IsPermanent(b.translate(err)) {
			return err
		}
		failing := time.Since(start)
		if failing+delay >= b.requestRetryTime {
			return fmt.Errorf("%w (sent again for %s)", err, failing.Round(time.Millisecond))
		}
		if log := storage.CallLog(ctx, b.log); !warned && failing >= sendAgainWarnAfter && log != nil {
			warned = true
			log.Warn("storage keeps failing, still retrying", "op", what, "key", okey, "for", failing.Round(time.Millisecond), "err", err)
		}
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// failUpload waits for the part uploads to stop and returns why: cause if
// given, else the caller's context error, else the first upload error.
func failUpload(ctx context.Context, g *errgroup.Group, cause error) error {
	werr := g.Wait()
	switch {
	case cause != nil:
		return cause
	case ctx.Err() != nil:
		return ctx.Err()
	case werr != nil:
		return werr
	}
	return context.Canceled
}

// createGrace is how long a multipart upload's create request may go on
// once its Put is cancelled (see withGrace).
const createGrace = 5 * time.Second

// withGrace is ctx whose end reaches the context it returns only grace
// later: a request already sent may still answer. stop releases it.
func withGrace(ctx context.Context, grace time.Duration) (context.Context, func()) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var timer *time.Timer
	var mu sync.Mutex
	stopAfter := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		timer = time.AfterFunc(grace, cancel)
	})
	return gctx, func() {
		stopAfter()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// abort removes a failed multipart upload and its parts. It runs on a fresh
// short context: the caller's may be what failed the upload (Ctrl-C, a
// deadline). The outage that failed the upload may also fail the abort,
// so a transient failure is retried, with backoff, for up to
// abortTimeout: a short outage then leaves nothing behind.
//
// One abort that succeeded is not always the end: S3 documents that a
// part upload still in progress may land after it, so that the upload
// has to be aborted again (the posix backend of the Versity gateway
// re-creates it so). The upload is looked for once aborted
// (ListMultipartUploads, allowed to credentials that may clean up
// uploads) and aborted again while it is listed; after partCut (a part
// request given up before its answer) the look waits abortSettle first.
func (b *Backend) abort(ctx context.Context, okey string, uploadID *string, partCut bool) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-actx.Done():
			// A failed abort leaves parts that verify reports, delete
			// aborts and a bucket lifecycle rule
			// (AbortIncompleteMultipartUpload) removes.
			return false
		case <-t.C:
			return true
		}
	}
	for delay := abortRetryDelay; ; delay = min(2*delay, abortMaxRetryDelay) {
		_, err := b.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: &b.bucket, Key: aws.String(okey), UploadId: uploadID,
		}, b.multipartRetries)
		if code, _ := errorCode(err); err == nil || code == "NoSuchUpload" {
			if partCut && !wait(abortSettle) {
				return
			}
			partCut = false
			if !b.uploadListed(actx, okey, *uploadID) {
				return
			}
		} else if storage.IsPermanent(b.translate(err)) {
			return
		}
		if !wait(delay) {
			return
		}
	}
}

// uploadListed says whether ListMultipartUploads still lists the upload
// id of object key okey; a listing that fails counts as not: the abort
// was answered, and there is nothing more to go on.
func (b *Backend) uploadListed(ctx context.Context, okey, id string) bool {
	listed := false
	b.listUploads(ctx, okey, okey, func(u storage.Upload) error {
		listed = listed || u.ID == id
		return nil
	})
	return listed
}

// Backoff between attempts to abort a failed multipart upload.
const (
	abortRetryDelay    = 250 * time.Millisecond
	abortMaxRetryDelay = 2 * time.Second
	// abortSettle is how long a part request given up on may take to
	// land on the server after the abort.
	abortSettle = 500 * time.Millisecond
	// sendAgain's backoff cap, and how long a request fails before it
	// says so.
	sendAgainMaxDelay  = 5 * time.Second
	sendAgainWarnAfter = 5 * time.Second
)

// offsetReadSeeker presents size bytes of rs, from base on, as a body that
// starts at 0: the SDK seeks to 0 to rewind a body.
type offsetReadSeeker struct {
	rs         io.ReadSeeker
	base, size int64
	pos        int64
}

func (o *offsetReadSeeker) Read(p []byte) (int, error) {
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if int64(len(p)) > o.size-o.pos {
		p = p[:o.size-o.pos]
	}
	n, err := o.rs.Read(p)
	o.pos += int64(n)
	if err == io.EOF && o.pos < o.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (o *offsetReadSeeker) Seek(offset int64, whence int) (int64, error) {
	abs, err := seekpos.Resolve(o.pos, o.size, offset, whence)
	if err != nil {
		return 0, err
	}
	if _, err := o.rs.Seek(o.base+abs, io.SeekStart); err != nil {
		return 0, err
	}
	o.pos = abs
	return abs, nil
}
