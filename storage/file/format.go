package file

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/walvault/walvault/storage"
)

const (
	// magic opens every object file (see doc.go).
	magic = "WALVAULT-OBJECT-1\n"
	// fixedHeaderLen is the magic line plus the 4-byte metadata length.
	fixedHeaderLen = len(magic) + 4
	// maxMetadataLen bounds the metadata JSON, so a damaged length field
	// cannot make a reader allocate gigabytes.
	maxMetadataLen = 64 << 10
)

// errBadHeader says a file under the root is not an object this backend
// wrote (or is damaged). It is never "not found", and permanent: objects
// appear by rename, whole, so asking again reads the same bytes (a
// restore_command would otherwise retry for its whole --timeout).
var errBadHeader = storage.Permanent(errors.New("not a walvault object file (bad header); move it out of the repository or restore it from a copy"))

// encodeHeader returns the header that precedes an object's body.
func encodeHeader(md map[string]string) ([]byte, error) {
	if err := storage.ValidateMetadata(md); err != nil {
		return nil, err
	}
	if md == nil {
		md = map[string]string{}
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(md); err != nil { // keys come out sorted
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	body := bytes.TrimSuffix(js.Bytes(), []byte("\n"))
	if len(body) > maxMetadataLen {
		return nil, fmt.Errorf("metadata too large: %d bytes encoded, at most %d", len(body), maxMetadataLen)
	}
	h := make([]byte, 0, fixedHeaderLen+len(body))
	h = append(h, magic...)
	h = binary.BigEndian.AppendUint32(h, uint32(len(body)))
	h = append(h, body...)
	return h, nil
}

// readHeaderLen reads the fixed part of the header from r and returns the
// whole header's length (fixed part plus metadata).
func readHeaderLen(r io.Reader) (int64, uint32, error) {
	var fixed [fixedHeaderLen]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, 0, errBadHeader
		}
		return 0, 0, err
	}
	if string(fixed[:len(magic)]) != magic {
		return 0, 0, errBadHeader
	}
	n := binary.BigEndian.Uint32(fixed[len(magic):])
	if n > maxMetadataLen {
		return 0, 0, fmt.Errorf("%w: metadata length %d exceeds %d", errBadHeader, n, maxMetadataLen)
	}
	return int64(fixedHeaderLen) + int64(n), n, nil
}

// readHeader reads a whole header from r, leaving r at the body. It returns
// the header's length and the metadata (nil when there is none).
func readHeader(r io.Reader) (int64, map[string]string, error) {
	hlen, n, err := readHeaderLen(r)
	if err != nil {
		return 0, nil, err
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("%w: metadata truncated", errBadHeader)
		}
		return 0, nil, err
	}
	var md map[string]string
	if err := json.Unmarshal(js, &md); err != nil {
		return 0, nil, fmt.Errorf("%w: metadata: %v", errBadHeader, err)
	}
	if len(md) == 0 {
		md = nil
	}
	return hlen, md, nil
}
