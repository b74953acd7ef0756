//go:build tools

package veil

import (
	_ "filippo.io/edwards25519"
	_ "github.com/cloudflare/circl/kem/kyber/kyber1024"
	_ "github.com/coder/websocket"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/nats-io/nats.go"
	_ "github.com/ncruces/go-sqlite3/driver"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "google.golang.org/protobuf/encoding/protowire"
	_ "pgregory.net/rapid"
)
