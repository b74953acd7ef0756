// Package sealed holds the formats and cryptography of libsignal's sealed
// sender (rust/protocol/src/sealed_sender.rs, proto/sealed_sender.proto):
// server and sender certificates, the UnidentifiedSenderMessageContent
// (USMC) they travel in, the v1 (0x11) and v2 (0x22/0x23) envelopes around
// it, and AES-256-GCM-SIV (RFC 8452), which v2 needs and the standard
// library lacks. Package protocol builds the public API on top.
//
// # Decoding
//
// The protobuf messages here are signed or encrypted as opaque bytes, so
// their decoders follow prost (the field order is free, unknown fields are
// skipped) rather than wire's canonical rules; they are stricter than prost
// only in rejecting a known field that occurs twice. The binary v2 format
// must have minimal varints.
//
// # Caches
//
// Two process-wide, bounded caches save public-key operations that repeat
// from message to message without changing any result: the X25519
// agreement between two identity keys ([StaticAgreement]) and the
// signatures that verified ([VerifyCached]), keyed by a digest of the exact
// key, message and signature.
//
// # Errors
//
// [ErrMalformed] is every decoding failure and [ErrVersion] an unknown
// version byte; [ErrDecrypt] is every cryptographic failure, deliberately
// without detail.
package sealed

import "errors"

var (
	// ErrMalformed: the input does not decode.
	ErrMalformed = errors.New("sealed: malformed message")
	// ErrVersion: the version byte is not one this package knows.
	ErrVersion = errors.New("sealed: unknown version")
	// ErrDecrypt: a MAC, tag or key check failed.
	ErrDecrypt = errors.New("sealed: decryption failed")
)
