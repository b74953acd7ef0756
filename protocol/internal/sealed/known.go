package sealed

import (
	"encoding/hex"
	"sync"
)

// knownServerCerts are the server certificates libsignal 0.90.0 lets a
// sender certificate name by id instead of embedding (to save space): the
// staging (2) and production (3) certificates of Signal's service and
// libsignal's test certificate 0x7357C357 (trust root: the all-zero
// private key; server key: the all-0xFF private key). They are data that
// must match libsignal's byte for byte; their signatures are still checked
// against the caller's trust root.
var knownServerCerts = map[uint32]string{
	2:          "0a25080212210539450d63ebd0752c0fd4038b9d07a916f5e174b756d409b5ca79f4c97400631e124064c5a38b1e927497d3d4786b101a623ab34a7da3954fae126b04dba9d7a3604ed88cdc8550950f0d4a9134ceb7e19b94139151d2c3d6e1c81e9d1128aafca806",
	3:          "0a250803122105bc9d1d290be964810dfa7e94856480a3f7060d004c9762c24c575a1522353a5a1240c11ec3c401eb0107ab38f8600e8720a63169e0e2eb8a3fae24f63099f85ea319c3c1c46d3454706ae2a679d1fee690a488adda98a2290b66c906bb60295ed781",
	0x7357C357: "0a2908d786df9a07122105847c0d2c375234f365e660955187a3735a0f7613d1609d3a6a4d8c53aeaa5a221240e0b9ebacdfc3aa2827f7924b697784d1c25e44ca05dd433e1a38dc6382eb2730d419ca9a250b1be9d5a9463e61efd6781777a91b83c97b844d014206e2829785",
}

var knownParsed = sync.OnceValue(func() map[uint32]*ServerCert {
	m := make(map[uint32]*ServerCert, len(knownServerCerts))
	for id, h := range knownServerCerts {
		b, err := hex.DecodeString(h)
		if err != nil {
			panic("sealed: bad known server certificate")
		}
		c, err := ParseServerCert(b)
		if err != nil || c.KeyID != id {
			panic("sealed: bad known server certificate")
		}
		m[id] = c
	}
	return m
})

// KnownServerCert returns the well-known server certificate with the given
// id, or nil.
func KnownServerCert(id uint32) *ServerCert { return knownParsed()[id] }
