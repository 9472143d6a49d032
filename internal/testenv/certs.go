package testenv

import "testing"

// WriteTestCerts writes a self-signed CA and a server certificate for
// 127.0.0.1 and localhost signed by it into dir, and returns the paths of
// the server cert, its key and the CA cert (the ones StartVersityTLS uses).
func WriteTestCerts(t testing.TB, dir string) (certFile, keyFile, caFile string) {
	t.Helper()
	return writeTestCerts(t, dir)
}
