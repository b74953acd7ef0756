package client

import (
	"context"
	"crypto/rand"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/groups"
	"github.com/veil-e2ee/veil/protocol"
)

// BenchmarkGroupSend1000 is the client's work for one message to a group
// of 1,000 members with one device each: encrypt once under the sender
// key and seal it for every member in one sealed sender v2 message, in
// one device-store transaction (what SendGroup does between queueing
// and the single upload). cpu-ms/op is the process CPU time per message
// (SealV2 spreads its per-recipient work over the cores, so wall time is
// lower on a multi-core machine).
func BenchmarkGroupSend1000(b *testing.B) {
	ctx := context.Background()
	ts := startServer(b, "sqlite")
	c, _ := register(b, ts, "bench")
	var accounts []string
	now := time.Now()
	err := c.update(ctx, func(tx *devicestore.Tx, cipher *protocol.Cipher) error {
		for i := range 1000 {
			id, _ := protocol.GenerateIdentityKeyPair(rand.Reader)
			spk, _ := protocol.GenerateSignedPreKey(rand.Reader, id, 1, now)
			kyber, _ := protocol.GenerateKyberPreKey(rand.Reader, id, 1, true, now)
			a := protocol.Address{Name: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), DeviceID: 1}
			bundle := &protocol.PreKeyBundle{RegistrationID: uint32(i + 1), DeviceID: 1, IdentityKey: id.Public,
				SignedPreKeyID: spk.ID, SignedPreKey: spk.KeyPair.Public, SignedPreKeySignature: spk.Signature,
				KyberPreKeyID: kyber.ID, KyberPreKey: kyber.KeyPair.Public, KyberPreKeySignature: kyber.Signature}
			if err := cipher.ProcessPreKeyBundle(ctx, a, bundle); err != nil {
				return err
			}
			accounts = append(accounts, a.Name)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var gid [groups.IDSize]byte
	rand.Read(gid[:])
	dist, err := c.ourSenderKey(ctx, gid, 0)
	if err != nil {
		b.Fatal(err)
	}
	err = c.update(ctx, func(tx *devicestore.Tx, _ *protocol.Cipher) error {
		_, err := protocol.NewGroupCipher(tx, c.rand).NewDistribution(ctx, protocol.Address{Name: c.self.AccountID, DeviceID: c.self.DeviceID}, dist)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	cert, err := c.senderCertificate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 160) // a short text, padded
	var size int
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		// What deliverGroup does once every member holds our sender key.
		members, err := c.store.SealRecipients(ctx, accounts, protocol.Address{})
		if err != nil {
			b.Fatal(err)
		}
		multi, _, err := c.sealGroup(ctx, gid, dist, cert, payload, members, nil)
		if err != nil {
			b.Fatal(err)
		}
		size = len(multi)
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(size), "upload-bytes")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
