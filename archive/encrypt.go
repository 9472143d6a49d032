package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"

	"github.com/walvault/walvault/internal/membuf"
	"github.com/walvault/walvault/repository"
)

// encodeEncrypted is encode for an encrypted repository: one read of the
// file feeds the plaintext's sha256 (kept locally, for the push-ahead
// record; never stored) and the compressing, encrypting writer; the keyed
// fingerprints (the metadata that makes re-pushes comparable) are derived
// from that sha256, no second pass over the plaintext. Files larger than
// maxInMemory are hashed first and streamed, as streamBody does.
func encodeEncrypted(f *os.File, name string, c repository.Codec) (body sizedReader, sum, fingerprints string, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, "", "", 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", "", 0, err
	}
	h := sha256.New()
	if fi.Size() > maxInMemory {
		if size, err = io.Copy(h, f); err != nil {
			return nil, "", "", 0, err
		}
		digest := h.Sum(nil)
		sum = hex.EncodeToString(digest)
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, "", "", 0, err
		}
		src := &verifyingReader{r: f, h: sha256.New(), want: sum, wantSize: size, name: name}
		return streamEncoded(src, c), sum, c.Recipients.FingerprintsOf(digest), size, nil
	}
	if c.Compression == repository.LZ4 {
		// wal-push's parallel lz4 encoder (sha256 on its own core), then
		// age over the compressed bytes, which are few.
		compressed, digest, n, err := encodeLZ4(f)
		if err != nil {
			return nil, "", "", 0, err
		}
		var out membuf.Buffer
		w, err := c.Recipients.NewWriter(&out)
		if err != nil {
			return nil, "", "", 0, err
		}
		if _, err := io.Copy(w, compressed); err != nil {
			return nil, "", "", 0, err
		}
		if err := w.Close(); err != nil {
			return nil, "", "", 0, err
		}
		return &out, hex.EncodeToString(digest), c.Recipients.FingerprintsOf(digest), n, nil
	}
	var buf membuf.Buffer
	w, err := c.NewWriter(&buf)
	if err != nil {
		return nil, "", "", 0, err
	}
	if size, err = io.Copy(io.MultiWriter(w, h), f); err != nil {
		return nil, "", "", 0, err
	}
	if err := w.Close(); err != nil {
		return nil, "", "", 0, err
	}
	digest := h.Sum(nil)
	return &buf, hex.EncodeToString(digest), c.Recipients.FingerprintsOf(digest), size, nil
}

// streamEncoded encodes src in codec c on a goroutine while the upload
// reads the result.
func streamEncoded(src io.Reader, c repository.Codec) sizedReader {
	pr, pw := io.Pipe()
	go func() {
		w, err := c.NewWriter(pw)
		if err == nil {
			_, err = io.Copy(w, src)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err) // nil closes with io.EOF
	}()
	return &unknownSize{pr, -1}
}
