#!/usr/bin/env bash
# The test command: formatting, vet, staticcheck, unit tests (with the race detector) and
# the integration tests against real PostgreSQL 15 and a real S3 server.
# Missing servers make the integration tests fail with install instructions;
# ./scripts/install-deps.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"

unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting:"
	echo "$unformatted"
	exit 1
fi
go vet ./...
# staticcheck, pinned: finds values never used (such as a shadowed err),
# dead code and API misuse that vet does not.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Unit and conformance tests, with the race detector.
go test -race -count=1 $(go list ./... | grep -v -e /integration -e /internal/testenv)
# End-to-end tests: real servers, the built binary; no race detector (the
# binary under test runs in its own processes).
go test -count=1 -timeout 30m ./internal/testenv/ ./integration/
