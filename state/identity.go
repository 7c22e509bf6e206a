package state

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// Actor is who caused an event: the one identity shape of the record. It
// names a person by the operating-system account that ran drbook (login
// name and numeric uid) on a host, and, when the run is signed, by the SSH
// key that signs for them (its SHA256 fingerprint). Events that record a
// person's decision (run.created, run.resumed, run.handover, record.signed,
// step.decision, operator.wait, a changed answer) carry an Actor as "actor";
// their "by" text is Actor.String().
type Actor struct {
	// User is the login name; "uid:N" when the uid has no account name.
	User string `json:"user"`
	// UID is the numeric user id (-1 in a holder read from a record made
	// before actors were recorded).
	UID int `json:"uid"`
	// Host is the host name drbook ran on.
	Host string `json:"host"`
	// Key is the SHA256 fingerprint of the signing key ("SHA256:…"),
	// empty when the actor does not sign.
	Key string `json:"key,omitempty"`
}

// String is the actor's one text form, "user@host" (the key is not part of
// it: two segments by one person with two keys are one person).
func (a Actor) String() string {
	u := a.User
	if u == "" {
		u = "uid:" + strconv.Itoa(a.UID)
	}
	if a.Host == "" {
		return u
	}
	return u + "@" + a.Host
}

// Describe is String with the uid and, when set, the key fingerprint:
// "root@vm (uid 0, key SHA256:…)".
func (a Actor) Describe() string {
	parts := []string{"uid " + strconv.Itoa(a.UID)}
	if a.Key != "" {
		parts = append(parts, "key "+a.Key)
	}
	return a.String() + " (" + strings.Join(parts, ", ") + ")"
}

// SamePerson reports whether a and b name the same account on the same
// host (keys are not compared).
func (a Actor) SamePerson(b Actor) bool {
	return a.User == b.User && a.UID == b.UID && a.Host == b.Host
}

// IsZero reports whether a names no one.
func (a Actor) IsZero() bool { return a == Actor{} }

// CurrentActor returns the identity of this process: the login name and
// uid of its real user (user.Current, never $USER, which anyone can set),
// and the host name. key is the signing key's fingerprint, or "".
func CurrentActor(key string) Actor {
	a := Actor{UID: os.Getuid(), Key: key}
	a.Host, _ = os.Hostname()
	if u, err := user.LookupId(strconv.Itoa(a.UID)); err == nil && u.Username != "" {
		a.User = u.Username
	} else {
		a.User = fmt.Sprintf("uid:%d", a.UID)
	}
	return a
}
