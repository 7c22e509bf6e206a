package nodeagent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drbook/drbook/nodeagent/token"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Store is what the services (HTTPS API, admin socket, backups, batcher,
// metrics) need of the replicated store: commit a command, know whether
// this node is the ready leader, read the applied state, and look at raft.
// It is owned by its consumers and small on purpose, so a service can be
// tested against a fake; *raftStore implements it.
type Store interface {
	// Apply commits one encoded command through raft and returns the FSM's
	// answer; an error answer is returned as the error.
	Apply(ctx context.Context, cmd []byte) (any, error)
	// Ready reports whether this node is the leader and its barrier for
	// the current term completed (its reads see every committed entry).
	Ready() bool
	// Info is a point-in-time view of raft.
	Info() RaftInfo
	// State reads the applied state: keys and cluster metadata.
	State() StateReader
}

// StateReader reads the applied state (the FSM). Keys are immutable once
// stored; metadata is returned as a copy.
type StateReader interface {
	Meta() ClusterMeta
	Get(id string) (*Key, bool)
	Keys() []*Key
	KeyCount() int
	Index() uint64
	APIKey(id string) (token.APIKeyRecord, bool)
	IsRevoked(fp string) bool
	State() (ClusterMeta, []*Key)
}

// RaftInfo is a point-in-time view of raft for status, health and
// metrics. Running is false before the node is in a cluster, after it was
// removed, and while lifecycle operations restart raft.
type RaftInfo struct {
	Running bool
	// State is leader, follower, candidate, shutdown or none.
	State        string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LeaderID     string
	LeaderAddr   string
	// LastContact is when a follower last heard from the leader (zero on
	// the leader and before the first contact).
	LastContact time.Time
	// Servers is the latest configuration; ConfigErr says why it is nil.
	Servers   []raft.Server
	ConfigErr error
}

var (
	_ Store       = (*raftStore)(nil)
	_ StateReader = (*FSM)(nil)
)

// storeHooks are called by the store's leadership watcher (every 50 ms):
// the agent's periodic work that needs raft but is not the store's.
type storeHooks struct {
	// periodic runs every 250 ms while raft runs.
	periodic func()
	// leaderTick runs on every tick while this node is the ready leader.
	leaderTick func(r *raft.Raft)
}

// raftStore owns raft and the FSM: the bolt log and stable store, the file
// snapshot store, the mutual-TLS transport, raft's lifecycle (open,
// bootstrap, shut down, recover alone), the leadership watcher and the
// apply path. It knows nothing of HTTP, node credentials or cluster
// operations: those are the agent's, which hands it TLS configs.
type raftStore struct {
	cfg   Config
	log   *slog.Logger
	fsm   *FSM
	hooks storeHooks

	mu        sync.RWMutex
	raft      *raft.Raft
	trans     *raft.NetworkTransport
	logs      *raftboltdb.BoltStore
	stopWatch chan struct{}
	watchDone chan struct{}

	ready atomic.Bool // leader and caught up with its term (barrier done)
}

func newRaftStore(cfg Config, log *slog.Logger, fsm *FSM, hooks storeHooks) *raftStore {
	return &raftStore{cfg: cfg, log: log, fsm: fsm, hooks: hooks}
}

// State implements Store.
func (s *raftStore) State() StateReader { return s.fsm }

// Ready implements Store.
func (s *raftStore) Ready() bool { return s.ready.Load() }

// Raft returns the running raft instance or nil.
func (s *raftStore) Raft() *raft.Raft {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.raft
}

// Info implements Store.
func (s *raftStore) Info() RaftInfo {
	r := s.Raft()
	info := RaftInfo{State: raftStateName(r)}
	if r == nil {
		return info
	}
	info.Running = true
	info.Term, info.CommitIndex, info.AppliedIndex = r.CurrentTerm(), r.CommitIndex(), r.AppliedIndex()
	laddr, lid := r.LeaderWithID()
	info.LeaderID, info.LeaderAddr = string(lid), string(laddr)
	if r.State() != raft.Leader {
		info.LastContact = r.LastContact()
	}
	if f := r.GetConfiguration(); f.Error() != nil {
		info.ConfigErr = f.Error()
	} else {
		info.Servers = f.Configuration().Servers
	}
	return info
}

// Open opens the stores and starts raft; bootstrap makes a one-voter
// configuration of this node. server and client are the raft transport's
// mutual-TLS configs.
func (s *raftStore) Open(ctx context.Context, server, client *tls.Config, bootstrap bool) error {
	r, trans, logs, err := s.openRaft(server, client, bootstrap)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.raft, s.trans, s.logs = r, trans, logs
	s.stopWatch, s.watchDone = make(chan struct{}), make(chan struct{})
	stop, done := s.stopWatch, s.watchDone
	s.mu.Unlock()
	go s.watchLeadership(r, stop, done)
	s.log.InfoContext(ctx, "raft started", "raft_addr", s.cfg.RaftAddr, "bootstrap", bootstrap)
	return nil
}

func (s *raftStore) raftConfig() *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(s.cfg.NodeID)
	c.HeartbeatTimeout = s.cfg.HeartbeatTimeout
	c.ElectionTimeout = s.cfg.ElectionTimeout
	c.LeaderLeaseTimeout = s.cfg.LeaderLeaseTimeout
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = s.cfg.SnapshotThreshold
	c.TrailingLogs = 4096
	c.MaxAppendEntries = 256
	c.Logger = newHCLogger(s.cfg.Logger, "raft", s.cfg.RaftLogLevel)
	return c
}

func (s *raftStore) raftDir() string { return filepath.Join(s.cfg.DataDir, raftDirName) }

// openStores opens the bolt log/stable store and the file snapshot store.
func (s *raftStore) openStores() (*raftboltdb.BoltStore, *raft.FileSnapshotStore, error) {
	if err := os.MkdirAll(s.raftDir(), 0o700); err != nil {
		return nil, nil, fmt.Errorf("create raft dir: %w", err)
	}
	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(s.raftDir(), "raft.db")})
	if err != nil {
		return nil, nil, fmt.Errorf("open raft store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(s.raftDir(), 2, newHCLogger(s.cfg.Logger, "snapshot", s.cfg.RaftLogLevel))
	if err != nil {
		_ = logs.Close()
		return nil, nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return logs, snaps, nil
}

func (s *raftStore) newTransport(server, client *tls.Config) (*raft.NetworkTransport, error) {
	stream, err := newTLSStreamLayer(s.cfg.RaftAddr, server, client)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 4,
		Timeout: 10 * time.Second,
		Logger:  newHCLogger(s.cfg.Logger, "raft-net", s.cfg.RaftLogLevel),
	}), nil
}

func (s *raftStore) openRaft(server, client *tls.Config, bootstrap bool) (*raft.Raft, *raft.NetworkTransport, *raftboltdb.BoltStore, error) {
	logs, snaps, err := s.openStores()
	if err != nil {
		return nil, nil, nil, err
	}
	trans, err := s.newTransport(server, client)
	if err != nil {
		_ = logs.Close()
		return nil, nil, nil, err
	}
	conf := s.raftConfig()
	if bootstrap {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: trans.LocalAddr(), Suffrage: raft.Voter}}}
		if err := raft.BootstrapCluster(conf, logs, logs, snaps, trans, cfg); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			_ = trans.Close()
			_ = logs.Close()
			return nil, nil, nil, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	r, err := raft.NewRaft(conf, s.fsm, logs, logs, snaps, trans)
	if err != nil {
		_ = trans.Close()
		_ = logs.Close()
		return nil, nil, nil, fmt.Errorf("start raft: %w", err)
	}
	return r, trans, logs, nil
}

// watchLeadership runs a barrier whenever this node becomes leader, so that
// reads served by the leader see every entry committed in earlier terms,
// and runs the agent's hooks.
func (s *raftStore) watchLeadership(r *raft.Raft, stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var term uint64
	for i := 0; ; i++ {
		select {
		case <-stop:
			s.ready.Store(false)
			return
		case <-tick.C:
		}
		if i%5 == 0 && s.hooks.periodic != nil { // every 250 ms
			s.hooks.periodic()
		}
		if r.State() != raft.Leader {
			s.ready.Store(false)
			term = 0
			continue
		}
		if t := r.CurrentTerm(); t != term {
			s.ready.Store(false)
			if err := r.Barrier(5 * time.Second).Error(); err != nil {
				continue
			}
			term = t
			s.ready.Store(true)
			s.log.Info("leader ready", "term", t)
		}
		if s.hooks.leaderTick != nil {
			s.hooks.leaderTick(r)
		}
	}
}

// Shutdown stops the watcher, shuts raft down and closes its stores. It
// is a no-op when raft is not running.
func (s *raftStore) Shutdown() error {
	s.mu.Lock()
	r, logs, stop, done := s.raft, s.logs, s.stopWatch, s.watchDone
	s.raft, s.logs, s.trans, s.stopWatch = nil, nil, nil, nil
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	close(stop)
	<-done
	err := r.Shutdown().Error()
	if cerr := logs.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("stop raft: %w", err)
	}
	return nil
}

// RecoverAlone rewrites the raft configuration on disk to this node alone
// (raft.RecoverCluster). Raft must be shut down.
func (s *raftStore) RecoverAlone(server, client *tls.Config) error {
	logs, snaps, err := s.openStores()
	if err != nil {
		return err
	}
	defer logs.Close()
	trans, err := s.newTransport(server, client)
	if err != nil {
		return err
	}
	defer trans.Close()
	cfg := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(s.cfg.NodeID), Address: raft.ServerAddress(s.cfg.RaftAddr), Suffrage: raft.Voter}}}
	if err := raft.RecoverCluster(s.raftConfig(), NewFSM(s.fsm.cmk), logs, logs, snaps, trans, cfg); err != nil {
		return fmt.Errorf("recover cluster: %w", err)
	}
	return nil
}

// SelfSuffrage returns this node's suffrage in the latest local
// configuration.
func (s *raftStore) SelfSuffrage() (raft.ServerSuffrage, bool) {
	r := s.Raft()
	if r == nil {
		return 0, false
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return 0, false
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == s.cfg.NodeID {
			return srv.Suffrage, true
		}
	}
	return 0, false
}

// Apply implements Store.
func (s *raftStore) Apply(ctx context.Context, cmd []byte) (any, error) {
	r := s.Raft()
	if r == nil {
		return nil, ErrNoClusterState
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	f := r.Apply(cmd, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
				errors.Is(err, raft.ErrEnqueueTimeout) || errors.Is(err, raft.ErrRaftShutdown) {
				return nil, fmt.Errorf("%w: raft apply: %w", ErrUnavailable, err)
			}
			return nil, fmt.Errorf("raft apply: %w", err)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: raft apply not committed: %w", ErrUnavailable, ctx.Err())
	}
	if err, ok := f.Response().(error); ok {
		return nil, err
	}
	return f.Response(), nil
}

// applyJSON encodes v as the JSON command op and commits it through s.
func applyJSON(ctx context.Context, s Store, op byte, v any) (any, error) {
	cmd, err := encodeJSONCmd(op, v)
	if err != nil {
		return nil, err
	}
	return s.Apply(ctx, cmd)
}

// Membership primitives. They run on the leader (raft answers
// ErrNotLeader elsewhere); callers decide what a failure means. Each
// waits for the configuration change to commit, up to its timeout.

// AddNonvoter adds id at addr as a non-voter (a joiner catching up).
func (s *raftStore) AddNonvoter(id, addr string) error {
	return s.change(func(r *raft.Raft) raft.IndexFuture {
		return r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 10*time.Second)
	})
}

// AddVoter makes id at addr a voter (promotion of a caught-up non-voter).
func (s *raftStore) AddVoter(id, addr string) error {
	return s.change(func(r *raft.Raft) raft.IndexFuture {
		return r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 5*time.Second)
	})
}

// RemoveServer removes id from the configuration.
func (s *raftStore) RemoveServer(id string) error {
	return s.change(func(r *raft.Raft) raft.IndexFuture {
		return r.RemoveServer(raft.ServerID(id), 0, 10*time.Second)
	})
}

// TransferLeadership hands leadership to another voter.
func (s *raftStore) TransferLeadership() error {
	r := s.Raft()
	if r == nil {
		return ErrNoClusterState
	}
	return r.LeadershipTransfer().Error()
}

func (s *raftStore) change(fn func(r *raft.Raft) raft.IndexFuture) error {
	r := s.Raft()
	if r == nil {
		return ErrNoClusterState
	}
	return fn(r).Error()
}
