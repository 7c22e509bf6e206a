package clustertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"golang.org/x/sys/unix"

	"github.com/drbook/drbook/nodeagent"
)

// Network namespaces made by the partition nemesis are named with this
// prefix; leftovers of an earlier, killed run are removed by it.
const netnsPrefix = "drbkpt-"

// partSubnet is the private range used inside the nemesis' own namespaces
// (a bridge in the hub namespace, one veth per agent); nothing of it exists
// in the machine's own network namespace, so no packet leaves the machine.
const (
	partHubIP  = "10.200.0.1"
	partDropGW = "10.200.0.254" // never assigned: a route via it drops silently
)

func partNodeIP(i int) string { return fmt.Sprintf("10.200.0.%d", 11+i) }

// netLab is one agent per network namespace, all joined by veth links to a
// bridge in a hub namespace. The test's clients dial from the hub, so they
// reach every agent whatever the partition; a cut between two agents is a
// pair of routes (one in each namespace) through an address nobody
// answers: packets between them are dropped silently, as by a dead switch.
type netLab struct {
	t      testing.TB
	prefix string
	hub    string
	ns     []string
	cuts   map[[2]int]bool
}

// requireNetns skips (outside CI) or fails (in CI) when network
// namespaces cannot be made here.
func requireNetns(t testing.TB) {
	t.Helper()
	why := ""
	if _, err := exec.LookPath("ip"); err != nil {
		why = "iproute2's ip is not installed"
	} else if os.Geteuid() != 0 {
		why = "network namespaces need root"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "" {
		t.Skip(why)
	}
	t.Fatal(why + " (CI must install iproute2 and run as root: .ci/run)")
}

// ipCmd runs `ip args...` with a timeout.
func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// removeNetns deletes every namespace whose name starts with prefix.
func removeNetns(t testing.TB, prefix string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Errorf("ip netns list: %v", err)
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			if prefix == netnsPrefix && netnsOwnerAlive(f[0]) {
				continue // another test process's lab, not a leftover
			}
			if err := ipCmd("netns", "del", f[0]); err != nil {
				t.Errorf("remove namespace: %v", err)
			}
		}
	}
}

// netnsOwnerAlive reports whether the test process that named a namespace
// drbkpt-<pid>-… is still running.
func netnsOwnerAlive(name string) bool {
	rest := strings.TrimPrefix(name, netnsPrefix)
	pidText, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

func newNetLab(t testing.TB, n int) *netLab {
	t.Helper()
	requireNetns(t)
	removeNetns(t, netnsPrefix) // leftovers of a killed run
	l := &netLab{t: t, prefix: fmt.Sprintf("%s%d-", netnsPrefix, os.Getpid()), cuts: map[[2]int]bool{}}
	t.Cleanup(func() { removeNetns(t, l.prefix) }) // runs after the agents' cleanups
	l.hub = l.prefix + "hub"
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("netns", "add", l.hub)
	must("-n", l.hub, "link", "set", "lo", "up")
	must("-n", l.hub, "link", "add", "br0", "type", "bridge")
	must("-n", l.hub, "addr", "add", partHubIP+"/24", "dev", "br0")
	must("-n", l.hub, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("%sn%d", l.prefix, i+1)
		must("netns", "add", ns)
		must("-n", ns, "link", "set", "lo", "up")
		veth := fmt.Sprintf("v%d", i+1)
		must("-n", l.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		must("-n", l.hub, "link", "set", veth, "master", "br0", "up")
		must("-n", ns, "addr", "add", partNodeIP(i)+"/24", "dev", "eth0")
		must("-n", ns, "link", "set", "eth0", "up")
		l.ns = append(l.ns, ns)
	}
	return l
}

// cut drops every packet between agents a and b (both directions).
func (l *netLab) cut(a, b int) error {
	if a == b || l.cuts[[2]int{a, b}] {
		return nil
	}
	if err := ipCmd("-n", l.ns[a], "route", "add", partNodeIP(b)+"/32", "via", partDropGW); err != nil {
		return err
	}
	l.cuts[[2]int{a, b}] = true
	if err := ipCmd("-n", l.ns[b], "route", "add", partNodeIP(a)+"/32", "via", partDropGW); err != nil {
		return err
	}
	l.cuts[[2]int{b, a}] = true
	return nil
}

// isolate cuts every agent in side from every agent outside it.
func (l *netLab) isolate(side []int) error {
	for a := range l.ns {
		if !slices.Contains(side, a) {
			continue
		}
		for b := range l.ns {
			if !slices.Contains(side, b) {
				if err := l.cut(a, b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// heal removes every cut.
func (l *netLab) heal() error {
	var errs []error
	for c := range l.cuts {
		if err := ipCmd("-n", l.ns[c[0]], "route", "del", partNodeIP(c[1])+"/32"); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(l.cuts, c)
	}
	return errors.Join(errs...)
}

// setns moves the calling OS thread into the network namespace open as f.
func setns(f *os.File) error {
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil { // #nosec G115 -- an fd fits an int
		return fmt.Errorf("setns %s: %w", f.Name(), err)
	}
	return nil
}

// nsDial connects from inside the network namespace ns while the test
// process stays in its own: a locked OS thread enters the namespace,
// creates and connects the socket (a socket keeps the namespace it was
// made in), and leaves again. A thread that cannot leave is not unlocked,
// so the runtime discards it with its goroutine.
func nsDial(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			runtime.LockOSThread()
			self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
			if err != nil {
				runtime.UnlockOSThread()
				ch <- res{nil, err}
				return
			}
			defer self.Close()
			target, err := os.Open(filepath.Join("/run/netns", ns))
			if err != nil {
				runtime.UnlockOSThread()
				ch <- res{nil, err}
				return
			}
			defer target.Close()
			if err := setns(target); err != nil {
				runtime.UnlockOSThread()
				ch <- res{nil, err}
				return
			}
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if setns(self) == nil {
				runtime.UnlockOSThread()
			}
			ch <- res{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// newNSClient is an API client whose connections are made in namespace ns.
func newNSClient(t testing.TB, caFile, apiKey, ns string, conns int) *apiClient {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("bad CA PEM")
	}
	tr := &http.Transport{
		DialContext:         nsDial(ns),
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiClient{http: &http.Client{Transport: tr, Timeout: 5 * time.Second}, apiKey: apiKey}
}

// partLoad is the porcupine-checked load (create/get/delete on a few keys)
// plus create-only writes on unique keys whose acknowledgements the final
// manifest must honour.
type partLoad struct {
	client *apiClient
	nodes  []*node
	start  time.Time

	mu        sync.Mutex
	history   []porcupine.Operation
	acked     map[string]string // key id -> SHA-256 of the acknowledged material
	ambiguous map[string]bool   // writes whose effect is unknown
	attempted map[string]bool
}

// create writes unique key id with fresh material through n and records
// the outcome; it reports whether the write was acknowledged.
func (p *partLoad) create(ctx context.Context, n *node, id string, timeout time.Duration) bool {
	mat := make([]byte, 32)
	for i := range 4 {
		binary.BigEndian.PutUint64(mat[i*8:], rand.Uint64())
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var cr nodeagent.CreateResult
	st, oc := p.client.do(rctx, http.MethodPut, "https://"+n.api+"/v1/keys/"+id, map[string]any{"material": mat}, &cr)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempted[id] = true
	switch {
	case oc == definite && st == http.StatusOK && cr.Created:
		sum := sha256.Sum256(mat)
		p.acked[id] = hex.EncodeToString(sum[:])
		return true
	case oc == ambiguous:
		p.ambiguous[id] = true
	}
	return false
}

// run drives clients until ctx ends.
func (p *partLoad) run(ctx context.Context, clients, keys int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for ci := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(ci), 16))
			seq := 0
			for n := 0; ctx.Err() == nil; n++ {
				node := p.nodes[rng.IntN(len(p.nodes))]
				if n%3 == 0 {
					p.create(ctx, node, fmt.Sprintf("ack-%d-%d", ci, n), 3*time.Second)
					continue
				}
				key := fmt.Sprintf("lin-%d", rng.IntN(keys))
				url := "https://" + node.api + "/v1/keys/" + key
				in := linInput{Key: key}
				var out linOutput
				call := time.Since(p.start).Nanoseconds()
				var oc outcome
				rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
				switch r := rng.IntN(10); {
				case r < 4:
					in.Op = "create"
					seq++
					mat := make([]byte, 32)
					binary.BigEndian.PutUint64(mat, uint64(ci)<<32|uint64(seq))
					in.Value = fmt.Sprintf("%x", mat)
					var cr nodeagent.CreateResult
					_, oc = p.client.do(rctx, http.MethodPut, url, map[string]any{"material": mat}, &cr)
					out.OK = cr.Created
				case r < 8:
					in.Op = "get"
					var ki nodeagent.KeyInfo
					var status int
					status, oc = p.client.do(rctx, http.MethodGet, url, nil, &ki)
					if oc == definite && status == http.StatusOK {
						out.OK, out.Value = true, fmt.Sprintf("%x", ki.Material)
					}
					if oc == ambiguous {
						oc = notSent // a failed read has no effect: drop it
					}
				default:
					in.Op = "delete"
					var status int
					status, oc = p.client.do(rctx, http.MethodDelete, url, nil, nil)
					out.OK = status == http.StatusOK
				}
				rcancel()
				ret := time.Since(p.start).Nanoseconds()
				if oc == notSent {
					continue
				}
				if oc == ambiguous {
					out = linOutput{Ambiguous: true}
					ret = math.MaxInt64
				}
				p.mu.Lock()
				p.history = append(p.history, porcupine.Operation{ClientId: ci, Input: in, Call: call, Output: out, Return: ret})
				p.mu.Unlock()
			}
		}()
	}
	return &wg
}

// partScenario is one measured partition.
type partScenario struct {
	name      string
	side      string        // the cut-off side
	held      time.Duration // how long the cut lasted
	election  time.Duration // cut → a leader on the majority side (0: it kept its leader)
	ackedCut  int           // writes acknowledged while cut
	firstW    time.Duration // heal → a write through every node succeeded
	healthy   time.Duration // heal → every node names one leader, leader sees all healthy
	rejoined  time.Duration // heal → every node cut off names the majority's leader
	leaderWas string
	leaderNow string
}

// TestPartitionNemesis_LeaderIsolated_MinoritySplit_Flapping_Linearizable_NoAckedWriteLost
// runs five agents, each in its own network namespace, under the
// porcupine-checked key load while the network between them is cut: the
// leader alone; the leader and one follower (a minority) from the other
// three; and a minority cut and healed again and again. After each heal it
// measures how long until a write through every node succeeds and until
// the cluster is healthy. The history must be linearizable, every
// acknowledged write must be in the final manifest with its material, no
// key never written may be there, and all nodes must converge on one
// manifest.
func TestPartitionNemesis_LeaderIsolated_MinoritySplit_Flapping_Linearizable_NoAckedWriteLost(t *testing.T) {
	const size = 5
	lab := newNetLab(t, size)
	wrap := func(i int) []string { return []string{"ip", "netns", "exec", lab.ns[i]} }
	addr := func(i int, port string) string { return net.JoinHostPort(partNodeIP(i), port) }

	n1 := newNodeAt(t, "node1", addr(0, "7443"), addr(0, "7300"), wrap(0))
	var br nodeagent.BootstrapResult
	n1.mustJSON(&br, "cluster", "create")
	c := &cluster{t: t, apiKey: br.APIKey, nodes: []*node{n1}}
	for i := 1; i < size; i++ {
		n := newNodeAt(t, fmt.Sprintf("node%d", i+1), addr(i, "7443"), addr(i, "7300"), wrap(i))
		tf := token(t, n1, "")
		var jr nodeagent.JoinResult
		n.mustJSON(&jr, "cluster", "join", "--peer", n1.api, "--token-file", tf)
		if !jr.Changed || jr.Suffrage != "voter" {
			t.Fatalf("join %s: %+v", n.id, jr)
		}
		c.nodes = append(c.nodes, n)
	}
	index := func(n *node) int { return slices.Index(c.nodes, n) }
	client := newNSClient(t, filepath.Join(n1.dir, "ca.pem"), c.apiKey, lab.hub, 32)

	start := time.Now()
	load := &partLoad{client: client, nodes: c.nodes, start: start,
		acked: map[string]string{}, ambiguous: map[string]bool{}, attempted: map[string]bool{}}
	ctx, stop := context.WithTimeout(context.Background(), 100*time.Second) // hard bound on the load
	defer stop()
	wg := load.run(ctx, 8, 10)

	// leaderOf asks the nodes in side for a leader among them.
	leaderIn := func(side []int) (*node, error) {
		var l *node
		for _, i := range side {
			var st nodeagent.Status
			if err := c.nodes[i].tryJSON(&st, "status"); err != nil {
				return nil, err
			}
			if st.State == "leader" {
				l = c.nodes[i]
			}
		}
		if l == nil {
			return nil, errors.New("no leader")
		}
		return l, nil
	}
	all := []int{0, 1, 2, 3, 4}
	// healthy: every node names the same leader and the leader sees every
	// member healthy.
	healthy := func() error {
		var leaderID string
		var lst nodeagent.Status
		for _, n := range c.nodes {
			var st nodeagent.Status
			if err := n.tryJSON(&st, "status"); err != nil {
				return err
			}
			if st.Leader.ID == "" || leaderID != "" && st.Leader.ID != leaderID {
				return fmt.Errorf("%s names leader %q", n.id, st.Leader.ID)
			}
			leaderID = st.Leader.ID
			if st.State == "leader" {
				lst = st
			}
		}
		if lst.Healthy != size {
			return fmt.Errorf("leader sees %d of %d healthy", lst.Healthy, size)
		}
		return nil
	}
	probe := 0
	// writeThroughAll: a write through every node succeeds.
	writeThroughAll := func(timeout time.Duration) time.Duration {
		t0 := time.Now()
		var mu sync.Mutex
		var per []string
		var pw sync.WaitGroup
		for _, n := range c.nodes {
			probe++
			id := fmt.Sprintf("probe-%d", probe)
			pw.Add(1)
			go func() {
				defer pw.Done()
				for i := 0; time.Since(t0) < timeout; i++ {
					if load.create(context.Background(), n, fmt.Sprintf("%s-%d", id, i), 2*time.Second) {
						mu.Lock()
						per = append(per, fmt.Sprintf("%s %s/%d tries", n.id, time.Since(t0).Round(time.Millisecond), i+1))
						mu.Unlock()
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				t.Errorf("no write through %s succeeded within %s of the heal", n.id, timeout)
			}()
		}
		pw.Wait()
		sort.Strings(per)
		t.Logf("first write after the heal: %s", strings.Join(per, ", "))
		return time.Since(t0)
	}
	ackedCount := func() int {
		load.mu.Lock()
		defer load.mu.Unlock()
		return len(load.acked)
	}
	var scenarios []*partScenario
	// partition cuts side off for hold, then heals and measures recovery.
	partition := func(name string, side []int, hold time.Duration) *partScenario {
		sc := &partScenario{name: name, held: hold}
		var names []string
		for _, i := range side {
			names = append(names, c.nodes[i].id)
		}
		sc.side = strings.Join(names, "+")
		if l, err := leaderIn(all); err == nil {
			sc.leaderWas = l.id
		}
		var majority []int
		for _, i := range all {
			if !slices.Contains(side, i) {
				majority = append(majority, i)
			}
		}
		before := ackedCount()
		cutAt := time.Now()
		if err := lab.isolate(side); err != nil {
			t.Fatal(err)
		}
		// The majority side has (or elects, within 20 s) a leader while
		// cut; the cut lasts hold, and at least 1 s past that election.
		deadline := cutAt.Add(hold)
		for time.Since(cutAt) < 20*time.Second {
			if l, err := leaderIn(majority); err == nil {
				if l.id != sc.leaderWas {
					sc.election = time.Since(cutAt)
				}
				if d := time.Now().Add(time.Second); d.After(deadline) {
					deadline = d
				}
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Until(deadline))
		sc.held = time.Since(cutAt)
		sc.ackedCut = ackedCount() - before
		if err := lab.heal(); err != nil {
			t.Fatal(err)
		}
		healAt := time.Now()
		// Meanwhile: when does every node that was cut off name the
		// majority's leader again (raft reached it)?
		rejoined := make(chan time.Duration, 1)
		go func() {
			for time.Since(healAt) < 30*time.Second {
				var want string
				var st nodeagent.Status
				if c.nodes[majority[0]].tryJSON(&st, "status") == nil {
					want = st.Leader.ID
				}
				ok := want != ""
				for _, i := range side {
					if !ok || c.nodes[i].tryJSON(&st, "status") != nil || st.Leader.ID != want {
						ok = false
						break
					}
				}
				if ok {
					rejoined <- time.Since(healAt)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			rejoined <- -1
		}()
		sc.firstW = writeThroughAll(30 * time.Second)
		sc.rejoined = <-rejoined
		waitFor(t, 30*time.Second, "healthy after "+name, healthy)
		sc.healthy = time.Since(healAt)
		if l, err := leaderIn(all); err == nil {
			sc.leaderNow = l.id
		}
		scenarios = append(scenarios, sc)
		return sc
	}

	waitFor(t, 20*time.Second, "healthy before the faults", healthy)
	time.Sleep(time.Second) // some history before the first cut

	// 1. The leader alone.
	l := c.leader(10 * time.Second)
	sc := partition("leader isolated", []int{index(l)}, 5*time.Second)
	if sc.election == 0 {
		t.Errorf("the majority elected no new leader within 20 s of isolating %s", sc.leaderWas)
	}
	if sc.ackedCut == 0 {
		t.Errorf("no write was acknowledged while %s was isolated", sc.leaderWas)
	}

	// 2. The leader and a follower (a minority) from the other three.
	l = c.leader(10 * time.Second)
	li := index(l)
	sc = partition("minority (leader + follower) from majority", []int{li, (li + 1) % size}, 5*time.Second)
	if sc.election == 0 {
		t.Error("the majority elected no new leader within 20 s")
	}
	if sc.ackedCut == 0 {
		t.Error("no write was acknowledged while the minority was cut off")
	}

	// 3. Flapping: a random minority (sometimes the leader) cut and healed
	// again and again, bounded in count and time.
	rng := rand.New(rand.NewPCG(7, 16))
	const flaps = 8
	flapStart := time.Now()
	cycles := 0
	for ; cycles < flaps && time.Since(flapStart) < 30*time.Second; cycles++ {
		perm := rng.Perm(size)
		side := perm[:1+rng.IntN(2)]
		if err := lab.isolate(side); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		if err := lab.heal(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(200+rng.IntN(700)) * time.Millisecond)
	}
	if cycles < 3 {
		t.Errorf("only %d flapping cycles in 30 s", cycles)
	}
	partition(fmt.Sprintf("flapping (%d cut/heal cycles of a random minority, then one more)", cycles), []int{rng.IntN(size)}, 2*time.Second)
	t.Logf("flapping: %s", time.Since(flapStart).Round(time.Millisecond))

	time.Sleep(time.Second) // some history after the last heal
	stop()
	wg.Wait()

	for _, s := range scenarios {
		elected := "kept its leader"
		if s.election > 0 {
			elected = "new leader after " + s.election.Round(time.Millisecond).String()
		}
		t.Logf("%-66s cut %-12s leader %s→%s; held %s, %s; %d writes acked while cut; after heal: cut-off side names the leader %s, write through every node %s, healthy %s",
			s.name, s.side, s.leaderWas, s.leaderNow, s.held.Round(time.Millisecond), elected, s.ackedCut, s.rejoined.Round(time.Millisecond), s.firstW.Round(time.Millisecond), s.healthy.Round(time.Millisecond))
	}
	amb := 0
	for _, op := range load.history {
		if op.Output.(linOutput).Ambiguous {
			amb++
		}
	}
	for e, n := range client.errs {
		t.Logf("%5d × %s", n, e)
	}
	if len(load.history) < 300 {
		t.Errorf("only %d operations recorded", len(load.history))
	}
	t0 := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvModel(), load.history, 60*time.Second)
	t.Logf("history: %d operations (%d ambiguous) in %s; porcupine: %s in %s", len(load.history), amb, time.Since(start).Round(time.Millisecond), res, time.Since(t0).Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		f := filepath.Join(t.TempDir(), "lin.html")
		if err := porcupine.VisualizePath(kvModel(), info, f); err == nil {
			t.Logf("visualization: %s", f)
		}
		t.Error("history is not linearizable")
	case porcupine.Unknown:
		t.Error("linearizability check gave no verdict within 60 s")
	}

	// Every acknowledged write is in the manifest with its material, no
	// key never written is, and every node holds the same manifest.
	m := c.leader(10 * time.Second).manifest(false)
	inStore := map[string]string{}
	for _, e := range m.Keys {
		inStore[e.ID] = e.SHA256
		if !strings.HasPrefix(e.ID, "lin-") && !load.attempted[e.ID] {
			t.Errorf("key %s is in the store but was never written", e.ID)
		}
	}
	lost := 0
	for id, sum := range load.acked {
		if got, ok := inStore[id]; !ok || got != sum {
			lost++
			t.Errorf("acknowledged write %s: in manifest %v, material matches %v", id, ok, got == sum)
		}
	}
	waitFor(t, 30*time.Second, "every node holds the leader's manifest", func() error {
		for _, n := range c.nodes {
			var nm nodeagent.Manifest
			if err := n.tryJSON(&nm, "keys", "manifest", "--stale"); err != nil {
				return err
			}
			if nm.Digest != m.Digest {
				return fmt.Errorf("%s: %d keys, digest %.12s; leader %d keys, %.12s", n.id, nm.Count, nm.Digest, m.Count, m.Digest)
			}
		}
		return nil
	})
	ambW := 0
	for id := range load.ambiguous {
		if _, ok := inStore[id]; !ok {
			ambW++
		}
	}
	t.Logf("acknowledged writes %d, lost %d; ambiguous writes %d (%d absent from the store); manifest %d keys; %s in all",
		len(load.acked), lost, len(load.ambiguous), ambW, m.Count, time.Since(start).Round(time.Millisecond))
}
