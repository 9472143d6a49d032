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
// record; never stored), its keyed fingerprints (the metadata that makes
// re-pushes comparable) and the compressing, encrypting writer. Files
// larger than maxInMemory are fingerprinted first and streamed, as
// streamBody does.
func encodeEncrypted(f *os.File, name string, c repository.Codec) (body sizedReader, sum, fingerprints string, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, "", "", 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", "", 0, err
	}
	h := sha256.New()
	fp := c.Recipients.NewFingerprinter()
	if fi.Size() > maxInMemory {
		if size, err = io.Copy(io.MultiWriter(h, fp), f); err != nil {
			return nil, "", "", 0, err
		}
		sum = hex.EncodeToString(h.Sum(nil))
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, "", "", 0, err
		}
		src := &verifyingReader{r: f, h: sha256.New(), want: sum, wantSize: size, name: name}
		return streamEncoded(src, c), sum, fp.Sum(), size, nil
	}
	if c.Compression == repository.LZ4 {
		// wal-push's parallel lz4 encoder (sha256 on its own core), then
		// age over the compressed bytes, which are few: the fingerprints
		// are the only extra pass over the plaintext.
		compressed, digest, n, err := encodeLZ4(io.TeeReader(f, fp))
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
		return &out, hex.EncodeToString(digest), fp.Sum(), n, nil
	}
	var buf membuf.Buffer
	w, err := c.NewWriter(&buf)
	if err != nil {
		return nil, "", "", 0, err
	}
	if size, err = io.Copy(io.MultiWriter(w, h, fp), f); err != nil {
		return nil, "", "", 0, err
	}
	if err := w.Close(); err != nil {
		return nil, "", "", 0, err
	}
	return &buf, hex.EncodeToString(h.Sum(nil)), fp.Sum(), size, nil
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
