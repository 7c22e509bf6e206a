// Join tokens: issued on the leader, stored hashed, listed without secrets.

package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/drbook/drbook/nodeagent/pki"
	"github.com/drbook/drbook/nodeagent/token"
)

// TokenResult is the answer of `token create`.
type TokenResult struct {
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

// TokenCreate issues a join token on the leader (stored hashed).
func (a *Agent) TokenCreate(ctx context.Context, ttl time.Duration) (TokenResult, error) {
	return onLeader(ctx, a, "token_create", tokenCreateReq{TTL: ttl}, func(ctx context.Context) (TokenResult, error) {
		meta := a.store.State().Meta()
		fp, err := pki.Fingerprint(meta.CACertPEM)
		if err != nil {
			return TokenResult{}, err
		}
		plain, rec, err := token.New(time.Now(), ttl, fp)
		if err != nil {
			return TokenResult{}, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		if _, err := applyJSON(ctx, a.store, opTokenAdd, rec); err != nil {
			return TokenResult{}, err
		}
		return TokenResult{Token: plain, ID: rec.ID, Expires: rec.Expires}, nil
	})
}

type tokenCreateReq struct {
	TTL time.Duration `json:"ttl"`
}

// TokenInfo describes a join token without its secret.
type TokenInfo struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	State   string    `json:"state"`
	UsedAt  time.Time `json:"used_at,omitzero"`
	UsedBy  string    `json:"used_by,omitempty"`
}

// TokenList lists join tokens (no secrets, no hashes).
func (a *Agent) TokenList(ctx context.Context) ([]TokenInfo, error) {
	if a.store.Raft() == nil {
		return nil, ErrNoClusterState
	}
	now := time.Now()
	out := []TokenInfo{}
	for _, t := range a.store.State().Meta().Tokens {
		st := "valid"
		switch {
		case !t.UsedAt.IsZero():
			st = "used"
		case !now.Before(t.Expires):
			st = "expired"
		}
		out = append(out, TokenInfo{ID: t.ID, Created: t.Created, Expires: t.Expires, State: st, UsedAt: t.UsedAt, UsedBy: t.UsedBy})
	}
	slices.SortFunc(out, func(x, y TokenInfo) int { return x.Created.Compare(y.Created) })
	return out, nil
}

func mapTokenErr(err error) error {
	switch {
	case errors.Is(err, token.ErrExpired):
		return fmt.Errorf("%w: %w", ErrTokenExpired, err)
	case errors.Is(err, token.ErrUsed):
		return fmt.Errorf("%w: %w", ErrTokenUsed, err)
	default:
		return fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
}
