package client

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
)

// TestBackupRestore: a backup, then 1,000 more messages, then a restore
// on a fresh device (every old device is gone): the history up to the
// backup is there, contacts keep the same safety number, and the chat
// continues both ways with no undecryptable message.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	bob, _ := register(t, ts, "bob")
	au, bu := alice.Self().Username, bob.Self().Username
	mustSend(t, alice, bu, "before the backup")
	drain(t, bob)
	mustSend(t, bob, au, "reply before the backup")
	drain(t, alice)
	g, err := alice.CreateGroup(ctx, "backup club", bu)
	if err != nil {
		t.Fatal(err)
	}
	drain(t, bob)
	snBefore, err := bob.SafetyNumber(ctx, au)
	if err != nil {
		t.Fatal(err)
	}

	var file bytes.Buffer
	info, err := alice.CreateBackup(ctx, &file, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.NewRecoveryKey == "" || info.Messages != 2 {
		t.Fatalf("backup info: %+v", info)
	}
	key := info.NewRecoveryKey
	if sum, err := VerifyBackup(bytes.NewReader(file.Bytes()), BackupSecret{RecoveryKey: key}); err != nil || sum.AccountID != alice.Self().AccountID || sum.Messages != 2 {
		t.Fatalf("verify: %+v, %v", sum, err)
	}
	// A second backup keeps the same recovery key (it is not shown again).
	var again bytes.Buffer
	if info2, err := alice.CreateBackup(ctx, &again, BackupOptions{}); err != nil || info2.NewRecoveryKey != "" {
		t.Fatalf("second backup: %+v, %v", info2, err)
	}
	if _, err := VerifyBackup(bytes.NewReader(again.Bytes()), BackupSecret{RecoveryKey: key}); err != nil {
		t.Fatal(err)
	}

	// Refusals: nothing is written.
	other, _ := register(t, ts, "other")
	var otherFile bytes.Buffer
	oinfo, err := other.CreateBackup(ctx, &otherFile, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(file.Bytes())
	flipped[len(flipped)/2] ^= 1
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"wrong key": {file.Bytes(), ErrBackupKey},
		"truncated": {file.Bytes()[:len(file.Bytes())-100], ErrBackupCorrupt},
		"flipped":   {flipped, ErrBackupCorrupt},
		"empty":     {nil, ErrBackupCorrupt},
	} {
		k := key
		if name == "wrong key" {
			k = oinfo.NewRecoveryKey
		}
		dir := filepath.Join(t.TempDir(), "restore-"+name)
		_, err := RestoreBackup(ctx, testConfig(dir, ts.URL), bytes.NewReader(tc.b), BackupSecret{RecoveryKey: k})
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", name, err, tc.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("%s: the restore left %s behind", name, dir)
		}
	}
	if _, err := VerifyBackup(bytes.NewReader(file.Bytes()), BackupSecret{RecoveryKey: "not a key"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a malformed key: %v", err)
	}

	// 1,000 more messages after the backup, both ways.
	for i := range 500 {
		mustSend(t, bob, au, "after the backup "+string(rune('a'+i%26)))
		mustSend(t, alice, bu, "alice after the backup")
	}
	drain(t, alice)
	drain(t, bob)

	// Every device of alice is lost; she restores on a new one.
	alice.Close()
	restored, err := RestoreBackup(ctx, testConfig(filepath.Join(t.TempDir(), "restored"), ts.URL), bytes.NewReader(file.Bytes()), BackupSecret{RecoveryKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if restored.Self().AccountID != alice.Self().AccountID || restored.Self().DeviceID == alice.Self().DeviceID {
		t.Fatalf("restored as %+v (was %+v)", restored.Self(), alice.Self())
	}
	if got := conversation(t, restored, bu); len(got) != 2 {
		t.Fatalf("history after restore: %q", got)
	}
	if gr, err := restored.Group(ctx, g.ID); err != nil || gr.Name != "backup club" {
		t.Fatalf("group after restore: %+v, %v", gr, err)
	}

	// The chat continues both ways; the session reset is silent.
	mustSend(t, restored, bu, "I am back")
	evs := drain(t, bob)
	if got := bodies(evs); len(got) != 1 || got[0] != "I am back" {
		t.Fatalf("bob received %q", got)
	}
	mustSend(t, bob, au, "welcome back")
	evs = append(evs, drain(t, restored)...)
	mustSend(t, restored, bu, "second message")
	evs = append(evs, drain(t, bob)...)
	mustSend(t, bob, au, "second reply")
	evs = append(evs, drain(t, restored)...)
	var got []string
	for _, ev := range evs {
		switch ev.Kind {
		case EventUndecryptable, EventIdentityChanged:
			t.Fatalf("after the restore: %v event (%v)", ev.Kind, ev.Err)
		case EventMessage:
			got = append(got, ev.Message.Body)
		}
	}
	if len(got) != 4 {
		t.Fatalf("after the restore: %q", got)
	}
	snAfter, err := bob.SafetyNumber(ctx, au)
	if err != nil || snAfter.String() != snBefore.String() {
		t.Fatalf("the safety number changed: %v, %v", snAfter, err)
	}
	if _, err := restored.SendGroup(ctx, g.ID, "group after restore"); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := groupEvents(drain(t, bob)); len(msgs) != 1 {
		t.Fatalf("group message after restore: %q", msgs)
	}
}

// TestBackupSecrets: a passphrase backup opens with the passphrase; an
// escrowed backup also opens with the organisation's age identity; the
// recovery key split 3-of-5 comes back from any 3 shares.
func TestBackupSecrets(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	var pf bytes.Buffer
	if _, err := alice.CreateBackup(ctx, &pf, BackupOptions{Passphrase: "correct horse battery staple"}); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBackup(bytes.NewReader(pf.Bytes()), BackupSecret{Passphrase: "correct horse battery staple"}); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBackup(bytes.NewReader(pf.Bytes()), BackupSecret{Passphrase: "wrong"}); !errors.Is(err, ErrBackupKey) && !errors.Is(err, ErrBackupCorrupt) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	org, _ := age.GenerateX25519Identity()
	var ef bytes.Buffer
	info, err := alice.CreateBackup(ctx, &ef, BackupOptions{Escrow: []string{org.Recipient().String()}})
	if err != nil || len(info.Escrow) != 1 {
		t.Fatalf("escrowed backup: %+v, %v", info, err)
	}
	if _, err := VerifyBackup(bytes.NewReader(ef.Bytes()), BackupSecret{AgeIdentity: org.String()}); err != nil {
		t.Fatalf("the escrow identity does not open it: %v", err)
	}
	if _, err := alice.CreateBackup(ctx, &ef, BackupOptions{Passphrase: "x", Escrow: []string{org.Recipient().String()}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("passphrase and escrow together: %v", err)
	}
	shares, err := alice.SplitRecoveryKey(ctx, 3, 5)
	if err != nil || len(shares) != 5 {
		t.Fatalf("split: %d, %v", len(shares), err)
	}
	k, err := CombineRecoveryKey([]string{shares[4], shares[0], shares[2]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBackup(bytes.NewReader(ef.Bytes()), BackupSecret{RecoveryKey: k}); err != nil {
		t.Fatalf("the combined key does not open the backup: %v", err)
	}
	if _, err := CombineRecoveryKey(shares[:2]); err == nil {
		t.Fatal("two shares of three combined")
	}
}

// TestBackupOnServer: a backup kept on the server comes back with the
// username and recovery key alone, and opens; a wrong key gets nothing.
func TestBackupOnServer(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, "sqlite")
	alice, _ := register(t, ts, "alice")
	var file bytes.Buffer
	info, err := alice.CreateBackup(ctx, &file, BackupOptions{Upload: true})
	if err != nil || !info.Uploaded {
		t.Fatalf("backup with upload: %+v, %v", info, err)
	}
	got, err := FetchBackup(ctx, ts.URL, alice.Self().Username, info.NewRecoveryKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, file.Bytes()) {
		t.Fatal("the fetched backup differs from the one written")
	}
	if _, err := VerifyBackup(bytes.NewReader(got), BackupSecret{RecoveryKey: info.NewRecoveryKey}); err != nil {
		t.Fatal(err)
	}
	other, _ := register(t, ts, "other")
	var of bytes.Buffer
	oinfo, err := other.CreateBackup(ctx, &of, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FetchBackup(ctx, ts.URL, alice.Self().Username, oinfo.NewRecoveryKey, nil); !errors.Is(err, ErrBackupKey) {
		t.Fatalf("another key: %v", err)
	}
	if _, err := FetchBackup(ctx, ts.URL, other.Self().Username, oinfo.NewRecoveryKey, nil); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("no backup kept: %v", err)
	}
}

// FuzzParseBackup: the decrypted payload decoder never panics, refuses
// with ErrBackupCorrupt, and what it accepts has keys of the right sizes
// and re-encodes to an equal payload.
func FuzzParseBackup(f *testing.F) {
	good := (&backupPayload{AccountID: "9d0652a3-dcc3-4d11-975f-74d61598733f", Username: "alice", Server: "http://127.0.0.1:7450",
		IdentityPrivate: bytes.Repeat([]byte{1}, 32), ProfileKey: bytes.Repeat([]byte{2}, 32), TrustRoot: bytes.Repeat([]byte{3}, 33),
		RecoveryCredential: bytes.Repeat([]byte{4}, 32), History: []byte(historyMagic + "\x01"), HistorySum: bytes.Repeat([]byte{5}, 32)}).marshal()
	f.Add(good)
	f.Add([]byte(backupMagic + "\x01"))
	f.Add([]byte(backupMagic + "\x02"))
	f.Add([]byte("age-encryption.org/v1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseBackup(b)
		if err != nil {
			if !errors.Is(err, ErrBackupCorrupt) {
				t.Fatalf("error outside ErrBackupCorrupt: %v", err)
			}
			return
		}
		if len(p.IdentityPrivate) != 32 || len(p.RecoveryCredential) != 32 || len(p.HistorySum) != 32 {
			t.Fatal("accepted a payload with a key of the wrong size")
		}
		again, err := parseBackup(p.marshal())
		if err != nil || again.AccountID != p.AccountID || !bytes.Equal(again.History, p.History) {
			t.Fatalf("re-encoding changed the payload: %v", err)
		}
	})
}
