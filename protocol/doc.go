// Package protocol is the Signal protocol — PQXDH session setup and the
// Double Ratchet for one-to-one sessions, sender keys for groups, and
// sealed sender (v1 and the multi-recipient v2) with sender and server
// certificates — wire-compatible with libsignal (checked against
// @signalapp/libsignal-client 0.90.0).
//
// It performs no I/O. Keys, sessions and identities live in stores the
// caller implements ([IdentityStore], [PreKeyStore], [SignedPreKeyStore],
// [KyberPreKeyStore], [SessionStore]); randomness and the clock are passed
// to [NewCipher]. [InMemoryStore] implements every store for tests.
//
// # Keys
//
// A device has an identity key pair ([GenerateIdentityKeyPair]), a
// registration id ([GenerateRegistrationID]), one-time EC prekeys
// ([GeneratePreKeys]), a signed prekey ([GenerateSignedPreKey]) and signed
// Kyber1024 prekeys ([GenerateKyberPreKey]), one-time or last resort. Their
// public halves form a [PreKeyBundle], which a server hands to peers.
// Serialized forms are libsignal's: 33-byte EC public keys starting 0x05,
// 1,569-byte Kyber public keys starting 0x08, 64-byte XEdDSA signatures.
//
// # Sessions
//
// [Cipher.ProcessPreKeyBundle] starts a session as initiator;
// [Cipher.Encrypt] and [Cipher.Decrypt] do the rest. The first messages
// of a new session are PreKey messages ([PreKeyMessageType]); the
// responder's [Cipher.Decrypt] sets its side of the session up from them.
// Messages may arrive out of order, late (within libsignal's limits) or
// twice: a duplicate returns [ErrDuplicateMessage] and changes nothing.
//
// # Groups
//
// A [GroupCipher] over a [SenderKeyStore] gives each sending device a
// sender key per group ([DistributionID]): [GroupCipher.NewDistribution]
// makes the SenderKeyDistributionMessage members process with
// [GroupCipher.ProcessDistribution]; [GroupCipher.Encrypt] then encrypts a
// message once for everyone, signed with XEdDSA. [GroupCipher.Rotate]
// starts a new chain (after a member leaves).
//
// # Sealed sender
//
// [Cipher.SealedEncrypt] and [Cipher.SealV1] hide the sender of a message
// from the server inside an [UnidentifiedContent] carrying a
// [SenderCertificate] ([IssueSenderCertificate], signed by a server key
// that a [ServerCertificate] from the trust root vouches for);
// [Cipher.SealV2] seals one message for many recipients, which a server
// splits with [ParseMultiRecipient]. [Cipher.Unseal] opens either;
// [SenderCertificate.Validate] checks the chain, expiry and revoked keys,
// and [Cipher.SealedDecrypt] does all of it for a one-to-one message.
//
// # Failures
//
// A failed decryption leaves every store exactly as it was. Towards the
// peer, failures are indistinguishable ([ErrDecryption]). A changed
// identity key is an [*UntrustedIdentityError], which the application must
// show the user before messages flow again.
//
// # Verification
//
// [NewSafetyNumber] computes the 60-digit safety number and its scannable
// (QR) form, equal to libsignal's for the same keys and identifiers.
//
// See docs/PROTOCOL.md for the derivations, limits and the few places
// where Veil is stricter than libsignal.
package protocol
