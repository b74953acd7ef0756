// Veil interop peer: a JSON-lines server that drives libsignal
// (@signalapp/libsignal-client, pinned in package.json) for Veil's Go tests.
//
// One request per line on stdin, one response per line on stdout, in order.
// Every request is {"id": <any>, "method": "<name>", ...params}; every response
// echoes the id: {"id": …, "result": {…}} or {"id": …, "error": "<text>",
// "code": "<libsignal error name>"}. Bytes travel as standard base64.
// README.md lists the methods. Everything lives in memory and dies with the
// process: this is a test fixture, not a key store.

import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import * as SignalClient from '@signalapp/libsignal-client';
// Not re-exported by the package's index; the package has no "exports" map.
import SealedSenderMultiRecipientMessage from '@signalapp/libsignal-client/dist/SealedSenderMultiRecipientMessage.js';

const {
  CiphertextMessageType,
  Fingerprint,
  IdentityChange,
  IdentityKeyPair,
  IdentityKeyStore,
  KEMKeyPair,
  KEMPublicKey,
  KyberPreKeyRecord,
  KyberPreKeyStore,
  PreKeyBundle,
  PreKeyRecord,
  PreKeySignalMessage,
  PreKeyStore,
  PrivateKey,
  ProtocolAddress,
  PublicKey,
  ScannableFingerprint,
  SenderCertificate,
  SenderKeyDistributionMessage,
  SenderKeyRecord,
  SenderKeyStore,
  ServerCertificate,
  SessionRecord,
  SessionStore,
  SignalMessage,
  SignedPreKeyRecord,
  SignedPreKeyStore,
  UnidentifiedSenderMessageContent,
} = SignalClient;


// ---------------------------------------------------------------------------
// Stores. Sessions are kept serialized, as a persistent store would, so that a
// record is never shared between two callers by accident.

function addrKey(address) {
  return JSON.stringify([address.name(), address.deviceId()]);
}

class MemorySessionStore extends SessionStore {
  #sessions = new Map();
  async saveSession(address, record) {
    this.#sessions.set(addrKey(address), record.serialize());
  }
  async getSession(address) {
    const raw = this.#sessions.get(addrKey(address));
    return raw === undefined ? null : SessionRecord.deserialize(raw);
  }
  async getExistingSessions(addresses) {
    return addresses.map((a) => {
      const raw = this.#sessions.get(addrKey(a));
      if (raw === undefined) throw new Error(`no session for ${a.toString()}`);
      return SessionRecord.deserialize(raw);
    });
  }
  raw(address) {
    return this.#sessions.get(addrKey(address));
  }
}

// Trust on first use: the first key seen for an address is trusted; a
// different key afterwards is untrusted until the test calls `trust`.
class MemoryIdentityStore extends IdentityKeyStore {
  #pair;
  #registrationId;
  #known = new Map();
  constructor(pair, registrationId) {
    super();
    this.#pair = pair;
    this.#registrationId = registrationId;
  }
  async getIdentityKey() {
    return this.#pair.privateKey;
  }
  async getIdentityKeyPair() {
    return this.#pair;
  }
  async getLocalRegistrationId() {
    return this.#registrationId;
  }
  async saveIdentity(address, key) {
    const k = addrKey(address);
    const old = this.#known.get(k);
    this.#known.set(k, key);
    if (old === undefined || old.equals(key)) return IdentityChange.NewOrUnchanged;
    return IdentityChange.ReplacedExisting;
  }
  async isTrustedIdentity(address, key, _direction) {
    const old = this.#known.get(addrKey(address));
    return old === undefined || old.equals(key);
  }
  async getIdentity(address) {
    return this.#known.get(addrKey(address)) ?? null;
  }
  forceTrust(address, key) {
    this.#known.set(addrKey(address), key);
  }
}

class MemoryPreKeyStore extends PreKeyStore {
  #keys = new Map();
  async savePreKey(id, record) {
    this.#keys.set(id, record);
  }
  async getPreKey(id) {
    const r = this.#keys.get(id);
    if (r === undefined) throw new Error(`no one-time prekey ${id}`);
    return r;
  }
  async removePreKey(id) {
    this.#keys.delete(id);
  }
}

class MemorySignedPreKeyStore extends SignedPreKeyStore {
  #keys = new Map();
  async saveSignedPreKey(id, record) {
    this.#keys.set(id, record);
  }
  async getSignedPreKey(id) {
    const r = this.#keys.get(id);
    if (r === undefined) throw new Error(`no signed prekey ${id}`);
    return r;
  }
}

// Kyber prekeys are last-resort (kept after use) unless the bundle asked for a
// one-time key, which is removed once used.
class MemoryKyberPreKeyStore extends KyberPreKeyStore {
  #keys = new Map();
  #oneTime = new Set();
  async saveKyberPreKey(id, record) {
    this.#keys.set(id, record);
  }
  markOneTime(id) {
    this.#oneTime.add(id);
  }
  async getKyberPreKey(id) {
    const r = this.#keys.get(id);
    if (r === undefined) throw new Error(`no kyber prekey ${id}`);
    return r;
  }
  async markKyberPreKeyUsed(id, _signedPreKeyId, _baseKey) {
    if (this.#oneTime.has(id)) {
      this.#keys.delete(id);
      this.#oneTime.delete(id);
    }
  }
}

class MemorySenderKeyStore extends SenderKeyStore {
  #records = new Map();
  async saveSenderKey(sender, distributionId, record) {
    this.#records.set(JSON.stringify([sender.name(), sender.deviceId(), distributionId]), record.serialize());
  }
  async getSenderKey(sender, distributionId) {
    const raw = this.#records.get(JSON.stringify([sender.name(), sender.deviceId(), distributionId]));
    return raw === undefined ? null : SenderKeyRecord.deserialize(raw);
  }
}

class Device {
  constructor(pair, registrationId) {
    this.pair = pair;
    this.registrationId = registrationId;
    this.sessions = new MemorySessionStore();
    this.identities = new MemoryIdentityStore(pair, registrationId);
    this.preKeys = new MemoryPreKeyStore();
    this.signedPreKeys = new MemorySignedPreKeyStore();
    this.kyberPreKeys = new MemoryKyberPreKeyStore();
    this.senderKeys = new MemorySenderKeyStore();
  }

  // Generates and stores the private halves, returns the public bundle (as
  // libsignal objects) and, when asked, the private halves too.
  async makeBundle({ deviceId, preKeyId, signedPreKeyId, kyberPreKeyId, withPreKey, kyberOneTime }) {
    const now = Date.now();
    const identityPrivate = this.pair.privateKey;

    let preKey = null;
    let preKeyPrivate = null;
    if (withPreKey) {
      preKeyPrivate = PrivateKey.generate();
      preKey = preKeyPrivate.getPublicKey();
      await this.preKeys.savePreKey(preKeyId, PreKeyRecord.new(preKeyId, preKey, preKeyPrivate));
    }

    const signedPrivate = PrivateKey.generate();
    const signedPublic = signedPrivate.getPublicKey();
    const signedSig = identityPrivate.sign(signedPublic.serialize());
    await this.signedPreKeys.saveSignedPreKey(
      signedPreKeyId,
      SignedPreKeyRecord.new(signedPreKeyId, now, signedPublic, signedPrivate, signedSig),
    );

    const kyberPair = KEMKeyPair.generate();
    const kyberPublic = kyberPair.getPublicKey();
    const kyberSig = identityPrivate.sign(kyberPublic.serialize());
    await this.kyberPreKeys.saveKyberPreKey(
      kyberPreKeyId,
      KyberPreKeyRecord.new(kyberPreKeyId, now, kyberPair, kyberSig),
    );
    if (kyberOneTime) this.kyberPreKeys.markOneTime(kyberPreKeyId);

    const bundle = PreKeyBundle.new(
      this.registrationId,
      deviceId,
      withPreKey ? preKeyId : null,
      preKey,
      signedPreKeyId,
      signedPublic,
      signedSig,
      this.pair.publicKey,
      kyberPreKeyId,
      kyberPublic,
      kyberSig,
    );
    const privates = {
      identityKey: identityPrivate.serialize(),
      preKey: preKeyPrivate?.serialize(),
      signedPreKey: signedPrivate.serialize(),
      kyberPreKey: kyberPair.getSecretKey().serialize(),
    };
    return { bundle, privates };
  }

  async encrypt(address, plaintext) {
    const m = await SignalClient.signalEncrypt(plaintext, address, this.sessions, this.identities);
    return { type: m.type(), body: m.serialize() };
  }

  async decrypt(address, type, body) {
    switch (type) {
      case CiphertextMessageType.Whisper:
        return SignalClient.signalDecrypt(
          SignalMessage.deserialize(body), address, this.sessions, this.identities);
      case CiphertextMessageType.PreKey:
        return SignalClient.signalDecryptPreKey(
          PreKeySignalMessage.deserialize(body), address, this.sessions, this.identities,
          this.preKeys, this.signedPreKeys, this.kyberPreKeys);
      default:
        throw new Error(`unsupported message type ${type}`);
    }
  }
}

function newDevice(registrationId, identityPrivate) {
  let pair;
  if (identityPrivate !== undefined) {
    const priv = PrivateKey.deserialize(identityPrivate);
    pair = new IdentityKeyPair(priv.getPublicKey(), priv);
  } else {
    pair = IdentityKeyPair.generate();
  }
  // Registration ids are 14-bit in Signal's clients; libsignal accepts any u32.
  const reg = registrationId ?? 1 + (randomBytes(2).readUInt16BE(0) & 0x3ffe);
  return new Device(pair, reg);
}

// ---------------------------------------------------------------------------
// Wire helpers.

class RequestError extends Error {}

function b64(bytes) {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

// Node's base64 decoder skips invalid characters; a test fixture must not, or
// a Go encoding bug would go unnoticed.
function unb64(s, field) {
  if (typeof s !== 'string') throw new RequestError(`${field}: want a base64 string`);
  const buf = Buffer.from(s, 'base64');
  if (buf.toString('base64') !== s) throw new RequestError(`${field}: not canonical standard base64`);
  return buf;
}

function optB64(s, field) {
  return s === undefined || s === null ? undefined : unb64(s, field);
}

function u32(v, field) {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RequestError(`${field}: want a uint32`);
  return v;
}

function str(v, field) {
  if (typeof v !== 'string' || v === '') throw new RequestError(`${field}: want a non-empty string`);
  return v;
}

const devices = new Map();

function device(req) {
  const name = str(req.device, 'device');
  const d = devices.get(name);
  if (d === undefined) throw new RequestError(`unknown device ${JSON.stringify(name)}`);
  return d;
}

function remote(req) {
  return ProtocolAddress.new(str(req.name, 'name'), u32(req.deviceId, 'deviceId'));
}

function bundleFromJSON(j) {
  if (typeof j !== 'object' || j === null) throw new RequestError('bundle: want an object');
  const hasPreKey = j.preKey !== undefined && j.preKey !== null;
  return PreKeyBundle.new(
    u32(j.registrationId, 'bundle.registrationId'),
    u32(j.deviceId, 'bundle.deviceId'),
    hasPreKey ? u32(j.preKeyId, 'bundle.preKeyId') : null,
    hasPreKey ? PublicKey.deserialize(unb64(j.preKey, 'bundle.preKey')) : null,
    u32(j.signedPreKeyId, 'bundle.signedPreKeyId'),
    PublicKey.deserialize(unb64(j.signedPreKey, 'bundle.signedPreKey')),
    unb64(j.signedPreKeySignature, 'bundle.signedPreKeySignature'),
    PublicKey.deserialize(unb64(j.identityKey, 'bundle.identityKey')),
    u32(j.kyberPreKeyId, 'bundle.kyberPreKeyId'),
    KEMPublicKey.deserialize(unb64(j.kyberPreKey, 'bundle.kyberPreKey')),
    unb64(j.kyberPreKeySignature, 'bundle.kyberPreKeySignature'),
  );
}

function bundleToJSON(b) {
  const out = {
    registrationId: b.registrationId(),
    deviceId: b.deviceId(),
    identityKey: b64(b.identityKey().serialize()),
    signedPreKeyId: b.signedPreKeyId(),
    signedPreKey: b64(b.signedPreKeyPublic().serialize()),
    signedPreKeySignature: b64(b.signedPreKeySignature()),
    kyberPreKeyId: b.kyberPreKeyId(),
    kyberPreKey: b64(b.kyberPreKeyPublic().serialize()),
    kyberPreKeySignature: b64(b.kyberPreKeySignature()),
  };
  const pk = b.preKeyPublic();
  if (pk !== null) {
    out.preKeyId = b.preKeyId();
    out.preKey = b64(pk.serialize());
  }
  return out;
}

// Minimal protobuf reading, only to report facts libsignal's Node API does not
// expose: RecordStructure.current_session (1) → SessionStructure
// .session_version (1) and .pq_ratchet_state (15). Layout from libsignal's
// rust/protocol/src/proto/storage.proto.
function readVarint(buf, pos) {
  let v = 0;
  let mul = 1;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    v += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return [v, pos];
    mul *= 128;
    if (mul > 2 ** 63) throw new Error('varint too long');
  }
}

function protoFields(buf) {
  const fields = new Map();
  let pos = 0;
  while (pos < buf.length) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const num = Math.floor(key / 8);
    const wire = key & 7;
    let val;
    switch (wire) {
      case 0: [val, pos] = readVarint(buf, pos); break;
      case 1: val = buf.subarray(pos, pos + 8); pos += 8; break;
      case 2: {
        let len;
        [len, pos] = readVarint(buf, pos);
        val = buf.subarray(pos, pos + len);
        pos += len;
        break;
      }
      case 5: val = buf.subarray(pos, pos + 4); pos += 4; break;
      default: throw new Error(`unsupported wire type ${wire}`);
    }
    if (pos > buf.length) throw new Error('truncated field');
    if (!fields.has(num)) fields.set(num, val);
  }
  return fields;
}

function sessionFacts(raw) {
  const current = protoFields(raw).get(1);
  if (current === undefined) return { sessionVersion: 0, pqRatchet: false };
  const s = protoFields(current);
  return {
    sessionVersion: s.get(1) ?? 0,
    pqRatchet: (s.get(15)?.length ?? 0) > 0,
  };
}

// ---------------------------------------------------------------------------
// Benchmarks: libsignal talking to itself, timed inside Node so that the
// JSON-lines transport is not measured.

async function benchPair() {
  const alice = newDevice(1);
  const bob = newDevice(2);
  const aAddr = ProtocolAddress.new('alice', 1);
  const bAddr = ProtocolAddress.new('bob', 1);
  return { alice, bob, aAddr, bAddr };
}

async function establish(alice, bob, aAddr, bAddr) {
  const { bundle } = await bob.makeBundle({
    deviceId: 1, preKeyId: 1, signedPreKeyId: 1, kyberPreKeyId: 1, withPreKey: true,
  });
  await SignalClient.processPreKeyBundle(bundle, bAddr, alice.sessions, alice.identities);
  const first = await alice.encrypt(bAddr, Buffer.from('hello'));
  await bob.decrypt(aAddr, first.type, first.body);
  // A reply makes Alice stop sending PreKey messages.
  const reply = await bob.encrypt(aAddr, Buffer.from('hi'));
  await alice.decrypt(bAddr, reply.type, reply.body);
}

async function bench(req) {
  const n = u32(req.n, 'n');
  const size = u32(req.size ?? 0, 'size');
  if (n === 0) throw new RequestError('n: want at least 1');
  const payload = randomBytes(size);
  let seconds;
  switch (req.op) {
    case 'setup': {
      // Key generation is not timed: a session setup consumes keys that were
      // uploaded earlier. Each round is a fresh initiator against a fresh
      // bundle of the same responder (its own ids, since makeBundle replaces
      // the keys stored under an id).
      const bob = newDevice(2);
      const bAddr = ProtocolAddress.new('bob', 1);
      const rounds = [];
      for (let i = 0; i < n; i++) {
        const { bundle } = await bob.makeBundle({
          deviceId: 1, preKeyId: i + 1, signedPreKeyId: i + 1, kyberPreKeyId: i + 1, withPreKey: true,
        });
        rounds.push({ alice: newDevice(1), aAddr: ProtocolAddress.new(`alice-${i}`, 1), bundle });
      }
      const t0 = performance.now();
      for (const { alice, aAddr, bundle } of rounds) {
        await SignalClient.processPreKeyBundle(bundle, bAddr, alice.sessions, alice.identities);
        const m = await alice.encrypt(bAddr, payload);
        await bob.decrypt(aAddr, m.type, m.body);
      }
      seconds = (performance.now() - t0) / 1000;
      break;
    }
    case 'same_chain': {
      const { alice, bob, aAddr, bAddr } = await benchPair();
      await establish(alice, bob, aAddr, bAddr);
      const t0 = performance.now();
      const msgs = [];
      for (let i = 0; i < n; i++) msgs.push(await alice.encrypt(bAddr, payload));
      for (const m of msgs) await bob.decrypt(aAddr, m.type, m.body);
      seconds = (performance.now() - t0) / 1000;
      break;
    }
    case 'alternating': {
      const { alice, bob, aAddr, bAddr } = await benchPair();
      await establish(alice, bob, aAddr, bAddr);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        if (i % 2 === 0) {
          const m = await alice.encrypt(bAddr, payload);
          await bob.decrypt(aAddr, m.type, m.body);
        } else {
          const m = await bob.encrypt(aAddr, payload);
          await alice.decrypt(bAddr, m.type, m.body);
        }
      }
      seconds = (performance.now() - t0) / 1000;
      break;
    }
    case 'sealed_v1': {
      // Sealed sender v1 around a 1:1 message on an established session:
      // sealedSenderEncryptMessage by A, then sealedSenderDecryptMessage by
      // B (certificate validation included), message by message.
      const alice = newDevice(1);
      const bob = newDevice(2);
      const aName = '9d0652a3-dcc3-4d11-975f-74d61598733f';
      const bName = '796abedb-ca4e-4f18-8803-1fde5b921f9f';
      const aAddr = ProtocolAddress.new(aName, 1);
      const bAddr = ProtocolAddress.new(bName, 1);
      await establish(alice, bob, aAddr, bAddr);
      const trustRoot = PrivateKey.generate();
      const serverKey = PrivateKey.generate();
      const serverCert = ServerCertificate.new(1, serverKey.getPublicKey(), trustRoot);
      const now = Date.now();
      const cert = SenderCertificate.new(aName, null, 1, alice.pair.publicKey, now + 3600_000, serverCert, serverKey);
      const rootPub = trustRoot.getPublicKey();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const body = await SignalClient.sealedSenderEncryptMessage(payload, bAddr, cert, alice.sessions, alice.identities);
        await SignalClient.sealedSenderDecryptMessage(
          body, rootPub, now, null, bName, 1,
          bob.sessions, bob.identities, bob.preKeys, bob.signedPreKeys, bob.kyberPreKeys);
      }
      seconds = (performance.now() - t0) / 1000;
      break;
    }
    case 'sender_key': {
      // Sender keys: groupEncrypt by A, groupDecrypt by B, message by
      // message, after B processed A's distribution message.
      const alice = newDevice(1);
      const bob = newDevice(2);
      const aAddr = ProtocolAddress.new('9d0652a3-dcc3-4d11-975f-74d61598733f', 1);
      const dist = 'd1d1d1d1-7000-11eb-b32a-33b8a8a487a6';
      const skdm = await SenderKeyDistributionMessage.create(aAddr, dist, alice.senderKeys);
      await SignalClient.processSenderKeyDistributionMessage(aAddr, skdm, bob.senderKeys);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const m = await SignalClient.groupEncrypt(aAddr, dist, alice.senderKeys, payload);
        await SignalClient.groupDecrypt(aAddr, bob.senderKeys, m.serialize());
      }
      seconds = (performance.now() - t0) / 1000;
      break;
    }
    default:
      throw new RequestError(`unknown bench op ${JSON.stringify(req.op)}`);
  }
  return { seconds, opsPerSec: n / seconds };
}

// ---------------------------------------------------------------------------
// Methods.

function errorBody(e) {
  const out = { error: e instanceof Error ? e.message : String(e) };
  if (e instanceof SignalClient.LibSignalErrorBase) out.code = e.name;
  else if (e instanceof RequestError) out.code = 'BadRequest';
  else if (e instanceof Error) out.code = e.name;
  return out;
}

const methods = {
  async create(req) {
    const name = str(req.device, 'device');
    if (devices.has(name) && !req.replace) {
      throw new RequestError(`device ${JSON.stringify(name)} exists (pass replace: true to reinstall it)`);
    }
    const reg = req.registrationId === undefined || req.registrationId === 0
      ? undefined : u32(req.registrationId, 'registrationId');
    const d = newDevice(reg, optB64(req.identityPrivate, 'identityPrivate'));
    devices.set(name, d);
    return { identityKey: b64(d.pair.publicKey.serialize()), registrationId: d.registrationId };
  },

  async bundle(req) {
    const d = device(req);
    const { bundle, privates } = await d.makeBundle({
      deviceId: u32(req.deviceId, 'deviceId'),
      preKeyId: req.withPreKey ? u32(req.preKeyId, 'preKeyId') : 0,
      signedPreKeyId: u32(req.signedPreKeyId, 'signedPreKeyId'),
      kyberPreKeyId: u32(req.kyberPreKeyId, 'kyberPreKeyId'),
      withPreKey: !!req.withPreKey,
      kyberOneTime: !!req.kyberOneTime,
    });
    const out = bundleToJSON(bundle);
    if (req.exportPrivate) {
      out.private = {};
      for (const [k, v] of Object.entries(privates)) if (v !== undefined) out.private[k] = b64(v);
    }
    return out;
  },

  async process_bundle(req) {
    const d = device(req);
    await SignalClient.processPreKeyBundle(bundleFromJSON(req.bundle), remote(req), d.sessions, d.identities);
    return {};
  },

  async encrypt(req) {
    return device(req).encrypt(remote(req), unb64(req.plaintext, 'plaintext'))
      .then(({ type, body }) => ({ type, body: b64(body) }));
  },

  async encrypt_many(req) {
    const d = device(req);
    const addr = remote(req);
    if (!Array.isArray(req.plaintexts)) throw new RequestError('plaintexts: want an array');
    const messages = [];
    for (const [i, p] of req.plaintexts.entries()) {
      const { type, body } = await d.encrypt(addr, unb64(p, `plaintexts[${i}]`));
      messages.push({ type, body: b64(body) });
    }
    return { messages };
  },

  async decrypt(req) {
    const pt = await device(req).decrypt(remote(req), req.type, unb64(req.body, 'body'));
    return { plaintext: b64(pt) };
  },

  async decrypt_many(req) {
    const d = device(req);
    const addr = remote(req);
    if (!Array.isArray(req.messages)) throw new RequestError('messages: want an array');
    const results = [];
    for (const [i, m] of req.messages.entries()) {
      try {
        const pt = await d.decrypt(addr, m?.type, unb64(m?.body, `messages[${i}].body`));
        results.push({ plaintext: b64(pt) });
      } catch (e) {
        results.push(errorBody(e));
      }
    }
    return { results };
  },

  async has_session(req) {
    const d = device(req);
    const addr = remote(req);
    const raw = d.sessions.raw(addr);
    if (raw === undefined) return { exists: false, usable: false, sessionVersion: 0, pqRatchet: false };
    const rec = SessionRecord.deserialize(raw);
    return { exists: true, usable: rec.hasCurrentState(), ...sessionFacts(raw) };
  },

  async archive_session(req) {
    const d = device(req);
    const addr = remote(req);
    const rec = await d.sessions.getSession(addr);
    if (rec === null) throw new RequestError('no session');
    rec.archiveCurrentState();
    await d.sessions.saveSession(addr, rec);
    return {};
  },

  async identity(req) {
    const key = await device(req).identities.getIdentity(remote(req));
    return key === null ? {} : { identityKey: b64(key.serialize()) };
  },

  async trust(req) {
    const key = PublicKey.deserialize(unb64(req.identityKey, 'identityKey'));
    device(req).identities.forceTrust(remote(req), key);
    return {};
  },

  async fingerprint(req) {
    const f = Fingerprint.new(
      req.iterations === undefined || req.iterations === 0 ? 5200 : u32(req.iterations, 'iterations'),
      req.version === undefined || req.version === 0 ? 2 : u32(req.version, 'version'),
      unb64(req.localId, 'localId'),
      PublicKey.deserialize(unb64(req.localKey, 'localKey')),
      unb64(req.remoteId, 'remoteId'),
      PublicKey.deserialize(unb64(req.remoteKey, 'remoteKey')),
    );
    return {
      displayable: f.displayableFingerprint().toString(),
      scannable: b64(f.scannableFingerprint().toBuffer()),
    };
  },

  // Compares our scannable fingerprint with one scanned from the other side;
  // libsignal throws on a version mismatch and returns false on a key mismatch.
  async fingerprint_compare(req) {
    const ours = ScannableFingerprint._fromBuffer(unb64(req.local, 'local'));
    const theirs = ScannableFingerprint._fromBuffer(unb64(req.remote, 'remote'));
    return { match: ours.compare(theirs) };
  },

  async sign(req) {
    return { signature: b64(device(req).pair.privateKey.sign(unb64(req.message, 'message'))) };
  },

  async verify(req) {
    const key = PublicKey.deserialize(unb64(req.publicKey, 'publicKey'));
    return { valid: key.verify(unb64(req.message, 'message'), unb64(req.signature, 'signature')) };
  },

  // --- Sender keys (groups). `name`/`deviceId` are the sender's address:
  // the device's own for group_distribution and group_encrypt, the remote
  // sender's for group_process_distribution and group_decrypt.

  async group_distribution(req) {
    const d = device(req);
    const m = await SenderKeyDistributionMessage.create(remote(req), str(req.distributionId, 'distributionId'), d.senderKeys);
    return { message: b64(m.serialize()) };
  },

  async group_process_distribution(req) {
    const d = device(req);
    const m = SenderKeyDistributionMessage.deserialize(unb64(req.message, 'message'));
    await SignalClient.processSenderKeyDistributionMessage(remote(req), m, d.senderKeys);
    return { distributionId: m.distributionId() };
  },

  async group_encrypt(req) {
    const d = device(req);
    const m = await SignalClient.groupEncrypt(
      remote(req), str(req.distributionId, 'distributionId'), d.senderKeys, unb64(req.plaintext, 'plaintext'));
    return { type: m.type(), body: b64(m.serialize()) };
  },

  async group_decrypt(req) {
    const d = device(req);
    const pt = await SignalClient.groupDecrypt(remote(req), d.senderKeys, unb64(req.body, 'body'));
    return { plaintext: b64(pt) };
  },

  // --- Sealed sender. Certificates are issued here from a trust root and a
  // server key, either given (32-byte private keys) or generated.

  async sender_certificate(req) {
    const trustRoot = req.trustRootPrivate === undefined
      ? PrivateKey.generate() : PrivateKey.deserialize(unb64(req.trustRootPrivate, 'trustRootPrivate'));
    const serverKey = req.serverPrivate === undefined
      ? PrivateKey.generate() : PrivateKey.deserialize(unb64(req.serverPrivate, 'serverPrivate'));
    const serverCert = ServerCertificate.new(u32(req.serverKeyId ?? 1, 'serverKeyId'), serverKey.getPublicKey(), trustRoot);
    if (!Number.isSafeInteger(req.expiration) || req.expiration < 0) {
      throw new RequestError('expiration: want milliseconds since the epoch');
    }
    const cert = SenderCertificate.new(
      str(req.senderUuid, 'senderUuid'),
      req.senderE164 ?? null,
      u32(req.senderDeviceId, 'senderDeviceId'),
      PublicKey.deserialize(unb64(req.senderKey, 'senderKey')),
      req.expiration,
      serverCert,
      serverKey,
    );
    return {
      certificate: b64(cert.serialize()),
      serverCertificate: b64(serverCert.serialize()),
      trustRoot: b64(trustRoot.getPublicKey().serialize()),
      trustRootPrivate: b64(trustRoot.serialize()),
      serverPrivate: b64(serverKey.serialize()),
    };
  },

  // Sealed sender v1 around a 1:1 Signal message.
  async sealed_encrypt(req) {
    const d = device(req);
    const cert = SenderCertificate.deserialize(unb64(req.senderCertificate, 'senderCertificate'));
    const body = await SignalClient.sealedSenderEncryptMessage(
      unb64(req.plaintext, 'plaintext'), remote(req), cert, d.sessions, d.identities);
    return { body: b64(body) };
  },

  // Sealed sender v2 (multi-recipient) around a sender-key message; returns
  // the message as sent to the server.
  async sealed_encrypt_multi(req) {
    const d = device(req);
    const cert = SenderCertificate.deserialize(unb64(req.senderCertificate, 'senderCertificate'));
    if (!Array.isArray(req.recipients) || req.recipients.length === 0) {
      throw new RequestError('recipients: want a non-empty array');
    }
    const recipients = req.recipients.map((r, i) =>
      ProtocolAddress.new(str(r?.name, `recipients[${i}].name`), u32(r?.deviceId, `recipients[${i}].deviceId`)));
    const inner = await SignalClient.groupEncrypt(
      remote(req), str(req.distributionId, 'distributionId'), d.senderKeys, unb64(req.plaintext, 'plaintext'));
    const groupId = optB64(req.groupId, 'groupId') ?? null;
    const content = UnidentifiedSenderMessageContent.new(inner, cert, u32(req.contentHint ?? 0, 'contentHint'), groupId);
    const body = await SignalClient.sealedSenderMultiRecipientEncrypt(content, recipients, d.identities, d.sessions);
    return { body: b64(body) };
  },

  // What the server does with a v2 message: one message per recipient.
  async sealed_multi_split(req) {
    const m = new SealedSenderMultiRecipientMessage(unb64(req.body, 'body'));
    const out = {};
    for (const [serviceId, r] of Object.entries(m.recipientsByServiceIdString())) {
      out[serviceId] = { deviceIds: r.deviceIds, registrationIds: r.registrationIds, body: b64(m.messageForRecipient(r)) };
    }
    return { recipients: out };
  },

  async sealed_decrypt(req) {
    const d = device(req);
    if (!Number.isSafeInteger(req.timestamp) || req.timestamp < 0) {
      throw new RequestError('timestamp: want milliseconds since the epoch');
    }
    const r = await SignalClient.sealedSenderDecryptMessage(
      unb64(req.body, 'body'),
      PublicKey.deserialize(unb64(req.trustRoot, 'trustRoot')),
      req.timestamp,
      req.localE164 ?? null,
      str(req.localUuid, 'localUuid'),
      u32(req.localDeviceId, 'localDeviceId'),
      d.sessions, d.identities, d.preKeys, d.signedPreKeys, d.kyberPreKeys,
    );
    const out = { plaintext: b64(r.message()), senderUuid: r.senderUuid(), senderDeviceId: r.deviceId() };
    if (r.senderE164() !== null) out.senderE164 = r.senderE164();
    return out;
  },

  // The outer layer only (v1 or v2): sender certificate and inner message,
  // for inner messages sealed_decrypt does not handle (sender-key messages).
  async sealed_decrypt_to_usmc(req) {
    const d = device(req);
    const u = await SignalClient.sealedSenderDecryptToUsmc(unb64(req.body, 'body'), d.identities);
    const cert = u.senderCertificate();
    const out = {
      msgType: u.msgType(),
      contents: b64(u.contents()),
      contentHint: u.contentHint(),
      senderCertificate: b64(cert.serialize()),
      senderUuid: cert.senderUuid(),
      senderDeviceId: cert.senderDeviceId(),
    };
    const g = u.groupId();
    if (g !== null) out.groupId = b64(g);
    return out;
  },

  async version() {
    const { createRequire } = await import('node:module');
    const pkg = createRequire(import.meta.url)('@signalapp/libsignal-client/package.json');
    return { libsignal: pkg.version, node: process.versions.node };
  },

  bench,
};

async function handle(line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    return { id: null, error: `bad JSON: ${e.message}`, code: 'BadRequest' };
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) {
    return { id: null, error: 'request must be a JSON object', code: 'BadRequest' };
  }
  const id = req.id ?? null;
  const fn = Object.hasOwn(methods, req.method) ? methods[req.method] : undefined;
  if (fn === undefined) {
    return { id, error: `unknown method ${JSON.stringify(req.method)}`, code: 'BadRequest' };
  }
  try {
    return { id, result: await fn(req) };
  } catch (e) {
    return { id, ...errorBody(e) };
  }
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (line.trim() === '') continue;
  const resp = await handle(line);
  if (!process.stdout.write(JSON.stringify(resp) + '\n')) {
    await new Promise((resolve) => process.stdout.once('drain', resolve));
  }
}
