// Package interop drives libsignal, the reference implementation of the Signal
// protocol, so that Veil's Go protocol can be tested against it.
//
// libsignal is run as the npm package @signalapp/libsignal-client, pinned to
// [LibsignalVersion] in package.json, inside a Node process (peer.mjs). The
// process hosts any number of named devices, each with its own in-memory
// session, identity and prekey stores, and answers one JSON request per line.
// A [Peer] is the Go side of that pipe.
//
// # Setup
//
// The package needs Node (20.11 or newer) on PATH and the pinned package
// installed next to this file: run `make interop-deps` (which runs `npm ci` in
// interop/). Without them [Start] skips the calling test and says what is
// missing, except when the environment has CI=true: there a missing reference
// peer is a failure, so that CI cannot go green without interop coverage.
//
// # Devices and addresses
//
// A device is created with [Peer.Create] and named by the caller ("alice",
// "bob-2", …). A remote party is addressed as libsignal addresses it: a name
// and a device id (1–127). Names are free-form strings; Signal uses ACI UUIDs.
// Identity trust is trust-on-first-use: the first identity key seen for an
// address is accepted, a different one later is reported as untrusted (error
// code [CodeUntrustedIdentity]) until [Peer.TrustIdentity] accepts it.
//
// # What it covers
//
// 1:1 sessions (PQXDH bundles, Signal and PreKey messages), safety numbers,
// XEdDSA signatures, sender keys (groups), and sealed sender v1 and v2 with
// certificates issued by the peer. [Peer.Bench] measures libsignal against
// itself, for comparison with Veil's own benchmarks.
//
// # Errors
//
// A failure inside libsignal comes back as a [*PeerError] carrying libsignal's
// error name (for example [CodeDuplicatedMessage]) and message text; it
// matches [ErrPeer] with [errors.Is]. Transport failures are [ErrClosed],
// [ErrTimeout] and [ErrProtocol], wrapped with the Node process's stderr when
// it has something to say.
//
// # Concurrency
//
// A Peer serializes its calls (one request in flight), so it is safe to use
// from several goroutines; the Node process handles one request at a time
// anyway. Use one Peer per test for isolation.
package interop
