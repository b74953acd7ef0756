package interop

import "fmt"

// Address is a libsignal ProtocolAddress: a name (a ServiceId string such
// as an ACI UUID, for sealed sender v2) and a device id (1–127).
type Address struct {
	Name     string `json:"name"`
	DeviceID uint32 `json:"deviceId"`
}

// MessageTypeSenderKey is the CiphertextMessageType of a sender-key (group)
// message.
const MessageTypeSenderKey = 7

// GroupDistribution creates device's SenderKeyDistributionMessage for a
// group, device sending as self. distributionID is a UUID string.
func (p *Peer) GroupDistribution(device string, self Address, distributionID string) ([]byte, error) {
	req := struct {
		remoteReq
		DistributionID string `json:"distributionId"`
	}{remoteReq{device, self.Name, self.DeviceID}, distributionID}
	var resp struct {
		Message []byte `json:"message"`
	}
	err := p.Call("group_distribution", req, &resp)
	return resp.Message, err
}

// GroupProcessDistribution stores a sender's distribution message in device
// and returns the message's distribution id.
func (p *Peer) GroupProcessDistribution(device string, sender Address, skdm []byte) (distributionID string, err error) {
	req := struct {
		remoteReq
		Message []byte `json:"message"`
	}{remoteReq{device, sender.Name, sender.DeviceID}, nonNil(skdm)}
	var resp struct {
		DistributionID string `json:"distributionId"`
	}
	err = p.Call("group_process_distribution", req, &resp)
	return resp.DistributionID, err
}

// GroupEncrypt encrypts pt to a group as self (groupEncrypt); the result is a
// serialized SenderKeyMessage.
func (p *Peer) GroupEncrypt(device string, self Address, distributionID string, pt []byte) ([]byte, error) {
	req := struct {
		remoteReq
		DistributionID string `json:"distributionId"`
		Plaintext      []byte `json:"plaintext"`
	}{remoteReq{device, self.Name, self.DeviceID}, distributionID, nonNil(pt)}
	var m Message
	if err := p.Call("group_encrypt", req, &m); err != nil {
		return nil, err
	}
	if m.Type != MessageTypeSenderKey {
		return nil, fmt.Errorf("%w: group_encrypt returned message type %d", ErrProtocol, m.Type)
	}
	return m.Body, nil
}

// GroupDecrypt decrypts a SenderKeyMessage from sender (groupDecrypt).
func (p *Peer) GroupDecrypt(device string, sender Address, body []byte) ([]byte, error) {
	req := struct {
		remoteReq
		Body []byte `json:"body"`
	}{remoteReq{device, sender.Name, sender.DeviceID}, nonNil(body)}
	var resp struct {
		Plaintext []byte `json:"plaintext"`
	}
	if err := p.Call("group_decrypt", req, &resp); err != nil {
		return nil, err
	}
	return nonNil(resp.Plaintext), nil
}

// SenderCertOptions describe a sender certificate for [Peer.SenderCertificate].
type SenderCertOptions struct {
	// TrustRootPrivate and ServerPrivate are 32-byte private keys; nil
	// generates fresh ones (returned in the result).
	TrustRootPrivate []byte
	ServerPrivate    []byte
	ServerKeyID      uint32 // 0 means 1
	SenderUUID       string
	SenderE164       string // optional
	SenderDeviceID   uint32
	SenderKey        []byte // the sender's 33-byte identity key
	ExpirationMillis int64  // milliseconds since the Unix epoch
}

// SenderCert is an issued sender certificate and the keys behind it.
type SenderCert struct {
	Certificate       []byte `json:"certificate"`
	ServerCertificate []byte `json:"serverCertificate"`
	TrustRoot         []byte `json:"trustRoot"` // 33-byte public key recipients trust
	TrustRootPrivate  []byte `json:"trustRootPrivate"`
	ServerPrivate     []byte `json:"serverPrivate"`
}

// SenderCertificate issues a sealed-sender certificate: a server
// certificate signed by the trust root, and the sender certificate signed by
// the server key.
func (p *Peer) SenderCertificate(o SenderCertOptions) (SenderCert, error) {
	req := struct {
		TrustRootPrivate []byte `json:"trustRootPrivate,omitempty"`
		ServerPrivate    []byte `json:"serverPrivate,omitempty"`
		ServerKeyID      uint32 `json:"serverKeyId,omitempty"`
		SenderUUID       string `json:"senderUuid"`
		SenderE164       string `json:"senderE164,omitempty"`
		SenderDeviceID   uint32 `json:"senderDeviceId"`
		SenderKey        []byte `json:"senderKey"`
		Expiration       int64  `json:"expiration"`
	}{o.TrustRootPrivate, o.ServerPrivate, o.ServerKeyID, o.SenderUUID, o.SenderE164, o.SenderDeviceID, nonNil(o.SenderKey), o.ExpirationMillis}
	var c SenderCert
	err := p.Call("sender_certificate", req, &c)
	return c, err
}

// SealedEncrypt encrypts pt to (name, deviceID) over the existing session and
// wraps it in sealed sender v1 (sealedSenderEncryptMessage).
func (p *Peer) SealedEncrypt(device, name string, deviceID uint32, senderCert, pt []byte) ([]byte, error) {
	req := struct {
		remoteReq
		SenderCertificate []byte `json:"senderCertificate"`
		Plaintext         []byte `json:"plaintext"`
	}{remoteReq{device, name, deviceID}, nonNil(senderCert), nonNil(pt)}
	var resp struct {
		Body []byte `json:"body"`
	}
	err := p.Call("sealed_encrypt", req, &resp)
	return resp.Body, err
}

// SealedMultiInput describes a sealed sender v2 (multi-recipient) message
// around a sender-key message.
type SealedMultiInput struct {
	Self              Address // the sender's own address, for the sender key
	DistributionID    string
	Recipients        []Address // each needs an existing session
	SenderCertificate []byte
	Plaintext         []byte
	ContentHint       uint32
	GroupID           []byte // optional
}

// SealedEncryptMulti group-encrypts the plaintext and seals it for every
// recipient in one sealed sender v2 message, as sent to the server.
func (p *Peer) SealedEncryptMulti(device string, in SealedMultiInput) ([]byte, error) {
	req := struct {
		remoteReq
		DistributionID    string    `json:"distributionId"`
		Recipients        []Address `json:"recipients"`
		SenderCertificate []byte    `json:"senderCertificate"`
		Plaintext         []byte    `json:"plaintext"`
		ContentHint       uint32    `json:"contentHint"`
		GroupID           []byte    `json:"groupId,omitempty"`
	}{remoteReq{device, in.Self.Name, in.Self.DeviceID}, in.DistributionID, in.Recipients, nonNil(in.SenderCertificate), nonNil(in.Plaintext), in.ContentHint, in.GroupID}
	var resp struct {
		Body []byte `json:"body"`
	}
	err := p.Call("sealed_encrypt_multi", req, &resp)
	return resp.Body, err
}

// SealedRecipient is one recipient's share of a sealed sender v2 message.
type SealedRecipient struct {
	DeviceIDs       []uint32 `json:"deviceIds"`
	RegistrationIDs []uint32 `json:"registrationIds"`
	Body            []byte   `json:"body"` // what the server delivers to each of the devices
}

// SealedMultiSplit does the server's part of sealed sender v2: it parses the
// sent message and returns the message for each recipient, by ServiceId
// string.
func (p *Peer) SealedMultiSplit(body []byte) (map[string]SealedRecipient, error) {
	req := struct {
		Body []byte `json:"body"`
	}{nonNil(body)}
	var resp struct {
		Recipients map[string]SealedRecipient `json:"recipients"`
	}
	err := p.Call("sealed_multi_split", req, &resp)
	return resp.Recipients, err
}

// SealedDecryptInput is what a recipient needs to open a sealed message.
type SealedDecryptInput struct {
	Body            []byte
	TrustRoot       []byte // 33-byte public key
	TimestampMillis int64  // "now", checked against the certificate's expiration
	LocalUUID       string
	LocalE164       string // optional
	LocalDeviceID   uint32
}

// SealedResult is an opened sealed-sender message.
type SealedResult struct {
	Plaintext      []byte `json:"plaintext"`
	SenderUUID     string `json:"senderUuid"`
	SenderE164     string `json:"senderE164"`
	SenderDeviceID uint32 `json:"senderDeviceId"`
}

// SealedDecrypt opens a sealed message carrying a 1:1 Signal message
// (sealedSenderDecryptMessage): it validates the certificate, decrypts the
// inner message with the session from the certificate's sender, and rejects
// self-sends.
func (p *Peer) SealedDecrypt(device string, in SealedDecryptInput) (SealedResult, error) {
	req := struct {
		Device        string `json:"device"`
		Body          []byte `json:"body"`
		TrustRoot     []byte `json:"trustRoot"`
		Timestamp     int64  `json:"timestamp"`
		LocalUUID     string `json:"localUuid"`
		LocalE164     string `json:"localE164,omitempty"`
		LocalDeviceID uint32 `json:"localDeviceId"`
	}{device, nonNil(in.Body), nonNil(in.TrustRoot), in.TimestampMillis, in.LocalUUID, in.LocalE164, in.LocalDeviceID}
	var r SealedResult
	if err := p.Call("sealed_decrypt", req, &r); err != nil {
		return SealedResult{}, err
	}
	r.Plaintext = nonNil(r.Plaintext)
	return r, nil
}

// USMC is the outer layer of a sealed message (UnidentifiedSenderMessageContent).
// The sender certificate is not validated at this layer.
type USMC struct {
	MsgType           int    `json:"msgType"` // 2, 3, 7 (sender key) or 8 (plaintext)
	Contents          []byte `json:"contents"`
	ContentHint       int    `json:"contentHint"`
	GroupID           []byte `json:"groupId"`
	SenderCertificate []byte `json:"senderCertificate"`
	SenderUUID        string `json:"senderUuid"`
	SenderDeviceID    uint32 `json:"senderDeviceId"`
}

// SealedDecryptToUSMC removes only the sealed-sender layer (v1 or v2),
// as a client does before handing a sender-key message to [Peer.GroupDecrypt].
func (p *Peer) SealedDecryptToUSMC(device string, body []byte) (USMC, error) {
	req := struct {
		Device string `json:"device"`
		Body   []byte `json:"body"`
	}{device, nonNil(body)}
	var u USMC
	err := p.Call("sealed_decrypt_to_usmc", req, &u)
	return u, err
}
