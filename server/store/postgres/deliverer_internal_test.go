package postgres

import (
	"errors"
	"testing"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/postgres/pgtest"
	"github.com/veil-e2ee/veil/server/store/storetest"
)

// TestDeliverBatch runs one batch through deliverBatch directly and
// checks it is answered from the batch (not by the per-send fallback),
// with per-send results: two sends to one recipient get consecutive
// seqs, a repeated message id in the same batch is a duplicate, a
// mismatch or an unknown recipient fails only its own send, and a queue
// bound counts the envelopes the same batch queued before.
func TestDeliverBatch(t *testing.T) {
	s, err := Open(t.Context(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bob, carol := storetest.ID(2), storetest.ID(3)
	for i, id := range []store.AccountID{bob, carol} {
		if _, err := s.CreateAccount(t.Context(), store.NewAccount{ID: id, Username: []string{"bob", "carol"}[i], IdentityKey: []byte("ik"),
			RegistrationID: 7, CredentialHash: []byte("h"), PreKeys: storetest.Upload(1, 0, 0), Now: storetest.Epoch}); err != nil {
			t.Fatal(err)
		}
	}
	send := func(to store.AccountID, msg, reg int) *deliverReq {
		return &deliverReq{done: make(chan deliverAns, 1), snd: &store.Send{MessageID: storetest.MsgID(msg), Recipient: to, Now: storetest.Epoch,
			Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, RegistrationID: uint32(reg), Type: 1, Content: []byte("c")}}}}
	}
	bounded := func(msg int) *deliverReq {
		r := send(carol, msg, 7)
		r.snd.MaxQueue = 2
		return r
	}
	reqs := []*deliverReq{send(carol, 1, 7), send(bob, 2, 7), send(bob, 3, 7), send(bob, 2, 7), send(bob, 4, 8), send(storetest.ID(9), 5, 7),
		bounded(6), bounded(7)}
	batch := append([]*deliverReq(nil), reqs...)
	s.deliverBatch(batch)
	var got []deliverAns
	for i, r := range reqs {
		a := <-r.done
		if a.retry {
			t.Fatalf("send %d: the batch failed and fell back", i)
		}
		got = append(got, a)
	}
	if got[0].err != nil || len(got[0].res.Seqs) != 1 || got[0].res.Seqs[0] != 1 {
		t.Errorf("carol: %+v", got[0])
	}
	if got[1].err != nil || got[2].err != nil || got[1].res.Seqs[0] != 1 || got[2].res.Seqs[0] != 2 {
		t.Errorf("bob: %+v %+v", got[1], got[2])
	}
	if got[3].err != nil || !got[3].res.Duplicate {
		t.Errorf("repeat in the batch: %+v", got[3])
	}
	if _, ok := got[4].err.(*store.DeviceMismatchError); !ok {
		t.Errorf("stale registration: %+v", got[4])
	}
	if got[5].err != store.ErrNotFound {
		t.Errorf("unknown recipient: %+v", got[5])
	}
	if n, err := s.QueueDepth(t.Context(), bob, 1); err != nil || n != 2 {
		t.Errorf("bob's queue: %d, %v", n, err)
	}
	// carol's queue holds message 1; message 6 fills it to the bound of
	// 2, message 7 finds it full.
	if got[6].err != nil || len(got[6].res.Seqs) != 1 || got[6].res.Seqs[0] != 2 {
		t.Errorf("carol, second: %+v", got[6])
	}
	if !errors.Is(got[7].err, store.ErrQueueFull) {
		t.Errorf("carol, past the bound: %+v", got[7])
	}
	if n, err := s.QueueDepth(t.Context(), carol, 1); err != nil || n != 2 {
		t.Errorf("carol's queue: %d, %v", n, err)
	}
}
