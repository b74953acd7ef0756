package client

import (
	"errors"
	"fmt"

	"github.com/veil-e2ee/veil/client/devicestore"
)

// Errors of the SDK. Server answers are *ServerError; a changed contact
// identity is *IdentityChangedError.
var (
	// ErrNotRegistered: the profile has no account yet (run Register).
	ErrNotRegistered = errors.New("client: this profile has no account; register first")
	// ErrAlreadyRegistered: Register on a profile that has an account.
	ErrAlreadyRegistered = errors.New("client: this profile already has an account")
	// ErrUsernameTaken: another account has the username.
	ErrUsernameTaken = errors.New("client: that username is taken")
	// ErrNoSuchUser: no account has the username (or it was deleted).
	ErrNoSuchUser = errors.New("client: no such user")
	// ErrInvalidArgument: a caller's mistake (bad username, empty or too
	// long text, bad server URL…); the message says which.
	ErrInvalidArgument = errors.New("client: invalid argument")
	// ErrUnreachable: the server could not be reached; queued sends go
	// out when it can be.
	ErrUnreachable = errors.New("client: server unreachable")
	// ErrProtocol: the server answered something this client does not
	// understand.
	ErrProtocol = errors.New("client: unexpected answer from the server")
	// ErrSafetyNumberMismatch: the safety number given to Verify is not
	// the one this device computes: do not trust the contact's key.
	ErrSafetyNumberMismatch = errors.New("client: safety numbers do not match")
	// ErrReplaced: another connection of this device took over the
	// message stream (the same profile is receiving elsewhere).
	ErrReplaced = errors.New("client: another connection of this device is receiving messages")
	// ErrDeviceRemoved: the server no longer knows this device (it was
	// removed, or its credential is wrong).
	ErrDeviceRemoved = errors.New("client: this device was removed from the account")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("client: closed")
)

// IdentityChangedError says a contact's identity key is not the one this
// device knew: they reinstalled, or someone is in the middle. Nothing is
// encrypted to them until the user compares the new safety number and
// calls AcceptIdentity (or Verify). Messages already queued stay queued.
type IdentityChangedError struct {
	Username     string // the contact ("" if unknown)
	AccountID    string
	SafetyNumber string // the new safety number, 60 digits in 12 groups of 5
}

func (e *IdentityChangedError) Error() string {
	who := e.Username
	if who == "" {
		who = e.AccountID
	}
	return fmt.Sprintf("the safety number with %s has changed: they may have reinstalled Veil, or someone may be intercepting. "+
		"Compare the new safety number %s with them, then accept it", who, e.SafetyNumber)
}

func errorsIsNotFound(err error) bool { return errors.Is(err, devicestore.ErrNotFound) }

// UnverifiedDeviceError says an account (a contact's, or this one) lists
// devices whose prekeys are not signed by the account's identity key: no
// device of the owner linked them, so the server (or someone who took it
// over) may be trying to listen in. Nothing is sent to the account while
// the server lists them; the messages stay queued.
type UnverifiedDeviceError struct {
	Username  string
	AccountID string
	Devices   []uint32
}

func (e *UnverifiedDeviceError) Error() string {
	who := e.Username
	if who == "" {
		who = e.AccountID
	}
	return fmt.Sprintf("%s's account lists device(s) %v whose keys are not signed by %s's identity key: they were not linked by %s, "+
		"and the server may be trying to add a listener. Nothing is sent to %s until they are gone", who, e.Devices, who, who, who)
}

// ErrComplianceDevice: this is the compliance device of a legal hold
// (RegisterCompliance); it only receives.
var ErrComplianceDevice = errors.New("client: a compliance device does not send")
