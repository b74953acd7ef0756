package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/veil-e2ee/veil/client"
)

// A changed identity is explained in words, naming the contact, showing
// the new safety number and the command that accepts it.
func TestExplainIdentityChanged(t *testing.T) {
	sn := "12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890"
	err := explain(fmt.Errorf("sending: %w", &client.IdentityChangedError{Username: "bob", AccountID: "0f8e", SafetyNumber: sn}))
	msg := err.Error()
	for _, want := range []string{"bob's safety number has changed", "New safety number: " + sn, "veil accept bob", "kept"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	// Without a username the account id stands in.
	msg = explain(&client.IdentityChangedError{AccountID: "0f8e", SafetyNumber: sn}).Error()
	if !strings.Contains(msg, "veil accept 0f8e") {
		t.Errorf("message without a username: %s", msg)
	}
}
