// Package bench holds comparative benchmarks of Veil's protocol code against other Signal
// protocol implementations. It is its own Go module so that the peers it measures never enter
// the main module's dependency graph, and so that `go test ./...` in the repository root does
// not run it.
//
// # Peers
//
// The peer/mau package benchmarks go.mau.fi/libsignal (a Go port of libsignal-protocol-java,
// X3DH and the Double Ratchet, no PQXDH). Veil's own benchmarks of the same shape sit beside
// it so the figures can be read side by side.
package bench
