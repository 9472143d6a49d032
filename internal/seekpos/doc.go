// Package seekpos turns the arguments of io.Seeker's Seek into an absolute
// position, for the readers in walvault that implement Seek over a body of
// known size (internal/membuf's buffer, the S3 backend's part bodies).
package seekpos
