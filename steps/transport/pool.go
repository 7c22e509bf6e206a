package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// DefaultDialConcurrency bounds DialAll when its limit is not positive.
const DefaultDialConcurrency = 8

// Pool keeps one live Transport per node name. Transports are dialled lazily
// by Get or up front by DialAll; concurrent Gets for one name share a single
// dial. A transport found dead (one with an Alive method that reports false)
// is closed and redialled by the next Get; a Run in progress on it is not
// retried (it fails with ErrConnLost). Pool is safe for concurrent use.
type Pool struct {
	dial func(ctx context.Context, name string) (Transport, error)

	mu      sync.Mutex
	closed  bool
	entries map[string]*poolEntry
}

type poolEntry struct {
	ready chan struct{} // closed when the dial has finished
	t     Transport
	err   error
}

// aliver is implemented by transports that can tell a dead connection.
type aliver interface{ Alive() bool }

// NewPool returns a pool that dials node name with dial.
func NewPool(dial func(ctx context.Context, name string) (Transport, error)) *Pool {
	return &Pool{dial: dial, entries: make(map[string]*poolEntry)}
}

// Get returns the live transport for name, dialling it if there is none or
// if the previous one is dead. A failed dial is not cached: the next Get
// tries again.
func (p *Pool) Get(ctx context.Context, name string) (Transport, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, fmt.Errorf("pool get %s: %w", name, ErrClosed)
		}
		e, ok := p.entries[name]
		if !ok {
			e = &poolEntry{ready: make(chan struct{})}
			p.entries[name] = e
			p.mu.Unlock()
			p.dialEntry(ctx, name, e)
		} else {
			p.mu.Unlock()
		}

		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("pool get %s: %w", name, ctx.Err())
		}
		if e.err != nil {
			return nil, e.err
		}
		if a, ok := e.t.(aliver); !ok || a.Alive() {
			return e.t, nil
		}
		// Dead: drop it (unless another Get already replaced it) and redial.
		p.mu.Lock()
		if p.entries[name] == e {
			delete(p.entries, name)
		}
		p.mu.Unlock()
		_ = e.t.Close()
	}
}

// dialEntry dials name into e and publishes the result. Failed entries are
// removed so that the next Get dials again.
func (p *Pool) dialEntry(ctx context.Context, name string, e *poolEntry) {
	t, err := p.dial(ctx, name)
	p.mu.Lock()
	switch {
	case err != nil:
		e.err = fmt.Errorf("pool dial %s: %w", name, err)
		if p.entries[name] == e {
			delete(p.entries, name)
		}
	case p.closed:
		_ = t.Close()
		e.err = fmt.Errorf("pool dial %s: %w", name, ErrClosed)
	default:
		e.t = t
	}
	p.mu.Unlock()
	close(e.ready)
}

// DialAll dials every name not yet connected, at most limit at a time
// (DefaultDialConcurrency if limit ≤ 0), and returns the joined errors of the
// dials that failed.
func (p *Pool) DialAll(ctx context.Context, names []string, limit int) error {
	if limit <= 0 {
		limit = DefaultDialConcurrency
	}
	sem := make(chan struct{}, limit)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = fmt.Errorf("pool dial %s: %w", name, ctx.Err())
				return
			}
			defer func() { <-sem }()
			_, errs[i] = p.Get(ctx, name)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close closes every transport and makes later Gets fail with ErrClosed.
// Dials in progress are closed when they finish.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	entries := p.entries
	p.entries = make(map[string]*poolEntry)
	p.mu.Unlock()
	var errs []error
	for _, e := range entries {
		<-e.ready
		if e.t != nil {
			errs = append(errs, e.t.Close())
		}
	}
	return errors.Join(errs...)
}
