// Package server is Veil's blind relay: an HTTP API and WebSocket push
// service that stores accounts, devices, public prekeys and per-device
// queues of opaque envelopes, and never sees message content.
//
// Build one with [New] from a [Config] (a [store.Store], a server secret,
// optional clock, randomness, logger, limits and [wake.Waker]), then
// [Server.Serve] a listener and [Server.Shutdown] it. Nothing is global:
// metrics live on the server's own registry ([Server.Registry]).
//
// # API
//
// The routes, their status codes and the JSON shapes are in
// openapi.json (served at /v1/openapi.json, kept equal to the router by a
// test) and explained in docs/API.md, with the WebSocket frames. Every
// error is {"error":{"code","message"}}; client mistakes are 4xx, never
// 5xx, and decoders are strict (unknown fields, non-canonical base64 and
// trailing data are rejected) and fuzzed.
//
// # Authentication
//
// HTTP Basic with "<account id>.<device id>" and the device's 32-byte
// credential (base64). Only [CredentialHash] of it is stored, compared in
// constant time; an unknown device costs the same comparison. A device
// reads and acknowledges only its own queue: no route names another
// device's queue.
//
// # Delivery
//
// A send is answered after the store commits it; the server then
// publishes a wake-up for each recipient device. The node holding that
// device's WebSocket pushes envelopes in sequence order with at most
// Limits.MaxInFlight unacknowledged, sends queue_empty once the backlog is
// pushed, and deletes each envelope when its ack arrives. A newer
// connection of the same device closes older ones on every node. Each
// connection also rescans its queue at every ping, so a lost wake-up only
// delays a push.
//
// # Privacy of operations
//
// Rate-limit buckets, wake-up tokens and log pseudonyms are keyed hashes
// under Config.Secret, so the database, the bus and the logs hold no
// social graph, no IP address and no raw account id. Logs pass through a
// redaction filter; metric labels are route names, status codes,
// operation names and key kinds only.
package server
