package main

import (
	"log/slog"
	"strconv"
	"strings"

	"github.com/walvault/walvault/crypt"
)

// encryptSettings is encrypt-to, for the commands that write objects.
type encryptSettings struct {
	Recipients *crypt.Recipients // nil: in the clear
}

func (e *encryptSettings) bind(b *binder) {
	b.add("encrypt-to", func(v string) (err error) {
		if v == "" {
			e.Recipients = nil
			return nil
		}
		if e.Recipients, err = crypt.ParseRecipients(v); err != nil {
			return invalid("encrypt-to", err.Error())
		}
		return nil
	})
}

// decryptSettings is decrypt-with, for the commands that read contents.
type decryptSettings struct {
	Identities *crypt.Identities // nil: none configured
	// modeWarning is set when the identity file is readable by others;
	// logged once the command has a logger (warnMode).
	modeWarning string
}

func (d *decryptSettings) bind(b *binder) {
	b.add("decrypt-with", func(v string) (err error) {
		d.Identities, d.modeWarning = nil, ""
		if v == "" {
			return nil
		}
		if d.Identities, d.modeWarning, err = crypt.LoadIdentities(v); err != nil {
			return invalid("decrypt-with", err.Error())
		}
		return nil
	})
}

// warnMode logs the identity file's mode warning, if any.
func (d decryptSettings) warnMode(log *slog.Logger) {
	if d.modeWarning != "" {
		log.Warn(d.modeWarning)
	}
}

// bindAllowHTTP binds s3-allow-http and refuses an http:// s3-endpoint
// without it: over plain HTTP every object and every request's signature
// can be read (and changed) on the way, which nobody should get by a typo.
func (cfg *Config) bindAllowHTTP(b *binder) {
	b.add("s3-allow-http", func(v string) (err error) {
		if cfg.AllowHTTP, err = strconv.ParseBool(v); err != nil {
			return invalid("s3-allow-http", "want true or false")
		}
		cfg.S3.AllowHTTP = cfg.AllowHTTP
		return nil
	})
	b.check(func() error {
		if strings.HasPrefix(strings.ToLower(cfg.S3.Endpoint), "http://") && !cfg.AllowHTTP {
			return invalid("s3-endpoint", "http:// sends every object and request unencrypted over the network: use https://, or set s3-allow-http true (WALVAULT_S3_ALLOW_HTTP) for a loopback or test server")
		}
		return nil
	})
}

// bindSSE binds s3-sse and s3-sse-kms-key-id: storage-side encryption
// sent with every write, beside (not instead of) encrypt-to.
func (cfg *Config) bindSSE(b *binder) {
	b.add("s3-sse", func(v string) error {
		switch strings.ToLower(v) {
		case "":
			cfg.S3.SSE = ""
		case "aes256":
			cfg.S3.SSE = "AES256"
		case "aws:kms":
			cfg.S3.SSE = "aws:kms"
		default:
			return invalid("s3-sse", "want AES256 or aws:kms")
		}
		return nil
	})
	b.add("s3-sse-kms-key-id", func(v string) error { cfg.S3.SSEKMSKeyID = v; return nil })
	b.check(func() error {
		if cfg.S3.SSEKMSKeyID != "" && cfg.S3.SSE != "aws:kms" {
			return invalid("s3-sse-kms-key-id", "a KMS key needs s3-sse aws:kms")
		}
		return nil
	})
}
