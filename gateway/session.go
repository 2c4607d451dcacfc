package gateway

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
)

// SessionKeyFile is the file, under the data directory, that holds the key
// sealing relayed session ids.
const SessionKeyFile = "session.key"

// errBadSession is returned for a session id that does not unseal.
var errBadSession = errors.New("unknown session")

// sessionLabel is what a relayed session id or message endpoint is sealed
// to: the server's key and the caller's subject. A sealed id that leaks
// (a log, a proxy) is then of no use to another caller, whose requests
// would otherwise ride an upstream session set up with someone else's
// credentials.
func sessionLabel(r *http.Request, rt *route) string {
	if ri := infoFrom(r.Context()); ri != nil {
		return rt.key + "\x00" + ri.subject
	}
	return rt.key
}

// errSessionHeaders is a request with more than one Mcp-Session-Id header.
var errSessionHeaders = errors.New("send at most one Mcp-Session-Id header")

// Sealer seals upstream session ids so that the id a client holds names both
// the upstream session and the service path, without any session table: any
// replica holding the key can relay it, a restart does not break it, and an
// id minted for one path does not open on another.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer with a 32-byte AES-256-GCM key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("session key: want 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// LoadOrCreateSessionKey reads <dataDir>/session.key, creating it with a
// random key (mode 0600) on first use.
func LoadOrCreateSessionKey(dataDir string) ([]byte, error) {
	file := filepath.Join(dataDir, SessionKeyFile)
	if b, err := os.ReadFile(file); err == nil {
		key, err := base64.StdEncoding.DecodeString(string(trimSpace(b)))
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("session key %s: not 32 base64-encoded bytes", file)
		}
		return key, nil
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("session key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	return key, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// Seal returns the client-facing id for the upstream id on service key.
func (s *Sealer) Seal(key, upstreamID string) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(upstreamID)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	out := s.aead.Seal(nonce, nonce, []byte(upstreamID), []byte(key))
	return base64.RawURLEncoding.EncodeToString(out)
}

// Unseal returns the upstream id of a client-facing id on service key, or
// errBadSession when it was tampered with or minted for another key.
func (s *Sealer) Unseal(key, sealed string) (string, error) {
	if len(sealed) > 4096 {
		return "", errBadSession
	}
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return "", errBadSession
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte(key))
	if err != nil {
		return "", errBadSession
	}
	return string(plain), nil
}
