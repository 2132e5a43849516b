package hsm

import "fmt"

// Sealed blob layout (version 1):
//
//	version (1) | label length L (1) | key label (L) | nonce (12) | ciphertext | tag (16)
//
// The GCM additional data is the header (version, L, label) followed by the
// caller's AAD: the header is self-delimiting, so the concatenation is
// unambiguous, and a blob whose label was rewritten to name another key fails
// authentication under that key.
const (
	// BlobVersion is the format version written by Seal.
	BlobVersion = 1
	// NonceSize is the GCM nonce length: 96 bits, drawn at random per Seal.
	NonceSize = 12
	// TagSize is the GCM tag length: 128 bits.
	TagSize = 16
	// MaxPlaintext bounds what Seal accepts; secrets here are a few dozen bytes.
	MaxPlaintext = 64 << 10
)

// Overhead returns the blob size minus the plaintext size for a key label.
func Overhead(keyLabel string) int { return 2 + len(keyLabel) + NonceSize + TagSize }

// appendHeader appends the blob header naming keyLabel to dst.
func appendHeader(dst []byte, keyLabel string) []byte {
	dst = append(dst, BlobVersion, byte(len(keyLabel)))
	return append(dst, keyLabel...)
}

// parsedBlob holds slices into a blob; it copies nothing.
type parsedBlob struct {
	label  string
	header []byte
	nonce  []byte
	sealed []byte // ciphertext || tag
}

// parseBlob splits a blob into its parts, checking only structure.
func parseBlob(blob []byte) (parsedBlob, error) {
	if len(blob) < 2 {
		return parsedBlob{}, fmt.Errorf("%w: %d bytes is shorter than a header", ErrMalformed, len(blob))
	}
	if blob[0] != BlobVersion {
		return parsedBlob{}, fmt.Errorf("%w: unknown version %d", ErrMalformed, blob[0])
	}
	l := int(blob[1])
	if l == 0 {
		return parsedBlob{}, fmt.Errorf("%w: empty key label", ErrMalformed)
	}
	hdrEnd := 2 + l
	// At least one byte of ciphertext: Seal refuses empty plaintexts.
	if len(blob) < hdrEnd+NonceSize+TagSize+1 {
		return parsedBlob{}, fmt.Errorf("%w: %d bytes is too short", ErrMalformed, len(blob))
	}
	if len(blob) > hdrEnd+NonceSize+MaxPlaintext+TagSize {
		return parsedBlob{}, fmt.Errorf("%w: %d bytes is too long", ErrMalformed, len(blob))
	}
	return parsedBlob{
		label:  string(blob[2:hdrEnd]),
		header: blob[:hdrEnd],
		nonce:  blob[hdrEnd : hdrEnd+NonceSize],
		sealed: blob[hdrEnd+NonceSize:],
	}, nil
}

// BlobKeyLabel returns the label of the wrapping key a blob was sealed under,
// so rotation tooling can find the blobs still sealed under an old key. It
// checks structure only; the label is not authenticated until Open.
func BlobKeyLabel(blob []byte) (string, error) {
	p, err := parseBlob(blob)
	if err != nil {
		return "", err
	}
	return p.label, nil
}

// gcmAAD binds the header to the caller's AAD.
func gcmAAD(header, aad []byte) []byte {
	out := make([]byte, 0, len(header)+len(aad))
	out = append(out, header...)
	return append(out, aad...)
}
