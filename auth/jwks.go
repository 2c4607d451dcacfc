package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// keyCache is an issuer's JSON Web Key Set, cached. It implements
// oidc.KeySet. A token whose key id is unknown makes it re-read the set (key
// rotation), at most once per MinRefresh; when the provider cannot be
// reached, the cached keys keep verifying and unknown key ids fail.
type keyCache struct {
	url  string
	opts OIDCOptions

	fetchMu sync.Mutex // one fetch at a time

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // last successful fetch
	tried   time.Time // last attempt
}

var _ oidc.KeySet = (*keyCache)(nil)

func newKeyCache(url string, opts OIDCOptions) *keyCache {
	return &keyCache{url: url, opts: opts}
}

var errUnknownKey = errors.New("no key of the issuer matches the token's key id")

// VerifySignature implements oidc.KeySet.
func (k *keyCache) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	algs := make([]jose.SignatureAlgorithm, len(signingAlgs))
	for i, a := range signingAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSigned(raw, algs)
	if err != nil {
		return nil, fmt.Errorf("malformed jws: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must carry exactly one signature")
	}
	k.mu.Lock()
	keys, fetched := k.keys, k.fetched
	k.mu.Unlock()
	if !fetched.IsZero() && k.opts.Now().Sub(fetched) > k.opts.MaxKeyAge && k.fetchMu.TryLock() {
		go func() {
			defer k.fetchMu.Unlock()
			if err := k.fetchLocked(context.WithoutCancel(ctx)); err != nil {
				k.opts.Log.Warn().Str("jwks_uri", k.url).Err(err).Msg("could not re-read the identity provider's keys; keeping the cached ones")
			}
		}()
	}
	payload, matched, err := verifyWith(jws, keys)
	if matched {
		return payload, err
	}
	keys, err = k.refresh(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("%w (and the key set could not be re-read: %v)", errUnknownKey, err)
	}
	payload, matched, err = verifyWith(jws, keys)
	if !matched {
		return nil, errUnknownKey
	}
	return payload, err
}

// verifyWith verifies jws with the keys its key id selects (every key when
// it has none). matched is false when no key was a candidate.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey) (payload []byte, matched bool, err error) {
	h := jws.Signatures[0].Header
	for _, key := range keys {
		if h.KeyID != "" && key.KeyID != h.KeyID {
			continue
		}
		if key.Algorithm != "" && key.Algorithm != h.Algorithm {
			continue
		}
		matched = true
		if p, err := jws.Verify(key); err == nil {
			return p, true, nil
		}
	}
	if matched {
		return nil, true, errors.New("signature does not verify")
	}
	return nil, false, nil
}

// refresh re-reads the key set and returns the keys in force afterwards.
// Unless force, a fetch within MinRefresh of the last attempt is skipped
// and the cached keys returned: a concurrent caller may just have fetched
// the key that is wanted.
func (k *keyCache) refresh(ctx context.Context, force bool) ([]jose.JSONWebKey, error) {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.Lock()
	recent := !k.tried.IsZero() && k.opts.Now().Sub(k.tried) < k.opts.MinRefresh
	keys := k.keys
	k.mu.Unlock()
	if recent && !force {
		return keys, nil
	}
	if err := k.fetchLocked(ctx); err != nil {
		return keys, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, nil
}

// fetchLocked reads the key set; fetchMu must be held. On failure the
// cached keys stay.
func (k *keyCache) fetchLocked(ctx context.Context) error {
	k.mu.Lock()
	k.tried = k.opts.Now()
	k.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jwks: %s answered %s", k.url, resp.Status)
	}
	keys, err := parseKeySet(body)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	k.mu.Lock()
	k.keys, k.fetched = keys, k.opts.Now()
	k.mu.Unlock()
	return nil
}

// parseKeySet keeps the public signing keys of a JWKS and skips keys of
// types or algorithms it does not know, as RFC 7517 section 5 asks.
func parseKeySet(body []byte) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	var out []jose.JSONWebKey
	for _, kb := range raw.Keys {
		var key jose.JSONWebKey
		if err := json.Unmarshal(kb, &key); err != nil {
			continue
		}
		if key.Use == "enc" || !key.Valid() {
			continue
		}
		switch key.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			out = append(out, key)
		}
	}
	return out, nil
}
