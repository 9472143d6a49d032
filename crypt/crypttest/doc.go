// Package crypttest makes age key pairs for tests: an identity file of
// the test's own and the parsed recipients and identities, so every
// package's encryption tests build their keys the same way.
package crypttest
