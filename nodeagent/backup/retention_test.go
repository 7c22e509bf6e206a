package backup

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestPrune(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	// daily returns n entries, b0 the newest (now), bi taken i days before.
	daily := func(n int) []Entry {
		var es []Entry
		for i := range n {
			es = append(es, Entry{ID: fmt.Sprintf("b%d", i), Path: fmt.Sprintf("/b/b%d", i), CreatedAt: now.Add(-time.Duration(i) * day), Size: 100})
		}
		return es
	}
	hourly := func(n int) []Entry {
		var es []Entry
		for i := range n {
			es = append(es, Entry{ID: fmt.Sprintf("h%02d", i), CreatedAt: now.Add(-time.Duration(i) * time.Hour)})
		}
		return es
	}
	ids := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		entries []Entry
		keep    int
		maxAge  time.Duration
		want    []string
	}{
		{"nothing", nil, DefaultKeep, DefaultMaxAge, nil},
		{"one fresh", daily(1), DefaultKeep, DefaultMaxAge, nil},
		{"within both limits", daily(7), DefaultKeep, DefaultMaxAge, nil},
		{"exactly max age is kept", daily(8), DefaultKeep, DefaultMaxAge, nil},
		{"older than max age", daily(10), DefaultKeep, DefaultMaxAge, []string{"b9", "b8"}},
		{"count limit", hourly(12), DefaultKeep, DefaultMaxAge, []string{"h11", "h10"}},
		{"count limit, no age limit", daily(12), 10, 0, []string{"b11", "b10"}},
		{"keep 3", daily(5), 3, 0, []string{"b4", "b3"}},
		{"keep 0 keeps the newest", daily(3), 0, 0, []string{"b2", "b1"}},
		{"negative keep keeps the newest", daily(2), -5, 0, []string{"b1"}},
		{"newest kept even if too old", []Entry{{ID: "old", CreatedAt: now.Add(-30 * day)}}, DefaultKeep, DefaultMaxAge, nil},
		{"only the newest of old ones kept", []Entry{
			{ID: "a", CreatedAt: now.Add(-30 * day)},
			{ID: "b", CreatedAt: now.Add(-20 * day)},
			{ID: "c", CreatedAt: now.Add(-40 * day)},
		}, DefaultKeep, DefaultMaxAge, []string{"c", "a"}},
		{"ties ordered by id", []Entry{{ID: "x", CreatedAt: now}, {ID: "y", CreatedAt: now}, {ID: "z", CreatedAt: now}}, 1, 0, []string{"x", "y"}},
		{"future entry (clock skew) is the newest", []Entry{{ID: "future", CreatedAt: now.Add(time.Hour)}, {ID: "old", CreatedAt: now.Add(-10 * day)}}, DefaultKeep, DefaultMaxAge, []string{"old"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.entries)
			got := ids(Prune(in, tc.keep, tc.maxAge, now))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Prune = %v, want %v", got, tc.want)
			}
			if !slices.Equal(in, tc.entries) {
				t.Fatal("Prune modified its input")
			}
		})
	}
}

func TestPruneShuffledInput(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	var es []Entry
	for _, h := range []int{5, 0, 30, 2, 200, 1, 50} {
		es = append(es, Entry{ID: fmt.Sprint(h), CreatedAt: now.Add(-time.Duration(h) * time.Hour)})
	}
	got := Prune(es, 3, 48*time.Hour, now)
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if want := []string{"200", "50", "30", "5"}; !slices.Equal(ids, want) {
		t.Fatalf("Prune = %v, want %v", ids, want)
	}
}
